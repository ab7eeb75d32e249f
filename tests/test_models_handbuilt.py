"""Small models built here with onnx.helper, each covering something the exporter fixtures may miss,
each checked by execution: compiled for the ``ideal`` profile (calibrated on its own feeds), run
in the device simulator and compared with onnxruntime on the same inputs (float outputs within 1e-4
of their range, integer outputs equal). Plus the errors a model the device cannot run must give.
"""
from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper

from helpers import (assert_outputs_match, bank_instructions, compile_and_compare, ideal, make_model, ops_of,
                     save, simulate, vinfo)
from photoncc.compiler import check_model, compile_model
from photoncc.errors import UnsupportedModel
from photoncc.reference import run_onnxruntime
from photoncc.sim import Simulator

node = helper.make_node


def rand(rng, *shape, scale=0.5):
    return rng.normal(0, scale, shape).astype(np.float32)


def run(model, tmp_path, feeds, name="model.onnx", **kwargs):
    """Save, compile, simulate, compare with onnxruntime; returns the program."""
    path = save(model, tmp_path, name)
    program, _, _ = compile_and_compare(path, feeds, **kwargs)
    return program


def refused(model, tmp_path, feeds=None) -> UnsupportedModel:
    """The UnsupportedModel that compiling ``model`` raises (``photoncc check`` raises the same)."""
    path = save(model, tmp_path)
    with pytest.raises(UnsupportedModel) as info:
        compile_model(str(path), ideal(), calibration=feeds)
    with pytest.raises(UnsupportedModel) as checked:
        check_model(str(path), ideal())
    assert str(checked.value) == str(info.value)
    assert "Traceback" not in str(info.value)
    return info.value


def dense_feeds(rng, k, batch=6, scale=1.0):
    return {"x": (scale * rng.standard_normal((batch, k))).astype(np.float32)}


def relu_mlp(rng, k):
    """x (N, k) -> fc1 (Gemm with bias, 8 rows) -> Relu -> fc2 (Gemm, 3 rows) -> y."""
    return make_model([node("Gemm", ["x", "W1", "b1"], ["g1"], name="fc1", transB=1),
                       node("Relu", ["g1"], ["a"], name="relu1"),
                       node("Gemm", ["a", "W2"], ["y"], name="fc2", transB=1)],
                      [vinfo("x", ["N", k])], [vinfo("y", ["N", 3])],
                      [("W1", rand(rng, 8, k)), ("b1", rand(rng, 8)), ("W2", rand(rng, 3, 8))])


# ---------------------------------------------------------------------------------- Gemm

M, K = 5, 6


@pytest.mark.parametrize("alpha, beta, trans_b, c_shape", list(itertools.product(
    [1.0, 0.5], [1.0, -2.0], [0, 1], [None, (M,), (1, M), ()])))
def test_gemm_attributes(alpha, beta, trans_b, c_shape, tmp_path):
    rng = np.random.default_rng(1)
    b = rand(rng, M, K) if trans_b else rand(rng, K, M)
    inits = [("B", b)]
    inputs = ["x", "B"]
    if c_shape is not None:
        inits.append(("C", rand(rng, *c_shape)))
        inputs.append("C")
    attrs = {k: v for k, v, default in (("alpha", alpha, 1.0), ("beta", beta, 1.0), ("transB", trans_b, 0))
             if v != default}  # defaults left out, so that they are exercised too
    model = make_model([node("Gemm", inputs, ["y"], name="gemm", **attrs)],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", M])], inits)
    program = run(model, tmp_path, dense_feeds(rng, K))
    assert ops_of(program) == ["Bank"]


def test_gemm_trans_a_is_refused_naming_the_node(tmp_path):
    rng = np.random.default_rng(2)
    model = make_model([node("Gemm", ["x", "B"], ["y"], name="gemm_ta", transA=1)],
                       [vinfo("x", [4, K])], [vinfo("y", [K, M])], [("B", rand(rng, 4, M))])
    err = refused(model, tmp_path)
    assert [(p.node, p.op) for p in err.problems] == [("gemm_ta", "Gemm")]


# ---------------------------------------------------------------------------------- MatMul

@pytest.mark.parametrize("shape", [(6,), (3, 6), (2, 3, 6)], ids=["2d", "3d", "4d"])
def test_matmul_constant_right_operand(shape, tmp_path):
    rng = np.random.default_rng(3)
    model = make_model([node("MatMul", ["x", "W"], ["h"], name="mm"),
                        node("Add", ["h", "b"], ["y"], name="bias")],
                       [vinfo("x", ["N", *shape])], [vinfo("y", ["N", *shape[:-1], 4])],
                       [("W", rand(rng, 6, 4)), ("b", rand(rng, 4))])
    feeds = {"x": rng.standard_normal((5, *shape)).astype(np.float32)}
    program = run(model, tmp_path, feeds)
    assert ops_of(program) == ["Bank"]  # the bias Add is folded into the bank


# ---------------------------------------------------------------------------------- Conv

CONV_CASES = {
    # name: (input per-sample shape, weight shape, attributes, bias)
    "1d": ((4, 11), (5, 4, 3), {}, True),
    "1d_stride_asym_pads": ((4, 11), (5, 4, 3), {"strides": [2], "pads": [1, 2]}, True),
    "1d_same_upper": ((4, 9), (5, 4, 4), {"strides": [2], "auto_pad": "SAME_UPPER"}, True),
    "1d_same_lower": ((4, 9), (5, 4, 4), {"strides": [2], "auto_pad": "SAME_LOWER"}, True),
    "1d_valid": ((4, 11), (5, 4, 3), {"strides": [2], "auto_pad": "VALID"}, True),
    "1d_dilated": ((4, 11), (5, 4, 3), {"dilations": [2], "pads": [2, 2]}, True),
    "1d_groups": ((4, 11), (6, 2, 3), {"group": 2}, True),
    "1d_depthwise": ((4, 11), (4, 1, 3), {"group": 4, "pads": [1, 1]}, True),
    "1d_no_bias": ((4, 11), (5, 4, 3), {"pads": [1, 0]}, False),
    "2d": ((3, 9, 8), (5, 3, 3, 3), {}, True),
    "2d_stride_asym_pads": ((3, 9, 8), (5, 3, 3, 3), {"strides": [2, 1], "pads": [0, 1, 2, 1]}, True),
    "2d_same_upper": ((3, 9, 8), (5, 3, 4, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, True),
    "2d_same_lower": ((3, 9, 8), (5, 3, 4, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, True),
    "2d_valid": ((3, 9, 8), (5, 3, 3, 2), {"strides": [2, 3], "auto_pad": "VALID"}, True),
    "2d_dilated": ((3, 9, 8), (5, 3, 3, 3), {"dilations": [2, 1], "pads": [2, 1, 2, 1]}, True),
    "2d_groups": ((4, 9, 8), (6, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}, True),
    "2d_depthwise": ((4, 9, 8), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}, True),
    "2d_depthwise_multiplier": ((4, 9, 8), (8, 1, 3, 3), {"group": 4, "strides": [2, 2]}, True),
    "2d_no_bias": ((3, 9, 8), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}, False),
    "2d_kernel_shape_given": ((3, 9, 8), (5, 3, 2, 3), {"kernel_shape": [2, 3]}, True),
    "2d_1x1": ((3, 9, 8), (5, 3, 1, 1), {}, True),
    "3d": ((2, 5, 4, 6), (3, 2, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 0], "strides": [1, 2, 1]}, True),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv(case, tmp_path):
    rng = np.random.default_rng(4)
    shape, wshape, attrs, bias = CONV_CASES[case]
    inits = [("W", rand(rng, *wshape))] + ([("b", rand(rng, wshape[0]))] if bias else [])
    model = make_model([node("Conv", ["x", "W"] + (["b"] if bias else []), ["y"], name="conv", **attrs)],
                       [vinfo("x", ["N", *shape])], ["y"], inits)
    program = run(model, tmp_path, {"x": rng.standard_normal((3, *shape)).astype(np.float32)})
    assert ops_of(program) == ["Bank"]
    (bank,) = bank_instructions(program)
    assert bank["attrs"]["conv"]["group"] == attrs.get("group", 1)


def test_same_upper_and_same_lower_differ(tmp_path):
    """The two auto_pad modes must not be confused: on this geometry they give different outputs."""
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal((2, 3, 9, 8)).astype(np.float32)}
    w = rand(rng, 5, 3, 4, 3)
    outs = {}
    for mode in ("SAME_UPPER", "SAME_LOWER"):
        model = make_model([node("Conv", ["x", "W"], ["y"], name="conv", strides=[2, 2], auto_pad=mode)],
                           [vinfo("x", ["N", 3, 9, 8])], ["y"], [("W", w)])
        path = save(model, tmp_path, f"{mode}.onnx")
        _, dev, _ = compile_and_compare(path, feeds)
        outs[mode] = dev["y"]
    assert not np.allclose(outs["SAME_UPPER"], outs["SAME_LOWER"])


