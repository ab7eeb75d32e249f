"""The operators that let every model users export compile (issue 20): their kernels against
onnxruntime (one single-node model per case), their canonical forms' batch-axis refusals, and small
models that mix them with banks (Gemm, Conv) compiled for `ideal` and simulated."""
from __future__ import annotations

import re

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from helpers import compile_and_compare, make_model, save, vinfo
from photoncc import ops
from photoncc.errors import UnsupportedModel
from photoncc.ops import elementwise, functions, indexing, normalization, pool, quantize, reduce, resample, shapes, special

RTOL, ATOL = 1e-5, 1e-6


def onnxruntime(op, inputs, attrs=None, *, opset=18, out=(None,), domain=""):
    """The outputs of a one-node model ``op[attrs](*inputs)`` run by onnxruntime; every input (None:
    absent) is a graph input; ``out``: the outputs' dtypes (None: the first input's)."""
    names, feeds, infos = [], {}, []
    for i, value in enumerate(inputs):
        if value is None:
            names.append("")
            continue
        names.append(f"in{i}")
        feeds[f"in{i}"] = np.asarray(value)
        infos.append(vinfo(f"in{i}", np.shape(value), helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype)))
    outs = [f"out{i}" for i in range(len(out))]
    node = helper.make_node(op, names, outs, domain=domain, **(attrs or {}))
    types = [helper.np_dtype_to_tensor_dtype(np.dtype(t or np.asarray(inputs[0]).dtype)) for t in out]
    graph = helper.make_graph([node], "one", infos, [helper.make_tensor_value_info(o, t, None) for o, t in zip(outs, types)])
    opsets = [helper.make_opsetid(domain, opset)] + ([helper.make_opsetid("", 18)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8 if opset <= 17 else 10
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def check(got, want, rtol=RTOL, atol=ATOL):
    want = np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def rand(*shape, seed=0, scale=1.0, dtype=np.float32):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


X = rand(2, 3, 4, 5, seed=1, scale=2.0)
X.flat[:4] = [0.0, -0.0, 12.0, -12.0]


# ------------------------------------------------------------------------------ elementwise

UNARY = [  # (op, attrs, opset, input)
    ("Sin", {}, 7, X), ("Cos", {}, 7, X), ("Tan", {}, 7, X / 4), ("Atan", {}, 7, X),
    ("Asin", {}, 7, np.tanh(X)), ("Acos", {}, 7, np.tanh(X)), ("Sinh", {}, 9, X), ("Cosh", {}, 9, X),
    ("Asinh", {}, 9, X), ("Acosh", {}, 9, np.abs(X) + 1), ("Atanh", {}, 9, np.tanh(X) * 0.9),
    ("Celu", {}, 12, X), ("Celu", {"alpha": 0.5}, 12, X),
    ("ThresholdedRelu", {}, 10, X), ("ThresholdedRelu", {"alpha": 0.3}, 10, X),
    ("Shrink", {}, 9, X), ("Shrink", {"bias": 0.2, "lambd": 1.5}, 9, X),
    ("Mish", {}, 18, X), ("Swish", {}, 24, X), ("Swish", {"alpha": 0.5}, 24, X),
]


@pytest.mark.parametrize("op, attrs, opset, x", UNARY, ids=lambda v: v if isinstance(v, str) else None)
def test_unary(op, attrs, opset, x):
    want = onnxruntime(op, [x], attrs, opset=opset)[0]
    check(ops.kernels()[op](x, **attrs), want)
    check(ops.kernels()[op](x.astype(np.float64), **attrs), want.astype(np.float64), rtol=1e-5)


def test_is_nan_and_is_inf():
    x = np.array([[np.nan, np.inf, -np.inf, 0.0, -1.5]], np.float32)
    check(functions.is_nan(x), onnxruntime("IsNaN", [x], opset=13, out=(bool,))[0])
    for neg, pos in [(1, 1), (1, 0), (0, 1), (0, 0)]:
        attrs = dict(detect_negative=neg, detect_positive=pos)
        check(functions.is_inf(x, **attrs), onnxruntime("IsInf", [x], attrs, opset=10, out=(bool,))[0])


@pytest.mark.parametrize("fmod, dtype", [(0, np.int32), (0, np.int64), (1, np.int32), (1, np.float32), (1, np.float64)])
def test_mod(fmod, dtype):
    a = np.array([[-7, -5, -1, 0, 4, 7], [9, -9, 3, -3, 10, 11]], dtype)
    b = np.array([3, -3, 4, -4, 5, 2], dtype)
    check(functions.mod(a, b, fmod=fmod), onnxruntime("Mod", [a, b], {"fmod": fmod}, opset=13)[0], rtol=0, atol=0)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint32])
