"""Elementwise operators: activations, arithmetic, comparisons and logic, on the electronic side.

Each kernel keeps its input's dtype and computes in it (float32 in, float32 out); attributes are
keyword arguments of plain Python values. The activations whose output is bounded whatever the
input (Sigmoid, Tanh, HardSigmoid, Clip with both limits) bound the next layer's input range; the
non-decreasing ones pass their input's bounds on (``ops.monotone``), and Add, Sub, Mul and Div
pass them on by interval arithmetic (``arithmetic_interval``: an exported standardisation
``(x - mean) / std`` keeps the declared input range).
"""
from __future__ import annotations

from functools import reduce as _fold

import numpy as np

from . import fixed_bounds, monotone, op, register, settings

# ONNX's Selu defaults are float32 constants; these are their exact values.
SELU_ALPHA = 1.67326319217681884765625
SELU_GAMMA = 1.05070102214813232421875


def scalar(x: np.ndarray, value) -> np.generic:
    """``value`` as a scalar of ``x``'s dtype, so that arithmetic stays in that dtype."""
    return x.dtype.type(value)


@op("Relu", "electronic", activation=True, interval=monotone,
    in_place=lambda x: np.maximum(x, x.dtype.type(0), out=x))
def relu(x) -> np.ndarray:
    """``max(x, 0)``."""
    x = np.asarray(x)
    return np.maximum(x, scalar(x, 0))


@op("LeakyRelu", "electronic", activation=True, interval=monotone)
def leaky_relu(x, *, alpha=0.01) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``alpha * x``."""
    x = np.asarray(x)
    return np.where(x < 0, scalar(x, alpha) * x, x)


@op("PRelu", "electronic", activation=True)
def prelu(x, slope) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``slope * x``, ``slope`` broadcast (NumPy rules) to ``x``."""
    x = np.asarray(x)
    slope = np.asarray(slope, dtype=x.dtype)
    return np.where(x < 0, slope * x, x)


@op("Sigmoid", "electronic", activation=True, bounds=fixed_bounds(0.0, 1.0), interval=monotone,
    note="optical on a photonic_sigmoid profile (exact mapping); bounds the next range to [0, 1]")
def sigmoid(x) -> np.ndarray:
    """``1 / (1 + exp(-x))``, as ``e / (1 + e)`` with ``e = exp(-|x|)`` for ``x < 0`` so that it
    never overflows."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    one = scalar(x, 1)
    return np.where(x >= 0, one, e) / (one + e)


@op("Tanh", "electronic", activation=True, bounds=fixed_bounds(-1.0, 1.0), interval=monotone,
    note="optical on a photonic_sigmoid profile (exact mapping); bounds the next range to [-1, 1]")
def tanh(x) -> np.ndarray:
    """``tanh(x)``."""
    return np.tanh(np.asarray(x))


def _clip_bounds(attrs):
    """Clip with both limits bounds its output (a min above the max clips everything to the max)."""
    if attrs.get("min") is None or attrs.get("max") is None:
        return None
    low, high = float(attrs["min"]), float(attrs["max"])
    return min(low, high), high


def _clip_onnx(node, x, *args):
    a = settings(node, args)
    return clip(x, min=a.get("min"), max=a.get("max"))


@op("Clip", "electronic", onnx=_clip_onnx, settings=("min", "max"), activation=True, bounds=_clip_bounds,
    interval=monotone, note="with both limits it bounds the next layer's input range")
def clip(x, *, min=None, max=None) -> np.ndarray:  # noqa: A002 - ONNX names
    """``min(max(x, min), max)``; an absent bound does not clip. If ``min > max`` the result is
    ``max`` everywhere, as ONNX specifies."""
    x = np.asarray(x)
    if min is not None:
        x = np.maximum(x, np.asarray(min, dtype=x.dtype))
    if max is not None:
        x = np.minimum(x, np.asarray(max, dtype=x.dtype))
    return x


@op("Elu", "electronic", activation=True, interval=monotone)
def elu(x, *, alpha=1.0) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``alpha * (exp(x) - 1)``."""
    x = np.asarray(x)
    return np.where(x < 0, scalar(x, alpha) * np.expm1(np.minimum(x, scalar(x, 0))), x)