# ---------------------------------------------------------------------------------- BatchNormalization

def bn_inits(rng, c, prefix="bn"):
    return [(f"{prefix}_g", rng.uniform(0.5, 1.5, c).astype(np.float32)),
            (f"{prefix}_b", rand(rng, c, scale=0.1)),
            (f"{prefix}_m", rand(rng, c, scale=0.1)),
            (f"{prefix}_v", rng.uniform(0.5, 1.5, c).astype(np.float32))]


def bn(x, y, prefix="bn", **attrs):
    return node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "gbmv"], [y], name=prefix, **attrs)


def test_batchnorm_after_conv_is_folded(tmp_path):
    rng = np.random.default_rng(6)
    model = make_model([node("Conv", ["x", "W", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                        bn("c", "n", epsilon=1e-3), node("Relu", ["n"], ["y"], name="relu")],
                       [vinfo("x", ["N", 3, 6, 6])], ["y"],
                       [("W", rand(rng, 4, 3, 3, 3)), ("cb", rand(rng, 4))] + bn_inits(rng, 4))
    program = run(model, tmp_path, {"x": rng.standard_normal((4, 3, 6, 6)).astype(np.float32)})
    assert ops_of(program) == ["Bank", "Relu"]


def test_batchnorm_after_gemm_is_folded(tmp_path):
    rng = np.random.default_rng(7)
    model = make_model([node("Gemm", ["x", "W", "gb"], ["g"], name="fc", transB=1), bn("g", "y")],
                       [vinfo("x", ["N", K])], ["y"], [("W", rand(rng, M, K)), ("gb", rand(rng, M))] + bn_inits(rng, M))
    program = run(model, tmp_path, dense_feeds(rng, K))
    assert ops_of(program) == ["Bank"]


def test_batchnorm_after_concat_stays_electronic(tmp_path):
    rng = np.random.default_rng(8)
    model = make_model([node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                        node("Concat", ["c", "x"], ["cat"], name="cat", axis=1), bn("cat", "n"),
                        node("Conv", ["n", "W2"], ["y"], name="conv2")],
                       [vinfo("x", ["N", 3, 6, 6])], ["y"],
                       [("W", rand(rng, 4, 3, 3, 3)), ("W2", rand(rng, 2, 7, 1, 1))] + bn_inits(rng, 7))
    program = run(model, tmp_path, {"x": rng.standard_normal((4, 3, 6, 6)).astype(np.float32)})
    assert ops_of(program).count("BatchNormalization") == 1
    assert ops_of(program).count("Bank") == 2


# ---------------------------------------------------------------------------------- constant arithmetic

AFFINE_AFTER = [  # (op, constant first?, constant shape)
    ("Add", False, (M,)), ("Add", True, ()), ("Sub", False, (1, M)), ("Sub", True, (M,)),
    ("Mul", False, (M,)), ("Mul", True, ()), ("Div", False, (M,)), ("Div", False, ()),
]


@pytest.mark.parametrize("op, const_first, shape", AFFINE_AFTER)
def test_constant_arithmetic_after_gemm_is_folded(op, const_first, shape, tmp_path):
    rng = np.random.default_rng(9)
    c = rng.uniform(0.5, 2.0, shape).astype(np.float32) * np.float32(-1 if op == "Mul" else 1)
    args = ["c", "g"] if const_first else ["g", "c"]
    model = make_model([node("Gemm", ["x", "W", "b"], ["g"], name="fc", transB=1),
                        node(op, args, ["a"], name="affine"), node("Relu", ["a"], ["r"], name="relu"),
                        node("Gemm", ["r", "W2"], ["y"], name="fc2", transB=1)],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", 3])],
                       [("W", rand(rng, M, K)), ("b", rand(rng, M)), ("c", c), ("W2", rand(rng, 3, M))])
    program = run(model, tmp_path, dense_feeds(rng, K))
    assert ops_of(program) == ["Bank", "Relu", "Bank"]


@pytest.mark.parametrize("op, const_first", [("Add", False), ("Sub", False), ("Sub", True), ("Mul", True),
                                             ("Div", False)])
def test_constant_arithmetic_before_gemm(op, const_first, tmp_path):
    rng = np.random.default_rng(10)
    c = rng.uniform(0.5, 2.0, (K,)).astype(np.float32)
    args = ["c", "x"] if const_first else ["x", "c"]
    model = make_model([node(op, args, ["a"], name="pre"), node("Gemm", ["a", "W", "b"], ["y"], name="fc", transB=1)],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", M])],
                       [("W", rand(rng, M, K)), ("b", rand(rng, M)), ("c", c)])
    run(model, tmp_path, dense_feeds(rng, K))


def test_constant_divided_by_layer_output_stays_electronic(tmp_path):
    """c / y is not affine in y: it must not be folded into the bank."""
    rng = np.random.default_rng(11)
    model = make_model([node("Gemm", ["x", "W", "b"], ["g"], name="fc", transB=1),
                        node("Div", ["c", "g"], ["y"], name="recip")],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", M])],
                       [("W", rand(rng, M, K, scale=0.1)), ("b", np.full(M, 3, np.float32)),
                        ("c", rng.uniform(1, 2, M).astype(np.float32))])
    program = run(model, tmp_path, dense_feeds(rng, K))
    assert ops_of(program) == ["Bank", "Div"]


# ---------------------------------------------------------------------------------- data-data ops

def test_residual_add_of_two_activations(tmp_path):
    rng = np.random.default_rng(12)
    model = make_model([node("Gemm", ["x", "W1", "b1"], ["g1"], name="fc1", transB=1),
                        node("Relu", ["g1"], ["a"], name="relu1"),
                        node("Gemm", ["a", "W2", "b2"], ["g2"], name="fc2", transB=1),
                        node("Add", ["a", "g2"], ["s"], name="residual"),
                        node("Relu", ["s"], ["r"], name="relu2"),
                        node("Gemm", ["r", "W3"], ["y"], name="fc3", transB=1)],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", 3])],
                       [("W1", rand(rng, 8, K)), ("b1", rand(rng, 8)), ("W2", rand(rng, 8, 8)),
                        ("b2", rand(rng, 8)), ("W3", rand(rng, 3, 8))])
    program = run(model, tmp_path, dense_feeds(rng, K))
    assert ops_of(program).count("Bank") == 3 and "Add" in ops_of(program)


def test_relu_in_place_leaves_a_kept_bank_output_alone(tmp_path):
    """The simulator applies a Relu in the memory of the bank result it reads, unless that result
    is still wanted: kept for per-layer metrics (``keep``), it keeps its negative values."""
    rng = np.random.default_rng(14)
    model = relu_mlp(rng, K)
    feeds = dense_feeds(rng, K)
    program = run(model, tmp_path, feeds)
    first = bank_instructions(program)[0]["outputs"][0]
    sim = Simulator(program)
    kept = sim.run(feeds, keep=[first])
    assert kept[first].min() < 0 and np.array_equal(kept["y"], sim.run(feeds)["y"])


def test_in_place_ops_never_write_into_a_value_another_one_views(tmp_path):
    """A layer's result viewed by a Reshape and also read by a Relu and a residual Add: the
    simulator may compute the Relu and the Add in place only in memory no live value shares."""
    rng = np.random.default_rng(15)
    model = make_model([node("Gemm", ["x", "W1", "b1"], ["g1"], name="fc1", transB=1),
                        node("Reshape", ["g1", "s3"], ["v"], name="view"),
                        node("Relu", ["g1"], ["a"], name="relu1"),
                        node("Reshape", ["v", "s2"], ["w"], name="back"),
                        node("Add", ["w", "a"], ["s"], name="residual"),
                        node("Gemm", ["s", "W2"], ["y"], name="fc2", transB=1)],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", 3])],
                       [("W1", rand(rng, 8, K)), ("b1", rand(rng, 8)), ("W2", rand(rng, 3, 8)),
                        ("s3", np.array([0, 2, 4], np.int64)), ("s2", np.array([0, 8], np.int64))])
    program = run(model, tmp_path, dense_feeds(rng, K))
    assert {"Reshape", "Relu", "Add"} <= set(ops_of(program))


def test_mul_of_two_activations(tmp_path):
    """A gate (DenseNet/SE style): the product of two layer outputs feeds the next layer."""
    rng = np.random.default_rng(13)
    model = make_model([node("Conv", ["x", "Wa", "ba"], ["ca"], name="conv_a", pads=[1, 1, 1, 1]),
                        node("Relu", ["ca"], ["a"], name="relu"),
                        node("Conv", ["x", "Wb"], ["cb"], name="conv_b"),
                        node("Sigmoid", ["cb"], ["s"], name="gate"),
                        node("Mul", ["a", "s"], ["m"], name="mul"),
                        node("Conv", ["m", "Wc"], ["y"], name="conv_c")],
                       [vinfo("x", ["N", 3, 6, 6])], ["y"],
                       [("Wa", rand(rng, 4, 3, 3, 3)), ("ba", rand(rng, 4)), ("Wb", rand(rng, 4, 3, 1, 1)),
                        ("Wc", rand(rng, 2, 4, 3, 3))])
    program = run(model, tmp_path, {"x": rng.standard_normal((4, 3, 6, 6)).astype(np.float32)})
    assert "Mul" in ops_of(program)


def test_concat_of_two_conv_branches(tmp_path):
    rng = np.random.default_rng(14)
    model = make_model([node("Conv", ["x", "W1", "b1"], ["c1"], name="branch1x1"),
                        node("Conv", ["x", "W3", "b3"], ["c3"], name="branch3x3", pads=[1, 1, 1, 1]),
                        node("Concat", ["c1", "c3"], ["cat"], name="cat", axis=1),
                        node("Relu", ["cat"], ["r"], name="relu"),
                        node("GlobalAveragePool", ["r"], ["p"], name="gap"),
                        node("Flatten", ["p"], ["f"], name="flat"),
                        node("Gemm", ["f", "Wf", "bf"], ["y"], name="fc", transB=1)],
                       [vinfo("x", ["N", 3, 7, 7])], [vinfo("y", ["N", 4])],
                       [("W1", rand(rng, 2, 3, 1, 1)), ("b1", rand(rng, 2)), ("W3", rand(rng, 3, 3, 3, 3)),
                        ("b3", rand(rng, 3)), ("Wf", rand(rng, 4, 5)), ("bf", rand(rng, 4))])
    program = run(model, tmp_path, {"x": rng.standard_normal((4, 3, 7, 7)).astype(np.float32)})
    assert ops_of(program).count("Bank") == 3 and "Concat" in ops_of(program)


# ---------------------------------------------------------------------------------- activations

ACTIVATIONS = {
    "LeakyRelu": (lambda: [node("LeakyRelu", ["g"], ["a"], name="act", alpha=0.2)], []),
    "Tanh": (lambda: [node("Tanh", ["g"], ["a"], name="act")], []),
    "Sigmoid": (lambda: [node("Sigmoid", ["g"], ["a"], name="act")], []),
    "Elu": (lambda: [node("Elu", ["g"], ["a"], name="act", alpha=0.7)], []),
    "Selu": (lambda: [node("Selu", ["g"], ["a"], name="act")], []),
    "Softplus": (lambda: [node("Softplus", ["g"], ["a"], name="act")], []),
    "Softsign": (lambda: [node("Softsign", ["g"], ["a"], name="act")], []),
    "HardSigmoid": (lambda: [node("HardSigmoid", ["g"], ["a"], name="act", alpha=0.3)], []),
    "PRelu": (lambda: [node("PRelu", ["g", "slope"], ["a"], name="act")],
              [("slope", np.linspace(-0.5, 0.5, 8).astype(np.float32))]),
    "Clip": (lambda: [node("Clip", ["g", "lo", "hi"], ["a"], name="act")],
             [("lo", np.array(-0.3, np.float32)), ("hi", np.array(0.6, np.float32))]),
    "Clip_min_only": (lambda: [node("Clip", ["g", "lo"], ["a"], name="act")], [("lo", np.array(-0.3, np.float32))]),
    "Relu": (lambda: [node("Relu", ["g"], ["a"], name="act")], []),
    "HardSwish": (lambda: [node("HardSwish", ["g"], ["a"], name="act")], []),
}


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_activation_between_layers(act, tmp_path):
    rng = np.random.default_rng(15)
    nodes, inits = ACTIVATIONS[act]
    model = make_model([node("Gemm", ["x", "W1", "b1"], ["g"], name="fc1", transB=1), *nodes(),
                        node("Gemm", ["a", "W2", "b2"], ["y"], name="fc2", transB=1)],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", 4])],
                       [("W1", rand(rng, 8, K)), ("b1", rand(rng, 8)), ("W2", rand(rng, 4, 8)), ("b2", rand(rng, 4))]
                       + inits)
    program = run(model, tmp_path, dense_feeds(rng, K, batch=16))
    assert ops_of(program) == ["Bank", act.split("_")[0], "Bank"]


def test_prelu_per_channel_between_convs(tmp_path):
    rng = np.random.default_rng(16)
    model = make_model([node("Conv", ["x", "W1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
                        node("PRelu", ["c", "slope"], ["a"], name="prelu"),
                        node("Conv", ["a", "W2"], ["y"], name="conv2")],
                       [vinfo("x", ["N", 3, 6, 6])], ["y"],
                       [("W1", rand(rng, 4, 3, 3, 3)), ("W2", rand(rng, 2, 4, 3, 3)),
                        ("slope", np.array([0.1, -0.2, 0.3, 0.0], np.float32).reshape(4, 1, 1))])
    run(model, tmp_path, {"x": rng.standard_normal((4, 3, 6, 6)).astype(np.float32)})


# ---------------------------------------------------------------------------------- structural ops

def conv_then(rng, nodes, tail_in, k_tail, inits=(), out="y", shape=(3, 6, 6), extra_outputs=()):
    """x -> Conv(4 channels, pads 1) -> ``nodes`` -> ``tail_in`` (N, k_tail) -> Gemm -> y."""
    c = shape[0]
    return make_model([node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]), *nodes,
                       node("Gemm", [tail_in, "Wf", "bf"], [out], name="fc", transB=1)],
                      [vinfo("x", ["N", *shape])], [out, *extra_outputs],
                      [("W", rand(rng, 4, c, 3, 3)), ("Wf", rand(rng, 3, k_tail, scale=0.1)), ("bf", rand(rng, 3)),
                       *inits])


def image_feeds(rng, shape=(3, 6, 6), batch=4):
    return {"x": rng.standard_normal((batch, *shape)).astype(np.float32)}


def test_flatten(tmp_path):
    rng = np.random.default_rng(17)
    run(conv_then(rng, [node("Flatten", ["c"], ["f"], name="flat")], "f", 144), tmp_path, image_feeds(rng))


@pytest.mark.parametrize("shape", [[0, -1], [-1, 144], [0, 4, 36]], ids=["zero", "minus_one_first", "rank3"])
def test_reshape(shape, tmp_path):
    rng = np.random.default_rng(18)
    nodes = [node("Reshape", ["c", "shape"], ["r"], name="reshape")]
    if len(shape) == 3:
        nodes.append(node("Reshape", ["r", "flat"], ["f"], name="reshape2"))
    model = conv_then(rng, nodes, "f" if len(shape) == 3 else "r", 144,
                      [("shape", np.array(shape, np.int64)), ("flat", np.array([0, -1], np.int64))])
    run(model, tmp_path, image_feeds(rng))


def test_transpose(tmp_path):
    rng = np.random.default_rng(19)
    nodes = [node("Transpose", ["c"], ["t"], name="nhwc", perm=[0, 2, 3, 1]),
             node("Reshape", ["t", "shape"], ["f"], name="flat")]
    run(conv_then(rng, nodes, "f", 144, [("shape", np.array([0, -1], np.int64))]), tmp_path, image_feeds(rng))


def test_transpose_then_matmul_on_3d(tmp_path):
    rng = np.random.default_rng(20)
    model = make_model([node("Transpose", ["x"], ["t"], name="swap", perm=[0, 2, 1]),
                        node("MatMul", ["t", "W"], ["y"], name="mm")],
                       [vinfo("x", ["N", 5, 3])], ["y"], [("W", rand(rng, 5, 4))])
    run(model, tmp_path, {"x": rng.standard_normal((4, 5, 3)).astype(np.float32)})


def test_squeeze_unsqueeze(tmp_path):
    rng = np.random.default_rng(21)
    model = make_model([node("Gemm", ["x", "W1"], ["g"], name="fc1", transB=1),
                        node("Unsqueeze", ["g", "axes"], ["u"], name="unsqueeze"),
                        node("Relu", ["u"], ["r"], name="relu"),
                        node("Squeeze", ["r", "axes"], ["s"], name="squeeze"),
                        node("Gemm", ["s", "W2"], ["y"], name="fc2", transB=1)],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", 3])],
                       [("W1", rand(rng, M, K)), ("W2", rand(rng, 3, M)), ("axes", np.array([1], np.int64))])
    run(model, tmp_path, dense_feeds(rng, K))


@pytest.mark.parametrize("mode, value", [("constant", 0.0), ("constant", 0.7), ("reflect", None), ("edge", None)])
def test_pad_before_conv(mode, value, tmp_path):
    rng = np.random.default_rng(22)
    inputs = ["x", "pads"] + (["value"] if value is not None else [])
    inits = [("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)), ("W", rand(rng, 4, 3, 3, 3))]
    if value is not None:
        inits.append(("value", np.array(value, np.float32)))
    model = make_model([node("Pad", inputs, ["p"], name="pad", mode=mode), node("Conv", ["p", "W"], ["y"], name="conv")],
                       [vinfo("x", ["N", 3, 6, 6])], ["y"], inits)
    program = run(model, tmp_path, image_feeds(rng))
    assert "Pad" in ops_of(program)


def test_lrn_between_convs(tmp_path):
    rng = np.random.default_rng(23)
    model = make_model([node("Conv", ["x", "W1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
                        node("LRN", ["c"], ["l"], name="lrn", size=3, alpha=1e-2, beta=0.75, bias=1.0),
                        node("Conv", ["l", "W2"], ["y"], name="conv2")],
                       [vinfo("x", ["N", 3, 6, 6])], ["y"], [("W1", rand(rng, 5, 3, 3, 3)), ("W2", rand(rng, 2, 5, 3, 3))])
    program = run(model, tmp_path, image_feeds(rng))
    assert "LRN" in ops_of(program)


def classifier(rng, head, outputs, opset=17, extra_inits=()):
    """x (N, K) -> Gemm -> ``head`` nodes reading "g"."""
    return make_model([node("Gemm", ["x", "W", "b"], ["g"], name="fc", transB=1), *head],
                      [vinfo("x", ["N", K])], outputs, [("W", rand(rng, 7, K)), ("b", rand(rng, 7)), *extra_inits],
                      opset=opset)


def test_softmax_then_layer(tmp_path):
    rng = np.random.default_rng(24)
    model = classifier(rng, [node("Softmax", ["g"], ["s"], name="softmax"),
                             node("Gemm", ["s", "W2"], ["y"], name="fc2", transB=1)], ["y", "s"],
                       extra_inits=[("W2", rand(rng, 3, 7))])
    run(model, tmp_path, dense_feeds(rng, K))


def test_log_softmax(tmp_path):
    rng = np.random.default_rng(25)
    run(classifier(rng, [node("LogSoftmax", ["g"], ["y"], name="logsoftmax")], ["y"]), tmp_path, dense_feeds(rng, K))


@pytest.mark.parametrize("opset, axis", [(11, 1), (13, 1), (13, -1)])
def test_softmax_on_4d(opset, axis, tmp_path):
    """Opset < 13 Softmax flattens from ``axis`` on (here over C*H*W); opset 13 is over one axis."""
    rng = np.random.default_rng(26)
    model = make_model([node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                        node("Softmax", ["c"], ["y"], name="softmax", axis=axis)],
                       [vinfo("x", ["N", 3, 4, 4])], ["y"], [("W", rand(rng, 4, 3, 3, 3))], opset=opset)
    run(model, tmp_path, image_feeds(rng, (3, 4, 4)))


def test_argmax_and_cast(tmp_path):
    rng = np.random.default_rng(27)
    model = classifier(rng, [node("ArgMax", ["g"], ["label"], name="argmax", axis=1, keepdims=0),
                             node("Cast", ["label"], ["label_f"], name="to_float", to=TP.FLOAT),
                             node("Cast", ["g"], ["g64"], name="to_double", to=TP.DOUBLE),
                             node("Cast", ["g"], ["gi"], name="to_int", to=TP.INT32)],
                       ["label", "label_f", "g64", "gi"])
    feeds = dense_feeds(rng, K, batch=32, scale=3.0)
    path = save(model, tmp_path)
    program = compile_model(str(path), ideal(), calibration=feeds)
    dev = simulate(program, feeds)
    ref, _ = run_onnxruntime(str(path), feeds)
    assert ref["label"].dtype == np.int64 and ref["g64"].dtype == np.float64 and ref["gi"].dtype == np.int32
    assert_outputs_match(ref, dev)
    assert len(set(ref["label"].tolist())) > 2


def test_double_precision_model(tmp_path):
    rng = np.random.default_rng(28)
    model = make_model([node("Gemm", ["x", "W", "b"], ["g"], name="fc1", transB=1),
                        node("Tanh", ["g"], ["t"], name="tanh"),
                        node("Gemm", ["t", "W2"], ["y"], name="fc2", transB=1)],
                       [vinfo("x", ["N", K], TP.DOUBLE)], [vinfo("y", ["N", 3], TP.DOUBLE)],
                       [("W", rng.normal(0, 0.5, (M, K))), ("b", rng.normal(0, 0.1, M)), ("W2", rng.normal(0, 0.5, (3, M)))])
    feeds = {"x": rng.standard_normal((5, K))}
    program = run(model, tmp_path, feeds)
    assert simulate(program, feeds)["y"].dtype == np.float64


def test_embedding_lookup_then_layer(tmp_path):
    """Integer inputs: a Gather from a constant table (axis 0 of the table, not the batch)."""
    rng = np.random.default_rng(29)
    model = make_model([node("Gather", ["table", "ids"], ["e"], name="embed"),
                        node("Reshape", ["e", "shape"], ["f"], name="flat"),
                        node("Gemm", ["f", "W"], ["y"], name="fc", transB=1)],
                       [vinfo("ids", ["N", 3], TP.INT64)], [vinfo("y", ["N", 2])],
                       [("table", rand(rng, 10, 4)), ("shape", np.array([0, -1], np.int64)), ("W", rand(rng, 2, 12))])
    run(model, tmp_path, {"ids": rng.integers(0, 10, (6, 3)).astype(np.int64)})


def test_constant_affine_chain_after_conv_is_folded(tmp_path):
    """Mul by a (1, M, 1, 1) constant, then (M, 1, 1) + y, then / scalar: one bank, nothing electronic."""
    rng = np.random.default_rng(45)
    model = make_model([node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                        node("Mul", ["c", "s"], ["m"], name="scale"), node("Add", ["t", "m"], ["a"], name="shift"),
                        node("Div", ["a", "d"], ["y"], name="div")],
                       [vinfo("x", ["N", 3, 5, 5])], ["y"],
                       [("W", rand(rng, 4, 3, 3, 3)), ("s", rand(rng, 1, 4, 1, 1)), ("t", rand(rng, 4, 1, 1)),
                        ("d", np.array(3.0, np.float32))])
    program = run(model, tmp_path, image_feeds(rng, (3, 5, 5)))
    assert ops_of(program) == ["Bank"]


def test_layer_output_that_is_also_a_graph_output_is_not_folded_away(tmp_path):
    rng = np.random.default_rng(46)
    model = make_model([node("Gemm", ["x", "W"], ["g"], name="fc", transB=1), bn("g", "y")],
                       [vinfo("x", ["N", K])], ["y", "g"], [("W", rand(rng, M, K))] + bn_inits(rng, M))
    program = run(model, tmp_path, dense_feeds(rng, K))
    assert ops_of(program) == ["Bank", "BatchNormalization"]


def test_two_model_inputs(tmp_path):
    rng = np.random.default_rng(47)
    model = make_model([node("Gemm", ["a", "Wa"], ["ga"], name="fc_a", transB=1),
                        node("Conv", ["b", "Wb"], ["cb"], name="conv_b"),
                        node("Flatten", ["cb"], ["fb"], name="flat"),
                        node("Gemm", ["fb", "Wf"], ["gb"], name="fc_b", transB=1),
                        node("Add", ["ga", "gb"], ["s"], name="add"), node("Relu", ["s"], ["y"], name="relu")],
                       [vinfo("a", ["N", K]), vinfo("b", ["N", 2, 4, 4])], [vinfo("y", ["N", 3])],
                       [("Wa", rand(rng, 3, K)), ("Wb", rand(rng, 2, 2, 3, 3)), ("Wf", rand(rng, 3, 8))])
    feeds = {"a": rand(rng, 5, K, scale=1), "b": rand(rng, 5, 2, 4, 4, scale=1)}
    program = run(model, tmp_path, feeds)
    assert [i["name"] for i in program.manifest["inputs"]] == ["a", "b"]
    assert ops_of(program).count("Bank") == 3


def test_reduce_mean_and_pools_between_layers(tmp_path):
    rng = np.random.default_rng(48)
    model = make_model([node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                        node("AveragePool", ["c"], ["p"], name="avg", kernel_shape=[3, 3], strides=[2, 2],
                             pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1),
                        node("MaxPool", ["p"], ["q"], name="max", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
                        node("Conv", ["q", "W2"], ["c2"], name="conv2"),
                        node("ReduceMean", ["c2", "axes"], ["r"], name="mean", keepdims=0),
                        node("Gemm", ["r", "Wf"], ["y"], name="fc", transB=1)],
                       [vinfo("x", ["N", 3, 7, 7])], [vinfo("y", ["N", 2])],
                       [("W", rand(rng, 4, 3, 3, 3)), ("W2", rand(rng, 5, 4, 1, 1)),
                        ("axes", np.array([2, 3], np.int64)), ("Wf", rand(rng, 2, 5))], opset=18)
    program = run(model, tmp_path, image_feeds(rng, (3, 7, 7)))
    assert ops_of(program) == ["Bank", "AveragePool", "MaxPool", "Bank", "ReduceMean", "Bank"]


def test_split_and_slice_between_layers(tmp_path):
    rng = np.random.default_rng(49)
    model = make_model([node("Gemm", ["x", "W"], ["g"], name="fc", transB=1),
                        node("Split", ["g", "sizes"], ["a", "b"], name="split", axis=1),
                        node("Slice", ["a", "starts", "ends", "axes", "steps"], ["s"], name="every_other_reversed"),
                        node("Concat", ["b", "s"], ["c"], name="cat", axis=1),
                        node("Gemm", ["c", "W2"], ["y"], name="fc2", transB=1)],
                       [vinfo("x", ["N", K])], [vinfo("y", ["N", 3])],
                       [("W", rand(rng, 8, K)), ("sizes", np.array([6, 2], np.int64)),
                        ("starts", np.array([-1], np.int64)), ("ends", np.array([-100], np.int64)),
                        ("axes", np.array([-1], np.int64)), ("steps", np.array([-2], np.int64)), ("W2", rand(rng, 3, 5))])
    run(model, tmp_path, dense_feeds(rng, K))


# ---------------------------------------------------------------------------------- shapes and batch

def test_shape_subgraph_with_dynamic_batch_runs_at_batch_7(tmp_path):
    rng = np.random.default_rng(30)
    model = make_model([node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                        node("Shape", ["c"], ["sh"], name="shape"),
                        node("Gather", ["sh", "zero"], ["n"], name="batch", axis=0),
                        node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
                        node("Concat", ["n1", "minus_one"], ["target"], name="target", axis=0),
                        node("Reshape", ["c", "target"], ["f"], name="flatten"),
                        node("Gemm", ["f", "Wf"], ["y"], name="fc", transB=1)],
                       [vinfo("x", ["N", 3, 5, 5])], [vinfo("y", ["N", 3])],
                       [("W", rand(rng, 4, 3, 3, 3)), ("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)),
                        ("minus_one", np.array([-1], np.int64)), ("Wf", rand(rng, 3, 100, scale=0.1))])
    feeds = image_feeds(rng, (3, 5, 5), batch=7)
    program = run(model, tmp_path, feeds)
    assert ops_of(program) == ["Bank", "Reshape", "Bank"]
    assert simulate(program, feeds)["y"].shape == (7, 3)


def mlp_for_opset(rng, opset):
    """Gemm -> Clip(0, 6) -> Unsqueeze/Squeeze -> Gemm -> Softmax, spelled as ``opset`` requires."""
    inits = [("W1", rand(rng, 8, K)), ("b1", rand(rng, 8)), ("W2", rand(rng, 4, 8)), ("b2", rand(rng, 4))]
    if opset < 11:
        clip = node("Clip", ["g"], ["c"], name="relu6", min=0.0, max=6.0)
    else:
        clip = node("Clip", ["g", "lo", "hi"], ["c"], name="relu6")
        inits += [("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))]
    if opset < 13:
        unsq = node("Unsqueeze", ["c"], ["u"], name="unsqueeze", axes=[1])
        sq = node("Squeeze", ["u"], ["s"], name="squeeze", axes=[1])
    else:
        unsq = node("Unsqueeze", ["c", "axes"], ["u"], name="unsqueeze")
        sq = node("Squeeze", ["u", "axes"], ["s"], name="squeeze")
        inits.append(("axes", np.array([1], np.int64)))
    return make_model([node("Gemm", ["x", "W1", "b1"], ["g"], name="fc1", transB=1), clip, unsq, sq,
                       node("Gemm", ["s", "W2", "b2"], ["z"], name="fc2", transB=1),
                       node("Softmax", ["z"], ["y"], name="softmax", axis=1)],
                      [vinfo("x", ["N", K])], [vinfo("y", ["N", 4]), vinfo("z", ["N", 4])], inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 21])
def test_same_mlp_in_every_opset(opset, tmp_path):
    rng = np.random.default_rng(31)
    model = mlp_for_opset(rng, opset)
    assert model.opset_import[0].version == opset
    program = run(model, tmp_path, dense_feeds(rng, K, scale=2.0))
    assert program.manifest["source"]["opset"] == opset
    assert ops_of(program) == ["Bank", "Clip", "Reshape", "Reshape", "Bank", "Softmax"]  # (Un)Squeeze: Reshape


@pytest.mark.parametrize("opset", [8, 9])
def test_ir3_initializers_listed_as_inputs_are_not_user_inputs(opset, tmp_path):
    rng = np.random.default_rng(32)
    inits = [("W1", rand(rng, 8, K)), ("b1", rand(rng, 8)), ("W2", rand(rng, 4, 8)), ("b2", rand(rng, 4))]
    inputs = [vinfo("x", ["N", K])] + [vinfo(n, list(a.shape)) for n, a in inits]
    model = make_model([node("Gemm", ["x", "W1", "b1"], ["g"], name="fc1", transB=1),
                        node("Relu", ["g"], ["r"], name="relu"),
                        node("Gemm", ["r", "W2", "b2"], ["y"], name="fc2", transB=1)],
                       inputs, [vinfo("y", ["N", 4])], inits, opset=opset, ir_version=3)
    assert [i.name for i in model.graph.input] == ["x", "W1", "b1", "W2", "b2"]
    program = run(model, tmp_path, dense_feeds(rng, K))
    assert [i["name"] for i in program.manifest["inputs"]] == ["x"]
    assert ops_of(program) == ["Bank", "Relu", "Bank"]


def test_standardised_inputs_in_minus_3_to_3(tmp_path):
    rng = np.random.default_rng(33)
    model = make_model([node("Gemm", ["x", "W1", "b1"], ["g"], name="fc1", transB=1),
                        node("Relu", ["g"], ["r"], name="relu"),
                        node("Gemm", ["r", "W2"], ["y"], name="fc2", transB=1)],
                       [vinfo("x", ["N", 10])], [vinfo("y", ["N", 3])],
                       [("W1", rand(rng, 16, 10)), ("b1", rand(rng, 16)), ("W2", rand(rng, 3, 16))])
    feeds = {"x": rng.uniform(-3, 3, (64, 10)).astype(np.float32)}
    program = run(model, tmp_path, feeds)
    (spec,) = program.manifest["inputs"]
    assert min(spec["lo"]) < -2.5 and max(spec["hi"]) > 2.5  # the program records the signed range
    first = bank_instructions(program)[0]
    assert program.tensors[first["inputs"][3]].min() < -2.5  # lo of the first bank is negative


def test_external_data_model(tmp_path):
    rng = np.random.default_rng(34)
    model = relu_mlp(rng, K)
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.bin", size_threshold=0)
    assert (tmp_path / "w.bin").stat().st_size >= (8 * K + 8 + 3 * 8) * 4
    assert not onnx.load(str(path), load_external_data=False).graph.initializer[0].raw_data
    program, _, _ = compile_and_compare(path, dense_feeds(rng, K))
    assert ops_of(program) == ["Bank", "Relu", "Bank"]


# ---------------------------------------------------------------------------------- errors

def test_transpose_moving_the_batch_axis_is_refused(tmp_path):
    rng = np.random.default_rng(35)
    model = make_model([node("Gemm", ["x", "W"], ["g"], name="fc", transB=1),
                        node("Transpose", ["g"], ["y"], name="swap_batch", perm=[1, 0])],
                       [vinfo("x", ["N", K])], [vinfo("y", [M, "N"])], [("W", rand(rng, M, K))])
    err = refused(model, tmp_path, dense_feeds(rng, K))
    assert [(p.node, p.op) for p in err.problems] == [("swap_batch", "Transpose")]
    assert "swap_batch" in str(err) and "batch" in str(err)


@pytest.mark.parametrize("shape", [[-1], [2, -1], [-1, 2]], ids=["all", "two_rows", "pairs"])
def test_reshape_across_the_batch_axis_is_refused(shape, tmp_path):
    rng = np.random.default_rng(36)
    model = make_model([node("Gemm", ["x", "W"], ["g"], name="fc", transB=1),
                        node("Reshape", ["g", "shape"], ["y"], name="mix_batch")],
                       [vinfo("x", ["N", K])], ["y"], [("W", rand(rng, 4, K)), ("shape", np.array(shape, np.int64))])
    err = refused(model, tmp_path, dense_feeds(rng, K))
    assert [(p.node, p.op) for p in err.problems] == [("mix_batch", "Reshape")]
    assert "batch" in str(err)


def test_flatten_axis_0_is_refused(tmp_path):
    model = make_model([node("Flatten", ["x"], ["f"], name="flat0", axis=0), node("Relu", ["f"], ["y"], name="relu")],
                       [vinfo("x", ["N", K])], ["y"])
    err = refused(model, tmp_path)
    assert [p.node for p in err.problems] == ["flat0"]


def test_reshape_to_one_row_mixes_the_batch_and_is_refused(tmp_path):
    rng = np.random.default_rng(37)
    model = make_model([node("Reshape", ["x", "shape"], ["r"], name="one_row"), node("Relu", ["r"], ["y"], name="relu")],
                       [vinfo("x", ["N", 4])], ["y"], [("shape", np.array([1, -1], np.int64))])
    feeds = {"x": rand(rng, 7, 4)}
    path = save(model, tmp_path)
    assert run_onnxruntime(str(path), feeds)[0]["y"].shape == (1, 28)
    err = refused(model, tmp_path, feeds)
    assert [p.node for p in err.problems] == ["one_row"]


def test_matmul_of_two_data_tensors_that_mixes_the_batch_is_refused(tmp_path):
    """(N, 3) @ (N, 4): the second operand's axis 0, the batch, is the product's contracted axis."""
    model = make_model([node("MatMul", ["a", "b"], ["y"], name="attention_scores")],
                       [vinfo("a", ["N", 3]), vinfo("b", [3, 4])], ["y"])
    err = refused(model, tmp_path)
    assert [(p.node, p.op) for p in err.problems] == [("attention_scores", "MatMul")]
    assert "data" in err.problems[0].reason and "batch" in err.problems[0].reason


def test_constant_on_the_left_of_matmul_is_refused(tmp_path):
    rng = np.random.default_rng(38)
    model = make_model([node("MatMul", ["W", "x"], ["y"], name="left_weight")],
                       [vinfo("x", ["N", 3, 2])], ["y"], [("W", rand(rng, 4, 3))])
    err = refused(model, tmp_path)
    assert [(p.node, p.op) for p in err.problems] == [("left_weight", "MatMul")]


def test_two_unsupported_nodes_are_both_listed(tmp_path):
    rng = np.random.default_rng(39)
    model = make_model([node("ConvTranspose", ["x", "Wt"], ["u"], name="upsample"),  # weights from data
                        node("Conv", ["u", "W"], ["c"], name="conv"),
                        node("Transpose", ["c"], ["y"], name="swap", perm=[1, 0, 2, 3])],  # moves the batch
                       [vinfo("x", ["N", 2, 4, 4]), vinfo("Wt", [2, 3, 2, 2])], ["y"],
                       [("W", rand(rng, 4, 3, 1, 1))])
    err = refused(model, tmp_path)
    assert sorted((p.node, p.op) for p in err.problems) == [("swap", "Transpose"), ("upsample", "ConvTranspose")]
    assert "2 unsupported node(s)" in str(err)


def test_two_data_matmuls_are_both_listed(tmp_path):
    model = make_model([node("MatMul", ["a", "b"], ["p"], name="mm1"),
                        node("MatMul", ["p", "c"], ["y"], name="mm2")],
                       [vinfo("a", ["N", 3]), vinfo("b", [3, 4]), vinfo("c", [4, 2])], ["y"])
    err = refused(model, tmp_path)  # rank-2 products of activations: each mixes the samples of a batch
    assert [p.node for p in err.problems] == ["mm1", "mm2"]


def test_unsupported_nodes_of_different_stages_are_listed_together(tmp_path):
    rng = np.random.default_rng(40)
    model = make_model([node("Gemm", ["x", "W"], ["g"], name="fc", transB=1),
                        node("Transpose", ["g"], ["t"], name="swap_batch", perm=[1, 0]),
                        node("MatMul", ["a", "b"], ["y2"], name="data_matmul")],
                       [vinfo("x", ["N", K]), vinfo("a", ["N", 3]), vinfo("b", [3, 2])], ["t", "y2"],
                       [("W", rand(rng, M, K))])
    err = refused(model, tmp_path)
    assert sorted(p.node for p in err.problems) == ["data_matmul", "swap_batch"]


# ---------------------------------------------------------------------------------- product bugs found

def test_zeros_like_batch_concatenated_to_the_input(tmp_path):
    """torch.cat([x, x.new_zeros(x.size(0), 3)], 1) as the TorchScript exporter writes it."""
    rng = np.random.default_rng(41)
    model = make_model([node("Shape", ["x"], ["sh"], name="shape"),
                        node("Gather", ["sh", "zero"], ["n"], name="batch", axis=0),
                        node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
                        node("Concat", ["n1", "three"], ["zshape"], name="zshape", axis=0),
                        node("ConstantOfShape", ["zshape"], ["z"], name="zeros",
                             value=helper.make_tensor("v", TP.FLOAT, [1], [0.0])),
                        node("Concat", ["x", "z"], ["c"], name="cat", axis=1),
                        node("Gemm", ["c", "W"], ["y"], name="fc", transB=1)],
                       [vinfo("x", ["N", 4])], [vinfo("y", ["N", 3])],
                       [("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)),
                        ("three", np.array([3], np.int64)), ("W", rand(rng, 3, 7))])
    err = refused(model, tmp_path, {"x": rand(rng, 7, 4)})  # folded at batch 1: refused, not a crash
    assert [p.node for p in err.problems] == ["cat"]
    assert "depends on the batch size" in err.problems[0].reason


def bounded_then(rng, act_nodes, act_inits=()):
    """x -> Gemm -> Sigmoid/Tanh bound -> activation ``a`` -> Gemm -> y."""
    return make_model([node("Gemm", ["x", "W1", "b1"], ["g"], name="fc1", transB=1),
                       node("Tanh", ["g"], ["t"], name="tanh"), *act_nodes,
                       node("Gemm", ["a", "W2"], ["y"], name="fc2", transB=1)],
                      [vinfo("x", ["N", K])], [vinfo("y", ["N", 3])],
                      [("W1", rand(rng, 8, K)), ("b1", rand(rng, 8)), ("W2", rand(rng, 3, 8)), *act_inits])


def test_leaky_relu_with_negative_alpha_after_tanh(tmp_path):
    rng = np.random.default_rng(42)
    model = bounded_then(rng, [node("LeakyRelu", ["t"], ["a"], name="abs_like", alpha=-0.5)])
    run(model, tmp_path, dense_feeds(rng, K, batch=16))


def test_elu_with_negative_alpha_after_tanh(tmp_path):
    rng = np.random.default_rng(43)
    model = bounded_then(rng, [node("Elu", ["t"], ["a"], name="elu_neg", alpha=-1.0)])
    run(model, tmp_path, dense_feeds(rng, K, batch=16))


def test_clip_with_min_above_max(tmp_path):
    rng = np.random.default_rng(44)
    model = bounded_then(rng, [node("Clip", ["t", "lo", "hi"], ["a"], name="inverted_clip")],
                         [("lo", np.array(0.5, np.float32)), ("hi", np.array(0.2, np.float32))])
    run(model, tmp_path, dense_feeds(rng, K, batch=16))


def test_rank_1_input(tmp_path):
    rng = np.random.default_rng(50)
    model = make_model([node("Unsqueeze", ["x", "axes"], ["u"], name="column"),
                        node("Gemm", ["u", "W", "b"], ["y"], name="fc", transB=1)],
                       [vinfo("x", ["N"])], [vinfo("y", ["N", 3])],
                       [("axes", np.array([1], np.int64)), ("W", rand(rng, 3, 1)), ("b", rand(rng, 3))])
    run(model, tmp_path, {"x": rand(rng, 5, scale=1)})


def test_layer_constants_do_not_overwrite_initializers_of_the_same_name(tmp_path):
    rng = np.random.default_rng(51)
    model = make_model([node("Gemm", ["x", "fc.weight", "fc.bias"], ["g"], name="fc", transB=1, beta=2.0),
                        node("Relu", ["g"], ["r"], name="relu"),
                        node("Add", ["r", "fc.bias"], ["y"], name="add_bias_again")],
                       [vinfo("x", ["N", 4])], [vinfo("y", ["N", 3])],
                       [("fc.weight", rand(rng, 3, 4)), ("fc.bias", rand(rng, 3))])
    run(model, tmp_path, dense_feeds(rng, 4))