def test_bit_shift(direction, dtype):
    x = np.array([[1, 7, 200, 255]], dtype)
    y = np.array([1, 3, 2, 7], dtype)
    check(functions.bit_shift(x, y, direction=direction),
          onnxruntime("BitShift", [x, y], {"direction": direction}, opset=11)[0], rtol=0, atol=0)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor", "Xor"])
def test_binary_logic(op):
    a, b = np.array([[3, -8, 12, 0]], np.int32), np.array([[5, 7, -1, 9]], np.int32)
    if op == "Xor":
        a, b = a > 0, b > 0
    check(ops.kernels()[op](a, b), onnxruntime(op, [a, b], opset=18 if op != "Xor" else 7)[0], rtol=0, atol=0)
    if op != "Xor":
        check(ops.kernels()["BitwiseNot"](a), onnxruntime("BitwiseNot", [a], opset=18)[0], rtol=0, atol=0)


def test_swiglu_and_binarizer():
    a, b = X, rand(*X.shape, seed=2)
    check(functions.swiglu(a, b, alpha=1.5), a / (1 + np.exp(-1.5 * a)) * b, rtol=1e-6)
    check(elementwise.binarizer(X, threshold=0.5),
          onnxruntime("Binarizer", [X], {"threshold": 0.5}, opset=1, domain="ai.onnx.ml")[0])


# ------------------------------------------------------------------------------ reductions and selections

@pytest.mark.parametrize("axis, legacy", [(-1, False), (1, False), (2, False), (1, True), (2, True)])
def test_hardmax(axis, legacy):
    x = np.round(X)  # ties: the first largest wins
    want = onnxruntime("Hardmax", [x], {"axis": axis}, opset=11 if legacy else 13)[0]
    check(reduce.hardmax(x, axis=axis, legacy=legacy), want, rtol=0, atol=0)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis, k", [(-1, 3), (1, 2), (2, 4)])
def test_top_k(axis, k, largest):
    x = np.round(X)  # ties: the lower index first
    values, indices = onnxruntime("TopK", [x, np.array([k], np.int64)], {"axis": axis, "largest": largest},
                                  opset=11, out=(None, np.int64))
    got = reduce.top_k(x, K=k, axis=axis, largest=largest)
    check(got[0], values, rtol=0, atol=0)
    check(got[1], indices, rtol=0, atol=0)