@op("Selu", "electronic", activation=True, interval=monotone)
def selu(x, *, alpha=SELU_ALPHA, gamma=SELU_GAMMA) -> np.ndarray:
    """``gamma * x`` if ``x > 0`` else ``gamma * alpha * (exp(x) - 1)``."""
    x = np.asarray(x)
    neg = scalar(x, alpha) * np.expm1(np.minimum(x, scalar(x, 0)))
    return scalar(x, gamma) * np.where(x > 0, x, neg)


@op("Softplus", "electronic", activation=True, interval=monotone)
def softplus(x) -> np.ndarray:
    """``log(1 + exp(x))``, as ``log1p(exp(-|x|)) + max(x, 0)`` so that it never overflows."""
    x = np.asarray(x)
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, scalar(x, 0))


@op("Softsign", "electronic")
def softsign(x) -> np.ndarray:
    """``x / (1 + |x|)``."""
    x = np.asarray(x)
    return x / (scalar(x, 1) + np.abs(x))


@op("HardSigmoid", "electronic", activation=True, bounds=fixed_bounds(0.0, 1.0), interval=monotone)
def hard_sigmoid(x, *, alpha=0.2, beta=0.5) -> np.ndarray:
    """``max(0, min(1, alpha * x + beta))``."""
    x = np.asarray(x)
    return np.clip(scalar(x, alpha) * x + scalar(x, beta), scalar(x, 0), scalar(x, 1))


@op("HardSwish", "electronic")
def hard_swish(x) -> np.ndarray:
    """``x * max(0, min(1, x / 6 + 1/2))``."""
    x = np.asarray(x)
    return x * hard_sigmoid(x, alpha=1 / 6, beta=0.5)


@op("Exp", "electronic")
def exp(x) -> np.ndarray:
    """``e ** x``."""
    return np.exp(np.asarray(x))


@op("Log", "electronic")
def log(x) -> np.ndarray:
    """Natural logarithm."""
    return np.log(np.asarray(x))


@op("Sqrt", "electronic")
def sqrt(x) -> np.ndarray:
    """Square root."""
    return np.sqrt(np.asarray(x))


@op("Abs", "electronic")
def abs(x) -> np.ndarray:  # noqa: A001 - ONNX name
    """``|x|``."""
    return np.abs(np.asarray(x))


@op("Neg", "electronic")
def neg(x) -> np.ndarray:
    """``-x``."""
    return np.negative(np.asarray(x))


@op("Reciprocal", "electronic")
def reciprocal(x) -> np.ndarray:
    """``1 / x``."""
    x = np.asarray(x)
    return scalar(x, 1) / x


def _variadic(fn, mean=False):
    def apply(*xs):
        y = _fold(fn, xs)
        return y / len(xs) if mean else y
    return apply


@op("Div", "folded", interval=lambda node, lows, highs: arithmetic_interval(node, lows, highs),
    note="by a constant into the preceding bank; otherwise electronic")
def divide(a, b):
    """ONNX Div: integer division truncates (shape arithmetic), float division is exact IEEE."""
    if np.issubdtype(a.dtype, np.integer):
        return (np.trunc(a / b)).astype(a.dtype)
    return a / b


@op("Pow", "electronic", note="elementwise")
def power(a, b):
    return np.power(a, b).astype(a.dtype, copy=False)


@op("Scaler", "electronic", domain="ai.onnx.ml", note="ai.onnx.ml (skl2onnx StandardScaler)")
def scaler(x, *, offset, scale):
    """ai.onnx.ml Scaler: y = (x - offset) * scale, float32."""
    return ((x - np.asarray(offset, np.float32)) * np.asarray(scale, np.float32)).astype(np.float32)


