"""Every reverse-mode rule of the op registry (``Op.vjp``) against central finite differences in
float64, on random inputs (Hypothesis draws the seed and the sizes).

The check: for output cotangents c and a random direction v of one input x,

    <vjp(c)_x, v>  ==  (f(x + h v) - f(x - h v)) / 2h   with  f(x) = sum_j <c_j, y_j(x)>

for every differentiable input; a rule must give None for the inputs that are not (settings,
integer tensors). The cases are parametrized over ``ops.differentiable()``: an op given a rule is
tested at once, with the generic one-input case below unless CASES says how to build its inputs
(a test fails for a ruled op that needs a case and has none). The inputs and outputs a rule
does not save (``ops.saves``) are given to it as the tape gives them, as stand-ins of their shape
holding zeros, so a rule that reads what it does not keep fails here.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from photoncc import ops
from photoncc.ir import Node
from photoncc.train.tape import stand_in

H = 1e-6


def _x(rng, shape, low=None, high=None):
    return rng.uniform(low, high, shape) if low is not None else rng.normal(size=shape)


def node(op, n_in, attrs=None, n_out=1):
    return Node(op, tuple(f"i{k}" for k in range(n_in)), tuple(f"o{k}" for k in range(n_out)), attrs or {}, op)


def unary(op, low=None, high=None, attrs=None):
    return lambda rng, size: (node(op, 1, attrs), [_x(rng, (2, size, 3), low, high)], [0])


def binary(op, positive_b=False):
    def case(rng, size):
        shapes = [((2, size, 3), (2, size, 3)), ((2, size, 3), (3,)), ((2, 1, 3), (2, size, 1))][size % 3]
        b = _x(rng, shapes[1], 0.5, 2.0) if positive_b else _x(rng, shapes[1])
        return node(op, 2), [_x(rng, shapes[0]), b], [0, 1]
    return case


def conv_case(rng, size):
    group = [1, 2][size % 2]
    x = _x(rng, (2, 2 * group, size + 4, 5))
    w = _x(rng, (4, 2, 3, 2))
    attrs = {"kernel_shape": [3, 2], "strides": [1 + size % 2, 1], "pads": [1, 0, size % 2, 1],
             "dilations": [1, 1 + size % 2], "group": group}
    return node("Conv", 3, attrs), [x, w, _x(rng, (4,))], [0, 1, 2]


def linear_case(rng, size):
    if size % 2:
        x, w = _x(rng, (2, 3, size + 3)), _x(rng, (4, 3, 2))
        conv = {"kernel_shape": [2], "strides": [2], "pads": [1, 0], "dilations": [1], "group": 1}
        return node("Linear", 3, {"conv": conv}), [x, w, _x(rng, (4,))], [0, 1, 2]
    return node("Linear", 3), [_x(rng, (3, 2, size + 1)), _x(rng, (4, size + 1)), _x(rng, (4,))], [0, 1, 2]


def gemm_case(rng, size):
    ta, tb = size % 2, (size // 2) % 2
    a = _x(rng, (3, 4) if not ta else (4, 3))
    b = _x(rng, (4, 5) if not tb else (5, 4))
    c = _x(rng, [(5,), (3, 5), (1,)][size % 3])
    return node("Gemm", 3, {"transA": ta, "transB": tb, "alpha": 0.7, "beta": 1.3}), [a, b, c], [0, 1, 2]


def matmul_case(rng, size):
    shapes = [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((4,), (4, 3)), ((2, 3, 4), (4,)), ((1, 3, 4), (2, 4, 2))]
    a, b = shapes[size % len(shapes)]
    return node("MatMul", 2), [_x(rng, a), _x(rng, b)], [0, 1]


def pool_case(op):
    def case(rng, size):
        attrs = {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, size % 2, 1], "dilations": [1, 1 + size % 2],
                 "ceil_mode": size % 2}
        if op == "AveragePool":
            attrs = {**attrs, "count_include_pad": (size // 2) % 2, "dilations": [1, 1]}
        return node(op, 1, attrs), [_x(rng, (2, 3, size + 5, 6))], [0]
    return case


def layer_norm_case(rng, size):
    x = _x(rng, (2, 3, size + 2))
    axis = 1 + size % 2
    scale = _x(rng, x.shape[axis:])
    return (node("LayerNormalization", 3, {"axis": axis, "epsilon": 1e-5}, n_out=3),
            [x, scale, _x(rng, x.shape[axis:])], [0, 1, 2])


def batch_norm_case(rng, size):
    c = size + 1
    return (node("BatchNormalization", 5, {"epsilon": 1e-5}),
            [_x(rng, (2, c, 3, 2)), _x(rng, (c,)), _x(rng, (c,)), _x(rng, (c,)), _x(rng, (c,), 0.5, 2.0)],
            [0, 1, 2, 3, 4])


def softmax_case(op):
    def case(rng, size):
        legacy = size % 2 == 1
        return node(op, 1, {"axis": 1 + size % 2, "legacy": legacy}), [_x(rng, (2, 3, size + 2))], [0]
    return case


def reduce_case(op, low=None):
    def case(rng, size):
        axes = [[1], [2], [1, 2]][size % 3]
        return node(op, 1, {"axes": axes, "keepdims": size % 2}), [_x(rng, (2, 3, 4), low, 2.0 if low else None)], [0]
    return case


def slice_case(rng, size):
    attrs = [{"starts": [1], "ends": [4], "axes": [2], "steps": [2]},
             {"starts": [-1, 0], "ends": [-10, 2], "axes": [2, 1], "steps": [-1, 1]}][size % 2]
    return node("Slice", 1, attrs), [_x(rng, (2, 3, 5))], [0]


def pad_case(rng, size):
    mode = ["constant", "reflect", "edge", "wrap"][size % 4]
    return node("Pad", 1, {"pads": [0, 1, -1, 0, 2, 1], "mode": mode, "value": 0.5}), [_x(rng, (2, 3, 4))], [0]


def split_case(rng, size):
    return node("Split", 1, {"axis": 1, "split": [1, size + 1]}, n_out=2), [_x(rng, (2, size + 2, 3))], [0]


CASES = {
    "Log": unary("Log", 0.5, 2.0), "Sqrt": unary("Sqrt", 0.5, 2.0), "Reciprocal": unary("Reciprocal", 0.5, 2.0),
    "LeakyRelu": unary("LeakyRelu", attrs={"alpha": 0.1}), "Elu": unary("Elu", attrs={"alpha": 0.7}),
    "HardSigmoid": unary("HardSigmoid", -4, 4, attrs={"alpha": 0.3, "beta": 0.4}),
    "Gelu": lambda rng, size: (node("Gelu", 1, {"approximate": ["none", "tanh"][size % 2]}), [_x(rng, (2, 3))], [0]),
    "Scaler": lambda rng, size: (node("Scaler", 1, {"offset": [0.5, -1.0], "scale": [2.0, 0.25]}),
                                 [_x(rng, (3, 2)).astype(np.float32)], [0]),
    "Clip": lambda rng, size: (node("Clip", 1, {"min": -0.5, "max": [0.7, -0.8][size % 2]}), [_x(rng, (3, 4))], [0]),
    "Add": binary("Add"), "Sub": binary("Sub"), "Mul": binary("Mul"), "Div": binary("Div", positive_b=True),
    "Pow": lambda rng, size: (node("Pow", 2), [_x(rng, (2, 3), 0.5, 2.0), _x(rng, [(2, 3), (3,)][size % 2])], [0, 1]),
    "PRelu": lambda rng, size: (node("PRelu", 2), [_x(rng, (2, 3, 4)), _x(rng, [(3, 1), (4,)][size % 2])], [0, 1]),
    "Sum": lambda rng, size: (node("Sum", 3), [_x(rng, (2, 3)), _x(rng, (3,)), _x(rng, (2, 3))], [0, 1, 2]),
    "Mean": lambda rng, size: (node("Mean", 2), [_x(rng, (2, 3)), _x(rng, (2, 1))], [0, 1]),
    "Max": lambda rng, size: (node("Max", 2), [_x(rng, (2, 3)), _x(rng, (3,))], [0, 1]),
    "Min": lambda rng, size: (node("Min", 3), [_x(rng, (2, 3)), _x(rng, (3,)), _x(rng, (2, 3))], [0, 1, 2]),
    "Where": lambda rng, size: (node("Where", 3), [rng.random((2, 3)) > 0.5, _x(rng, (2, 3)), _x(rng, (3,))], [1, 2]),
    "Conv": conv_case, "Linear": linear_case, "Gemm": gemm_case, "MatMul": matmul_case,
    "MaxPool": pool_case("MaxPool"), "AveragePool": pool_case("AveragePool"),
    "BatchNormalization": batch_norm_case, "LayerNormalization": layer_norm_case,
    "Softmax": softmax_case("Softmax"), "LogSoftmax": softmax_case("LogSoftmax"),
    "LRN": lambda rng, size: (node("LRN", 1, {"size": 2 + size % 2, "alpha": 0.3, "beta": 0.75, "bias": 1.0}),
                              [_x(rng, (2, 5, 3))], [0]),
    "Reshape": lambda rng, size: (node("Reshape", 1, {"shape": [3, 2 * size + 2]}), [_x(rng, (2, 2, 3, size + 1))], [0]),
    "Flatten": lambda rng, size: (node("Flatten", 1, {"axis": 1}), [_x(rng, (2, 3, size + 1))], [0]),
    "Squeeze": lambda rng, size: (node("Squeeze", 2), [_x(rng, (2, 1, 3)), np.array([1])], [0]),
    "Unsqueeze": lambda rng, size: (node("Unsqueeze", 2), [_x(rng, (2, 3)), np.array([1, 3])], [0]),
    "Transpose": lambda rng, size: (node("Transpose", 1, {"perm": [0, 2, 3, 1]}), [_x(rng, (2, 3, 4, size + 1))], [0]),
    "Concat": lambda rng, size: (node("Concat", 2, {"axis": 1}), [_x(rng, (2, 3)), _x(rng, (2, size + 1))], [0, 1]),
    "Split": split_case, "Slice": slice_case, "Pad": pad_case,
    "Gather": lambda rng, size: (node("Gather", 2, {"axis": 1}), [_x(rng, (2, 4, 3)), np.array([[3, 0], [3, 1]])], [0]),
    "ArrayFeatureExtractor": lambda rng, size: (node("ArrayFeatureExtractor", 2), [_x(rng, (3, 4)), np.array([2, 0, 2])],
                                                [0]),
    "Cast": lambda rng, size: (node("Cast", 1, {"to": "float32"}), [_x(rng, (2, 3))], [0]),
    "GlobalAveragePool": lambda rng, size: (node("GlobalAveragePool", 1), [_x(rng, (2, 3, 4, size + 1))], [0]),
    "GlobalMaxPool": lambda rng, size: (node("GlobalMaxPool", 1), [_x(rng, (2, 3, 4, size + 1))], [0]),
    "ArgMax": lambda rng, size: (node("ArgMax", 1, {"axis": 1}), [_x(rng, (2, 3))], []),
    "ArgMin": lambda rng, size: (node("ArgMin", 1, {"axis": 1}), [_x(rng, (2, 3))], []),
    **{op: reduce_case(op) for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2",
                                      "ReduceSumSquare", "ReduceLogSumExp")},
    "ReduceProd": reduce_case("ReduceProd", low=0.5), "ReduceL1": reduce_case("ReduceL1"),
    "ReduceLogSum": reduce_case("ReduceLogSum", low=0.5),
    **{op: lambda rng, size, op=op: (node(op, 2), [_x(rng, (2, 3)), _x(rng, (2, 3))], [])
       for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")},
    **{op: lambda rng, size, op=op: (node(op, 2), [rng.random((2, 3)) > 0.5, rng.random((2, 3)) > 0.5], [])
       for op in ("And", "Or")},
    "Not": lambda rng, size: (node("Not", 1), [rng.random((2, 3)) > 0.5], []),
}
LOW_PRECISION = {"Scaler", "Cast"}  # float32 outputs: finite differences to float32 rounding
# ops whose inputs the generic one-input case cannot build (they need settings, shapes, integers...)
NEEDS_A_CASE = {name for name in ops.REGISTRY if ops.REGISTRY[name].settings} | {"Linear", "Gemm", "MatMul", "Conv"}


def outputs_of(n, inputs):
    out = ops.REGISTRY[n.op].evaluate(n, *inputs)
    return list(out) if isinstance(out, tuple) else [out]


def projected(n, inputs, cts):
    """f(inputs) = sum_j <c_j, y_j>, in float64."""
    return sum(float(np.sum(np.asarray(y, np.float64) * c)) for y, c in zip(outputs_of(n, inputs), cts)
               if c is not None)


@pytest.mark.parametrize("name", ops.differentiable())
@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(1, 4))
def test_vjp_rule_matches_finite_differences(name, seed, size):
    rng = np.random.default_rng(seed)
    assert name in CASES or name not in NEEDS_A_CASE, f"{name}: give tests/test_vjp.py a case for its inputs"
    n, inputs, diff = CASES.get(name, unary(name))(rng, size)
    outs = outputs_of(n, inputs)
    cts = [rng.normal(size=np.shape(y)) if np.asarray(y).dtype.kind == "f" else None for y in outs]
    rule = ops.REGISTRY[name].vjp
    saved = getattr(rule, "saves", {"inputs", "outputs"})  # what the rule reads: the rest as the tape gives it
    grads = rule(n, [x if "inputs" in saved else stand_in(x) for x in inputs],
                 [y if "outputs" in saved else stand_in(y) for y in outs], cts)
    assert len(grads) == len(inputs), f"{name}: one cotangent per input"
    h, tol = (1e-2, 1e-3) if name in LOW_PRECISION else (H, 1e-5)
    for i, x in enumerate(inputs):
        if i not in diff:
            assert grads[i] is None or not np.any(grads[i]), f"{name}: input {i} is not differentiable"
            continue
        assert grads[i] is not None and np.shape(grads[i]) == np.shape(x), f"{name}: input {i}'s cotangent shape"
        v = rng.normal(size=np.shape(x))
        plus = [x + h * v if k == i else a for k, a in enumerate(inputs)]
        minus = [x - h * v if k == i else a for k, a in enumerate(inputs)]
        finite = (projected(n, plus, cts) - projected(n, minus, cts)) / (2 * h)
        exact = float(np.sum(np.asarray(grads[i], np.float64) * v))
        assert abs(finite - exact) <= tol * (1 + abs(finite)), f"{name} input {i}: rule {exact}, finite differences {finite}"


# what the digits models of tests/data and the onnx wheel's light CNNs run through, after canonicalize
NEEDED = {"Sub", "Div", "Gemm", "MatMul", "Conv", "Linear", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
          "LogSoftmax", "Add", "Mul", "Sum", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
          "Reshape", "Flatten", "Transpose", "Concat", "LRN", "Gelu", "Erf", "LayerNormalization", "Clip", "Identity",
          "Dropout", "Split", "Slice", "Pad", "Squeeze", "Unsqueeze", "ReduceMean"}


def test_the_ops_with_rules_cover_the_models_photoncc_is_tested_on():
    have = set(ops.differentiable())
    assert NEEDED <= have, f"ops without a VJP rule: {sorted(NEEDED - have)}"
    assert len(have) >= 81, f"only {len(have)} ops have a VJP rule (81 had one)"