@pytest.mark.parametrize("exclusive, reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_cumsum_and_cumprod(exclusive, reverse, dtype):
    x = (X * 2).astype(dtype)
    attrs = dict(exclusive=exclusive, reverse=reverse)
    for axis in (1, -1):
        want = onnxruntime("CumSum", [x, np.array(axis, np.int64)], attrs, opset=14)[0]
        check(reduce.cumsum(x, axis=axis, **attrs), want)
        small = (X[:, :, :, :3] * 0.7).astype(dtype) + 1
        want = onnxruntime("CumProd", [small, np.array(axis, np.int64)], attrs, opset=26)[0]
        check(reduce.cumprod(small, axis=axis, **attrs), want)


@pytest.mark.parametrize("axes", [(1,), (2, 3)])
def test_reduce_log_sum(axes):
    x = np.abs(X) + 0.1
    want = onnxruntime("ReduceLogSum", [x, np.array(axes, np.int64)], {"keepdims": 0}, opset=18)[0]
    check(reduce.reduce(x, op="ReduceLogSum", axes=axes, keepdims=False), want)


def test_det():
    x = rand(3, 2, 4, 4, seed=3)
    check(special.det(x), onnxruntime("Det", [x], opset=11)[0], rtol=1e-4)


# ------------------------------------------------------------------------------ normalisation

def test_instance_norm():
    scale, bias = rand(3, seed=4), rand(3, seed=5)
    want = onnxruntime("InstanceNormalization", [X, scale, bias], {"epsilon": 1e-3}, opset=6)[0]
    check(normalization.instance_norm(X, scale, bias, epsilon=1e-3), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset, per", [(18, "group"), (21, "channel")])
def test_group_norm(opset, per):
    x = rand(2, 6, 3, 4, seed=6, scale=3.0) + 1
    size = 3 if per == "group" else 6
    scale, bias = rand(size, seed=7), rand(size, seed=8)
    want = onnxruntime("GroupNormalization", [x, scale, bias], {"num_groups": 3, "epsilon": 1e-4}, opset=opset)[0]
    check(normalization.group_norm(x, scale, bias, num_groups=3, epsilon=1e-4), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 2, 1])
def test_rms_norm(axis):
    scale = rand(*X.shape[axis % 4:], seed=9)
    want = onnxruntime("RMSNormalization", [X, scale], {"axis": axis, "epsilon": 1e-5}, opset=23)[0]
    check(normalization.rms_norm(X, scale, axis=axis, epsilon=1e-5), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [1, -1])
def test_lp_norm(p, axis):
    x = X.copy()
    x[0, :, 0, 0] = 0  # a zero vector along axis 1: 0, not NaN
    want = onnxruntime("LpNormalization", [x], {"axis": axis, "p": p}, opset=1)[0]
    check(normalization.lp_norm(x, axis=axis, p=p), want)


def test_mean_variance_norm():
    want = onnxruntime("MeanVarianceNormalization", [X], {"axes": [1, 2, 3]}, opset=13)[0]
    check(normalization.mean_variance_norm(X, axes=(1, 2, 3)), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(p):
    attrs = dict(kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 0, 1])
    want = onnxruntime("LpPool", [X], {**attrs, "p": p}, opset=18)[0]
    check(pool.lp_pool(X, p=p, dilations=None, **attrs), want, rtol=1e-5, atol=1e-5)
    check(pool.global_lp_pool(X, p=p), onnxruntime("GlobalLpPool", [X], {"p": p}, opset=2)[0], rtol=1e-5)


# ------------------------------------------------------------------------------ layout

@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_and_space(mode):
    x = rand(2, 8, 3, 2, seed=10)
    want = onnxruntime("DepthToSpace", [x], {"blocksize": 2, "mode": mode}, opset=13)[0]
    check(shapes.depth_to_space(x, blocksize=2, mode=mode), want, rtol=0, atol=0)
    np.testing.assert_array_equal(shapes.space_to_depth(want, blocksize=2, mode=mode), x)  # its inverse
    if mode == "DCR":  # onnxruntime has no CRD SpaceToDepth yet
        check(shapes.space_to_depth(want, blocksize=2), onnxruntime("SpaceToDepth", [want], {"blocksize": 2}, opset=13)[0])


def test_expand_tile_center_crop_pad_trilu_compress():
    x = rand(2, 1, 4, seed=11)
    check(shapes.expand(x, shape=[3, 4]), onnxruntime("Expand", [x, np.array([2, 3, 4], np.int64)], opset=13)[0])
    check(shapes.tile(x, repeats=[1, 3, 2]), onnxruntime("Tile", [x, np.array([1, 3, 2], np.int64)], opset=13)[0])
    want = onnxruntime("CenterCropPad", [X, np.array([3, 6], np.int64)], {"axes": [2, 3]}, opset=18)[0]
    check(shapes.center_crop_pad(X, shape=[3, 3, 6]), want, rtol=0, atol=0)
    for k, upper in [(0, 1), (1, 0), (-2, 1)]:
        want = onnxruntime("Trilu", [X, np.array(k, np.int64)], {"upper": upper}, opset=14)[0]
        check(shapes.trilu(X, k=k, upper=upper), want, rtol=0, atol=0)
    condition = [1, 0, 1, 1]
    want = onnxruntime("Compress", [X, np.array(condition, bool)], {"axis": 2}, opset=11)[0]
    check(indexing.compress(X, condition=condition, axis=2), want, rtol=0, atol=0)


def test_gathers_and_one_hot():
    indices = np.array([[[2, -1, 0], [1, 1, -3]]], np.int64).repeat(2, axis=0)  # (2, 2, 3)
    data = rand(2, 2, 4, seed=12)
    want = onnxruntime("GatherElements", [data, indices], {"axis": 2}, opset=13)[0]
    check(indexing.gather_elements(data, indices, axis=2), want, rtol=0, atol=0)
    nd = np.array([[[1, 2], [0, -1]], [[1, 0], [0, 3]]], np.int64)  # (2, 2, 2): two pairs per sample
    want = onnxruntime("GatherND", [data, nd], {"batch_dims": 1}, opset=13)[0]
    check(indexing.gather_nd(data, nd, batch_dims=1), want, rtol=0, atol=0)
    table = rand(5, 3, seed=13)
    want = onnxruntime("GatherND", [table, np.array([[[4], [0]]], np.int64)], opset=13)[0]
    check(indexing.gather_nd(table, np.array([[[4], [0]]], np.int64)), want, rtol=0, atol=0)
    hot = np.array([[0, 3, -1, 7]], np.int64)  # 7 is out of range: all off
    values = np.array([-1.0, 2.5], np.float32)
    for axis in (-1, 1):
        want = onnxruntime("OneHot", [hot, np.array(5, np.int64), values], {"axis": axis}, opset=11,
                           out=(np.float32,))[0]
        check(indexing.one_hot(hot, depth=5, values=[-1.0, 2.5], dtype="float32", axis=axis), want, rtol=0, atol=0)


# ------------------------------------------------------------------------------ quantisation

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16])
def test_quantize_and_dequantize_per_tensor_and_axis(dtype):
    opset = 21 if dtype == np.int16 else 13
    x = X * 40
    for scale, zero, axis in [(np.float32(0.37), dtype(3), 1), (np.array([0.2, 0.5, 1.0], np.float32),
                                                                np.array([0, 2, 5], dtype), 1)]:
        q = onnxruntime("QuantizeLinear", [x, scale, zero], {"axis": axis}, opset=opset, out=(dtype,))[0]
        check(quantize.quantize_linear(x, scale, zero, axis=axis), q, rtol=0, atol=0)  # ties to even
        want = onnxruntime("DequantizeLinear", [q, scale, zero], {"axis": axis}, opset=opset, out=(np.float32,))[0]
        check(quantize.dequantize_linear(q, scale, zero, axis=axis), want)