@op("Binarizer", "electronic", domain="ai.onnx.ml", note="ai.onnx.ml")
def binarizer(x, *, threshold=0.0):
    """ai.onnx.ml Binarizer: 1 where ``x > threshold``, else 0, in ``x``'s dtype."""
    return (x > threshold).astype(x.dtype)


def arithmetic_interval(node, lows, highs):
    """``Op.interval`` of Add, Sub, Mul and Div of two bounded operands, by interval arithmetic
    (None for a division by an interval that holds 0)."""
    if len(lows) != 2:
        return None
    (alo, blo), (ahi, bhi) = [[np.asarray(v, np.float64) for v in ends] for ends in (lows, highs)]
    if node.op == "Add":
        return alo + blo, ahi + bhi
    if node.op == "Sub":
        return alo - bhi, ahi - blo
    if node.op == "Div":
        if ((blo <= 0) & (bhi >= 0)).any():
            return None
        blo, bhi = 1.0 / bhi, 1.0 / blo
    corners = np.stack(np.broadcast_arrays(alo * blo, alo * bhi, ahi * blo, ahi * bhi))
    return corners.min(axis=0), corners.max(axis=0)


register("Add", "folded", kernel=np.add, interval=arithmetic_interval, in_place=lambda a, b: np.add(a, b, out=a),
         note="constant bias into the preceding bank; residual adds of activations electronic")
register("Sub", "folded", kernel=np.subtract, interval=arithmetic_interval,
         note="constant into the preceding bank; otherwise electronic")
register("Mul", "folded", kernel=np.multiply, interval=arithmetic_interval,
         note="constant scale into the preceding bank; otherwise electronic (DenseNet-style)")
register("Sum", "electronic", kernel=_variadic(np.add), in_place=lambda a, b: np.add(a, b, out=a),
         note="residual sums of activations")
for _name, _fn in (("Max", _variadic(np.maximum)), ("Min", _variadic(np.minimum)),
                   ("Mean", _variadic(np.add, mean=True))):
    register(_name, "electronic", kernel=_fn, note="elementwise")
for _name, _fn in (("Floor", np.floor), ("Ceil", np.ceil), ("Round", np.round), ("Sign", np.sign),
                   ("Where", np.where), ("Equal", np.equal), ("Less", np.less), ("Greater", np.greater),
                   ("Not", np.logical_not), ("LessOrEqual", np.less_equal), ("GreaterOrEqual", np.greater_equal),
                   ("And", np.logical_and), ("Or", np.logical_or)):
    register(_name, "electronic", kernel=_fn)


# ------------------------------------------------------------------ more activations and functions

@op("Celu", "electronic", activation=True, interval=monotone, note="passes bounds on")
def celu(x, *, alpha=1.0) -> np.ndarray:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    x = np.asarray(x)
    a = scalar(x, alpha)
    return np.where(x > 0, x, a * np.expm1(np.minimum(x, scalar(x, 0)) / a))


@op("ThresholdedRelu", "electronic", activation=True, interval=monotone,
    note="non-decreasing for alpha >= 0 (passes bounds on)")
def thresholded_relu(x, *, alpha=1.0) -> np.ndarray:
    """``x`` if ``x > alpha`` else 0."""
    x = np.asarray(x)
    return np.where(x > scalar(x, alpha), x, scalar(x, 0))


@op("Shrink", "electronic", activation=True, note="hard and soft shrinkage")
def shrink(x, *, bias=0.0, lambd=0.5) -> np.ndarray:
    """``x + bias`` if ``x < -lambd``, ``x - bias`` if ``x > lambd``, else 0."""
    x = np.asarray(x)
    b, lam = scalar(x, bias), scalar(x, lambd)
    return np.where(x < -lam, x + b, np.where(x > lam, x - b, scalar(x, 0))).astype(x.dtype, copy=False)


@op("Mish", "electronic", activation=True, note="x tanh(softplus(x))")
def mish(x) -> np.ndarray:
    """``x * tanh(softplus(x))``."""
    x = np.asarray(x)
    return x * np.tanh(softplus(x))


@op("Swish", "electronic", activation=True, note="x sigmoid(alpha x)")
def swish(x, *, alpha=1.0) -> np.ndarray:
    """``x * sigmoid(alpha * x)``."""
    x = np.asarray(x)
    return x * sigmoid(scalar(x, alpha) * x)


@op("SwiGLU", "electronic", activation=True, note="Swish of the gate times the value")
def swiglu(a, b, *, alpha=1.0) -> np.ndarray:
    """``a * sigmoid(alpha * a) * b``: the gate ``a`` through Swish, times the value ``b``."""
    return swish(a, alpha=alpha) * b


@op("IsNaN", "electronic", note="bool")
def is_nan(x) -> np.ndarray:
    """``x != x`` (bool)."""
    return np.isnan(np.asarray(x))


@op("IsInf", "electronic", note="bool; either sign or both")
def is_inf(x, *, detect_negative=1, detect_positive=1) -> np.ndarray:
    """``x == -inf`` (with ``detect_negative``) or ``x == +inf`` (with ``detect_positive``), bool."""
    x = np.asarray(x)
    return np.isinf(x) & (((x < 0) & bool(detect_negative)) | ((x > 0) & bool(detect_positive)))


@op("Mod", "electronic", note="also in shape arithmetic, folded at compile time")
def mod(a, b, *, fmod=0) -> np.ndarray:
    """ONNX Mod: with ``fmod`` the remainder of truncated division (the dividend's sign, C's
    fmod; required for floats), otherwise of floored division (the divisor's sign, Python's %)."""
    a, b = np.asarray(a), np.asarray(b)
    return (np.fmod(a, b) if fmod else np.mod(a, b)).astype(a.dtype, copy=False)


@op("BitShift", "electronic", note="unsigned integers")
def bit_shift(x, y, *, direction) -> np.ndarray:
    """``x << y`` (``direction='LEFT'``, bits shifted out are lost) or ``x >> y`` (``'RIGHT'``)."""
    x = np.asarray(x)
    shift = np.left_shift if direction == "LEFT" else np.right_shift
    return shift(x, np.asarray(y, x.dtype)).astype(x.dtype, copy=False)


for _name, _fn, _facts in (
        ("Sin", np.sin, dict(bounds=fixed_bounds(-1.0, 1.0), note="bounds the next range to [-1, 1]")),
        ("Cos", np.cos, dict(bounds=fixed_bounds(-1.0, 1.0), note="bounds the next range to [-1, 1]")),
        ("Tan", np.tan, {}),
        ("Asin", np.arcsin, dict(interval=monotone, note="passes bounds on")),
        ("Acos", np.arccos, {}),
        ("Atan", np.arctan, dict(interval=monotone, note="passes bounds on")),
        ("Sinh", np.sinh, dict(interval=monotone, note="passes bounds on")),
        ("Cosh", np.cosh, {}),
        ("Asinh", np.arcsinh, dict(interval=monotone, note="passes bounds on")),
        ("Acosh", np.arccosh, dict(interval=monotone, note="passes bounds on")),
        ("Atanh", np.arctanh, dict(interval=monotone, note="passes bounds on"))):
    register(_name, "electronic", kernel=_fn, **_facts)
for _name, _fn, _note in (("Xor", np.logical_xor, "bool"), ("BitwiseAnd", np.bitwise_and, "integers"),
                          ("BitwiseOr", np.bitwise_or, "integers"), ("BitwiseXor", np.bitwise_xor, "integers"),
                          ("BitwiseNot", np.invert, "integers")):
    register(_name, "electronic", kernel=_fn, note=_note)