def test_quantize_blocked():
    scale = np.abs(rand(2, 3, 2, 5, seed=14)) + 0.1
    zero = np.full((2, 3, 2, 5), -4, np.int8)
    q = onnxruntime("QuantizeLinear", [X * 20, scale, zero], {"axis": 2, "block_size": 2}, opset=21, out=(np.int8,))[0]
    check(quantize.quantize_linear(X * 20, scale, zero, axis=2, block_size=2), q, rtol=0, atol=0)
    want = onnxruntime("DequantizeLinear", [q, scale, zero], {"axis": 2, "block_size": 2}, opset=21,
                       out=(np.float32,))[0]
    check(quantize.dequantize_linear(q, scale, zero, axis=2, block_size=2), want)


# ------------------------------------------------------------------------------ Resize and Upsample, end to end

def _resize_model(opset, attrs, scales=None, sizes=None, roi=None, shape=(2, 3, 5, 7), upsample=False):
    """A dynamic-batch Conv -> Resize model (settings as initializers; full-rank sizes computed from
    the Conv's shape, as exporters write them) and its feeds."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"])]
    inits = [("w", rand(3, 3, 1, 1, seed=15))]
    names = ["h"]
    if upsample:
        inits.append(("scales", np.array(scales, np.float32)))
        nodes.append(helper.make_node("Upsample", ["h", "scales"], ["y"], **attrs))
    else:
        for name, value, dtype in (("roi", roi, np.float32), ("scales", scales, np.float32), ("sizes", sizes, np.int64)):
            if value is None:
                names += [""] if opset >= 11 else []
            elif name == "sizes" and len(value) == len(shape):  # Concat(Shape(h)[:2], spatial sizes)
                nodes += [helper.make_node("Shape", ["h"], ["hs"], end=2),
                          helper.make_node("Concat", ["hs", "spatial"], ["sizes"], axis=0)]
                inits.append(("spatial", np.array(value[2:], np.int64)))
                names.append("sizes")
            else:
                names.append(name)
                inits.append((name, np.array(value, dtype)))
        nodes.append(helper.make_node("Resize", names, ["y"], **attrs))
    model = make_model(nodes, [vinfo("x", ["N", *shape[1:]])], ["y"], inits, opset=opset)
    return model, {"x": rand(*shape, seed=16, scale=3.0)}


COORDINATES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"]
RESIZE_CASES = (
    [dict(mode="nearest", coordinate_transformation_mode=c, nearest_mode=n)
     for c in COORDINATES for n in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")]
    + [dict(mode=m, coordinate_transformation_mode=c) for m in ("linear", "cubic") for c in COORDINATES]
    + [dict(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1), dict(mode="linear", antialias=1),
       dict(mode="cubic", antialias=1)]
)


@pytest.mark.parametrize("scales", [[1, 1, 2.0, 1.5], [1, 1, 0.6, 0.45]], ids=["up", "down"])
@pytest.mark.parametrize("attrs", RESIZE_CASES, ids=lambda a: "-".join(str(v) for v in a.values()))
def test_resize_compiles_and_matches_onnxruntime(tmp_path, attrs, scales):
    model, feeds = _resize_model(19, attrs, scales=scales)
    program, _, _ = compile_and_compare(save(model, tmp_path), feeds)
    assert "Resize" in [i["op"] for i in program.instructions]


@pytest.mark.parametrize("attrs, sizes", [
    (dict(mode="linear"), [1, 3, 9, 4]), (dict(mode="nearest", axes=[3, 2]), [11, 8]),
    (dict(mode="cubic", axes=[2, 3], keep_aspect_ratio_policy="not_larger"), [9, 9]),
    (dict(mode="linear", axes=[2, 3], keep_aspect_ratio_policy="not_smaller"), [3, 3]),
    (dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-2.0), [1, 3, 6, 6]),
])
def test_resize_to_sizes(tmp_path, attrs, sizes):
    roi = [0, 0, 0.2, -0.1, 1, 1, 0.9, 1.3] if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize" else None
    model, feeds = _resize_model(18, attrs, sizes=sizes, roi=roi)
    compile_and_compare(save(model, tmp_path), feeds)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2.0, 3.0], [1, 1, 1.5, 2.5]])
def test_upsample_and_opset_10_resize(tmp_path, mode, scales):
    """As onnxruntime runs them: asymmetric coordinates, nearest floor where an axis grows (and
    ceil where an opset-10 Resize shrinks one)."""
    model, feeds = _resize_model(9, {"mode": mode}, scales=scales, upsample=True)
    program, _, _ = compile_and_compare(save(model, tmp_path), feeds)
    assert [i["op"] for i in program.instructions][-1] == "Resize"
    model, feeds = _resize_model(10, {"mode": mode}, scales=[1, 1, scales[2], 0.6])
    compile_and_compare(save(model, tmp_path, "r10.onnx"), feeds)


def test_resize_of_an_integer_image_nearest_or_refused(tmp_path):
    """Nearest resizes integers exactly; ONNX leaves the rounding of interpolated integers open."""
    for mode in ("nearest", "linear"):
        nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode)]
        model = make_model(nodes, [vinfo("x", ["N", 1, 4, 4], TensorProto.UINT8)], ["y"],
                           [("scales", np.array([1, 1, 1.5, 2.5], np.float32))], opset=13)
        feeds = {"x": np.random.default_rng(17).integers(0, 256, (2, 1, 4, 4)).astype(np.uint8)}
        if mode == "nearest":
            compile_and_compare(save(model, tmp_path), feeds)
        else:
            with pytest.raises(UnsupportedModel, match="interpolates integers"):
                compile_and_compare(save(model, tmp_path, "linear.onnx"), feeds)


# ------------------------------------------------------------------------------ mixed models, end to end

def test_a_segmentation_head_compiles_and_matches_onnxruntime(tmp_path):
    """Conv -> InstanceNormalization -> Relu -> Resize (bilinear, x2) -> Conv -> DepthToSpace ->
    LpPool -> Mish, dynamic batch, simulated on 3 samples."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("InstanceNormalization", ["c1", "g", "b"], ["n"], epsilon=1e-4),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Resize", ["r", "", "scales"], ["u"], mode="linear"),
             helper.make_node("Conv", ["u", "w2"], ["c2"]),
             helper.make_node("DepthToSpace", ["c2"], ["d"], blocksize=2, mode="CRD"),
             helper.make_node("LpPool", ["d"], ["p"], kernel_shape=[2, 2], strides=[2, 2], p=2),
             helper.make_node("Mish", ["p"], ["y"])]
    inits = [("w1", rand(4, 3, 3, 3, seed=18, scale=0.3)), ("g", rand(4, seed=19)), ("b", rand(4, seed=20)),
             ("scales", np.array([1, 1, 2, 2], np.float32)), ("w2", rand(8, 4, 1, 1, seed=21, scale=0.3))]
    model = make_model(nodes, [vinfo("x", ["N", 3, 6, 6])], ["y"], inits, opset=18)
    program, _, _ = compile_and_compare(save(model, tmp_path), {"x": rand(3, 3, 6, 6, seed=22)})
    assert {"InstanceNormalization", "Resize", "DepthToSpace", "LpPool", "Mish"} <= {i["op"] for i in program.instructions}


def test_legacy_shape_arithmetic_with_mod_folds_and_data_expand_tile_run_per_sample(tmp_path):
    """The legacy exporter's shape arithmetic (nn.Unflatten, multi-head reshapes): Shape -> Gather
    -> Mod, Div -> Concat -> Reshape folds to a per-sample Reshape once the batch is bound; Expand
    and Tile of data (constant shape and repeats) and a CumSum run electronically, per sample,
    between two Gemms (dynamic batch, simulated on 4 samples)."""
    def const(name, *value):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64,
                                                                                  [len(value)], value))
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1),                  # (N, 12)
             helper.make_node("Shape", ["h"], ["s"]), const("one", 1), const("five", 5), const("minus", -1),
             helper.make_node("Gather", ["s", "one"], ["f"], axis=0),                  # 12
             helper.make_node("Mod", ["f", "five"], ["m"]),                            # 2
             helper.make_node("Add", ["m", "one"], ["cols"]),                          # 3
             helper.make_node("Div", ["f", "cols"], ["rows"]),                         # 4
             helper.make_node("Concat", ["minus", "rows", "cols"], ["shape"], axis=0),
             helper.make_node("Reshape", ["h", "shape"], ["r"]),                       # (N, 4, 3)
             const("target", 1, 4, 3), helper.make_node("Expand", ["r", "target"], ["e"]),
             const("reps", 1, 1, 2), helper.make_node("Tile", ["e", "reps"], ["t"]),   # (N, 4, 6)
             helper.make_node("CumSum", ["t", "axis"], ["cs"]),
             const("flat", 0, 24), helper.make_node("Reshape", ["cs", "flat"], ["z"]),
             helper.make_node("Gemm", ["z", "w2"], ["y"], transB=1)]
    inits = [("w1", rand(12, 6, seed=23)), ("w2", rand(5, 24, seed=24)), ("axis", np.array(2, np.int64))]
    model = make_model(nodes, [vinfo("x", ["N", 6])], ["y"], inits, opset=14)
    program, _, _ = compile_and_compare(save(model, tmp_path), {"x": rand(4, 6, seed=25)})
    found = [i["op"] for i in program.instructions]
    assert "Mod" not in found and "Shape" not in found and {"Expand", "Tile", "CumSum"} <= set(found)


def test_a_qdq_model_compiles_with_its_weights_dequantised_onto_the_banks(tmp_path):
    """A model in the QDQ format: the int8 weights' DequantizeLinear folds into the Gemm's weights
    (a bank); the activations' QuantizeLinear -> DequantizeLinear pairs run electronically."""
    w = np.random.default_rng(26).integers(-127, 128, (4, 8)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=0),
             helper.make_node("Gemm", ["xd", "wd"], ["h"], transB=1),
             helper.make_node("QuantizeLinear", ["h", "sh", "zh"], ["hq"]),
             helper.make_node("DequantizeLinear", ["hq", "sh", "zh"], ["y"])]
    inits = [("sx", np.float32(0.05)), ("zx", np.uint8(128)), ("wq", w), ("sw", np.abs(rand(4, seed=27)) / 50 + 1e-3),
             ("zw", np.zeros(4, np.int8)), ("sh", np.float32(0.1)), ("zh", np.int8(0))]
    model = make_model(nodes, [vinfo("x", ["N", 8])], ["y"], inits, opset=13)
    program, _, _ = compile_and_compare(save(model, tmp_path), {"x": rand(16, 8, seed=28, scale=2.0)}, rtol=2e-2)
    found = [i["op"] for i in program.instructions]
    assert found.count("DequantizeLinear") == 2 and "Bank" in found


# ------------------------------------------------------------------------------ the batch axis

BATCH_REFUSALS = [  # (node, inputs' initializers, the model's input shape, the reason's words)
    (helper.make_node("Resize", ["x", "", "s"], ["y"]), [("s", np.array([2, 1, 1, 1], np.float32))],
     [2, 3, 4, 4], "resizes the batch axis (axis 0)"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"]), [("s", np.array([1, 2, 1, 1], np.float32))],
     [2, 3, 4, 4], "resizes the channel axis (axis 1)"),
    (helper.make_node("Tile", ["x", "r"], ["y"]), [("r", np.array([2, 1], np.int64))], [2, 3], "repeats the batch axis"),
    (helper.make_node("Expand", ["x", "s"], ["y"]), [("s", np.array([4, 2, 3], np.int64))], [2, 3],
     "broadcasts across the batch axis"),
    (helper.make_node("CumSum", ["x", "a"], ["y"]), [("a", np.array(0, np.int64))], [2, 3], "batch axis (axis 0)"),
    (helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=0), [("k", np.array([1], np.int64))], [2, 3],
     "batch axis (axis 0)"),
    (helper.make_node("LpNormalization", ["x"], ["y"], axis=0), [], [2, 3], "batch axis (axis 0)"),
    (helper.make_node("RMSNormalization", ["x", "g"], ["y"], axis=0), [("g", np.ones((2, 3), np.float32))], [2, 3],
     "normalises across the batch axis (axis 0)"),
    (helper.make_node("MeanVarianceNormalization", ["x"], ["y"], axes=[0, 2, 3]), [], [2, 3, 4, 4],
     "normalises across the batch axis (axis 0)"),
    (helper.make_node("Trilu", ["x"], ["y"]), [], [3, 3], "the matrix's rows are the batch axis (axis 0)"),
    (helper.make_node("OneHot", ["x", "d", "v"], ["y"], axis=0),
     [("d", np.array(4, np.int64)), ("v", np.array([0, 1], np.float32))], [2, 3], "before the batch axis"),
    (helper.make_node("GatherND", ["x", "i"], ["y"]), [("i", np.array([[0, 1]], np.int64))], [2, 3],
     "indexes across the batch axis (axis 0)"),
]


@pytest.mark.parametrize("node, inits, shape, reason", BATCH_REFUSALS, ids=lambda v: getattr(v, "op_type", None))
def test_ops_that_would_mix_the_samples_are_refused_naming_the_batch_axis(tmp_path, node, inits, shape, reason):
    elem = TensorProto.INT64 if node.op_type == "OneHot" else TensorProto.FLOAT
    model = make_model([node], [vinfo("x", shape, elem)], list(node.output)[:1], inits, opset=23)
    x = np.ones(shape, np.int64 if elem == TensorProto.INT64 else np.float32)
    with pytest.raises(UnsupportedModel, match=re.escape(reason)):
        compile_and_compare(save(model, tmp_path), {"x": x})


def test_new_ops_are_listed_with_their_mapping_and_nothing_supported_is_refused():
    for name in ("Resize", "Upsample", "InstanceNormalization", "DepthToSpace", "SpaceToDepth", "Mod", "Expand",
                 "Tile", "Range", "QuantizeLinear", "TopK", "CumSum"):
        assert ops.accepts(name, ""), name
        assert ops.get(name).note, name
    assert not set(ops.REFUSED) & {name for name, found in ops.REGISTRY.items() if found.onnx_op}
    assert resample.geometry((1, 3, 5, 7), {"scales": [1, 1, 0.6, 1.5]})[0] == [1, 3, 3, 10]
