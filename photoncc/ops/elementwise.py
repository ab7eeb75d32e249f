"""Elementwise operators: activations, arithmetic, comparisons and logic, on the electronic side.

Each kernel keeps its input's dtype and computes in it (float32 in, float32 out); attributes are
keyword arguments of plain Python values. The activations whose output is bounded whatever the
input (Sigmoid, Tanh, HardSigmoid, Clip with both limits) bound the next layer's input range; the
non-decreasing ones pass their input's bounds on (``ops.monotone``), and Add, Sub, Mul and Div
pass them on by interval arithmetic (``arithmetic_interval``: an exported standardisation
``(x - mean) / std`` keeps the declared input range).

Each differentiable op carries its reverse-mode rule (``vjp``, the registry's JAX / autograd
shape: cotangents of the inputs from those of the outputs), written beside its kernel; the
piecewise ones (Relu, Clip, Abs...) take the derivative of the side the input lies on, and the
rounding ops (Floor, Ceil, Round, Sign) the derivative zero they have almost everywhere. More
activations and functions, which have no rules, are in ``functions``.
"""
from __future__ import annotations

from functools import reduce as _fold

import numpy as np

from . import fixed_bounds, monotone, op, register, saves, settings, unbroadcast

# ONNX's Selu defaults are float32 constants; these are their exact values.
SELU_ALPHA = 1.67326319217681884765625
SELU_GAMMA = 1.05070102214813232421875


def scalar(x: np.ndarray, value) -> np.generic:
    """``value`` as a scalar of ``x``'s dtype, so that arithmetic stays in that dtype."""
    return x.dtype.type(value)


@saves("outputs")
def _relu_vjp(node, inputs, outputs, cts):
    return (np.where(outputs[0] > 0, cts[0], 0).astype(cts[0].dtype),)


def _unary(derivative, uses="inputs"):
    """The VJP rule of a one-input op: ``g * derivative(x, y, **attrs)`` (``uses``: what it reads)."""
    @saves(*((uses,) if isinstance(uses, str) else uses))
    def rule(node, inputs, outputs, cts):
        g = cts[0]
        d = derivative(inputs[0] if inputs else None, outputs[0] if outputs else None, **node.attrs)
        return (np.asarray(g * d, dtype=g.dtype),)
    return rule


@op("Relu", "electronic", activation=True, interval=monotone, vjp=_relu_vjp,
    in_place=lambda x: np.maximum(x, x.dtype.type(0), out=x))
def relu(x) -> np.ndarray:
    """``max(x, 0)``."""
    x = np.asarray(x)
    return np.maximum(x, scalar(x, 0))


@op("LeakyRelu", "electronic", activation=True, interval=monotone,
    vjp=_unary(lambda x, y, alpha=0.01: np.where(x < 0, alpha, 1.0)))
def leaky_relu(x, *, alpha=0.01) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``alpha * x``."""
    x = np.asarray(x)
    return np.where(x < 0, scalar(x, alpha) * x, x)


@saves("inputs")
def _prelu_vjp(node, inputs, outputs, cts):
    x, slope = inputs
    g = cts[0]
    negative = x < 0
    return (np.where(negative, slope * g, g).astype(g.dtype), unbroadcast(np.where(negative, x * g, 0), slope.shape))


@op("PRelu", "electronic", activation=True, vjp=_prelu_vjp)
def prelu(x, slope) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``slope * x``, ``slope`` broadcast (NumPy rules) to ``x``."""
    x = np.asarray(x)
    slope = np.asarray(slope, dtype=x.dtype)
    return np.where(x < 0, slope * x, x)


@op("Sigmoid", "electronic", activation=True, bounds=fixed_bounds(0.0, 1.0), interval=monotone,
    vjp=_unary(lambda x, y: y * (1 - y), "outputs"),
    note="optical on a photonic_sigmoid profile (exact mapping); bounds the next range to [0, 1]")
def sigmoid(x) -> np.ndarray:
    """``1 / (1 + exp(-x))``, as ``e / (1 + e)`` with ``e = exp(-|x|)`` for ``x < 0`` so that it
    never overflows."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    one = scalar(x, 1)
    return np.where(x >= 0, one, e) / (one + e)


@op("Tanh", "electronic", activation=True, bounds=fixed_bounds(-1.0, 1.0), interval=monotone,
    vjp=_unary(lambda x, y: 1 - y * y, "outputs"),
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


@saves("inputs")
def _clip_vjp(node, inputs, outputs, cts):
    """1 inside [min, max] (bounds included), 0 where clipped, and 0 everywhere when min > max."""
    a = settings(node, inputs[1:])
    x, g = inputs[0], cts[0]
    low, high = a.get("min"), a.get("max")
    inside = np.ones(x.shape, bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    if low is not None and high is not None and low > high:
        inside[...] = False
    return (np.where(inside, g, 0).astype(g.dtype),) + (None,) * (len(inputs) - 1)


@op("Clip", "electronic", onnx=_clip_onnx, vjp=_clip_vjp, settings=("min", "max"), activation=True, bounds=_clip_bounds,
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


@op("Elu", "electronic", activation=True, interval=monotone,
    vjp=_unary(lambda x, y, alpha=1.0: np.where(x < 0, alpha * np.exp(np.minimum(x, 0)), 1.0)))
def elu(x, *, alpha=1.0) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``alpha * (exp(x) - 1)``."""
    x = np.asarray(x)
    return np.where(x < 0, scalar(x, alpha) * np.expm1(np.minimum(x, scalar(x, 0))), x)


@op("Selu", "electronic", activation=True, interval=monotone,
    vjp=_unary(lambda x, y, alpha=SELU_ALPHA, gamma=SELU_GAMMA:
               gamma * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))))
def selu(x, *, alpha=SELU_ALPHA, gamma=SELU_GAMMA) -> np.ndarray:
    """``gamma * x`` if ``x > 0`` else ``gamma * alpha * (exp(x) - 1)``."""
    x = np.asarray(x)
    neg = scalar(x, alpha) * np.expm1(np.minimum(x, scalar(x, 0)))
    return scalar(x, gamma) * np.where(x > 0, x, neg)


@op("Softplus", "electronic", activation=True, interval=monotone, vjp=_unary(lambda x, y: sigmoid(x)))
def softplus(x) -> np.ndarray:
    """``log(1 + exp(x))``, as ``log1p(exp(-|x|)) + max(x, 0)`` so that it never overflows."""
    x = np.asarray(x)
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, scalar(x, 0))


@op("Softsign", "electronic", vjp=_unary(lambda x, y: 1 / (1 + np.abs(x)) ** 2))
def softsign(x) -> np.ndarray:
    """``x / (1 + |x|)``."""
    x = np.asarray(x)
    return x / (scalar(x, 1) + np.abs(x))


@op("HardSigmoid", "electronic", activation=True, bounds=fixed_bounds(0.0, 1.0), interval=monotone,
    vjp=_unary(lambda x, y, alpha=0.2, beta=0.5: np.where((alpha * x + beta > 0) & (alpha * x + beta < 1), alpha, 0.0)))
def hard_sigmoid(x, *, alpha=0.2, beta=0.5) -> np.ndarray:
    """``max(0, min(1, alpha * x + beta))``."""
    x = np.asarray(x)
    return np.clip(scalar(x, alpha) * x + scalar(x, beta), scalar(x, 0), scalar(x, 1))


def _hard_swish_slope(x, y):
    inner = x / 6 + 0.5
    return np.clip(inner, 0, 1) + np.where((inner > 0) & (inner < 1), x / 6, 0.0)


@op("HardSwish", "electronic", vjp=_unary(_hard_swish_slope))
def hard_swish(x) -> np.ndarray:
    """``x * max(0, min(1, x / 6 + 1/2))``."""
    x = np.asarray(x)
    return x * hard_sigmoid(x, alpha=1 / 6, beta=0.5)


@op("Exp", "electronic", vjp=_unary(lambda x, y: y, "outputs"))
def exp(x) -> np.ndarray:
    """``e ** x``."""
    return np.exp(np.asarray(x))


@op("Log", "electronic", vjp=_unary(lambda x, y: 1 / x))
def log(x) -> np.ndarray:
    """Natural logarithm."""
    return np.log(np.asarray(x))


@op("Sqrt", "electronic", vjp=_unary(lambda x, y: 0.5 / y, "outputs"))
def sqrt(x) -> np.ndarray:
    """Square root."""
    return np.sqrt(np.asarray(x))


@op("Abs", "electronic", vjp=_unary(lambda x, y: np.sign(x)))
def abs(x) -> np.ndarray:  # noqa: A001 - ONNX name
    """``|x|``."""
    return np.abs(np.asarray(x))


@op("Neg", "electronic", vjp=_unary(lambda x, y: -1.0, ()))
def neg(x) -> np.ndarray:
    """``-x``."""
    return np.negative(np.asarray(x))


@op("Reciprocal", "electronic", vjp=_unary(lambda x, y: -y * y, "outputs"))
def reciprocal(x) -> np.ndarray:
    """``1 / x``."""
    x = np.asarray(x)
    return scalar(x, 1) / x


def _variadic(fn, mean=False):
    def apply(*xs):
        y = _fold(fn, xs)
        return y / len(xs) if mean else y
    return apply


def _float(*arrays) -> bool:
    return all(np.asarray(a).dtype.kind == "f" for a in arrays)


@saves("inputs")
def _div_vjp(node, inputs, outputs, cts):
    a, b = inputs
    g = cts[0]
    if not _float(a, b):
        return None, None
    return unbroadcast(g / b, a.shape), unbroadcast(-g * a / (b * b), b.shape)


@op("Div", "folded", interval=lambda node, lows, highs: arithmetic_interval(node, lows, highs), vjp=_div_vjp,
    note="by a constant into the preceding bank; otherwise electronic")
def divide(a, b):
    """ONNX Div: integer division truncates (shape arithmetic), float division is exact IEEE."""
    if np.issubdtype(a.dtype, np.integer):
        return (np.trunc(a / b)).astype(a.dtype)
    return a / b


def _pow_vjp(node, inputs, outputs, cts):
    """d/da = b a^(b-1); d/db = a^b log a where a > 0 (0 elsewhere, where it is not real)."""
    a, b = inputs
    g, y = cts[0], outputs[0]
    if not _float(a):
        return None, None
    da = unbroadcast(g * b * np.power(a, b - 1), a.shape).astype(a.dtype)
    db = unbroadcast(g * y * np.log(np.where(a > 0, a, 1)), b.shape).astype(b.dtype) if _float(b) else None
    return da, db


@op("Pow", "electronic", note="elementwise", vjp=_pow_vjp)
def power(a, b):
    return np.power(a, b).astype(a.dtype, copy=False)


@op("Scaler", "electronic", domain="ai.onnx.ml", note="ai.onnx.ml (skl2onnx StandardScaler)",
    vjp=_unary(lambda x, y, offset, scale: np.asarray(scale, np.float32), ()))
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


@saves()
def _add_vjp(node, inputs, outputs, cts):
    if not _float(*inputs):
        return None, None
    return unbroadcast(cts[0], inputs[0].shape), unbroadcast(cts[0], inputs[1].shape)


@saves()
def _sub_vjp(node, inputs, outputs, cts):
    if not _float(*inputs):
        return None, None
    return unbroadcast(cts[0], inputs[0].shape), unbroadcast(-cts[0], inputs[1].shape)


@saves("inputs")
def _mul_vjp(node, inputs, outputs, cts):
    a, b = inputs
    if not _float(a, b):
        return None, None
    return unbroadcast(cts[0] * b, a.shape), unbroadcast(cts[0] * a, b.shape)


@saves()
def _sum_vjp(node, inputs, outputs, cts):
    return tuple(unbroadcast(cts[0], x.shape) for x in inputs)


@saves()
def _mean_vjp(node, inputs, outputs, cts):
    return tuple(unbroadcast(cts[0] / len(inputs), x.shape) for x in inputs)


def _extreme_vjp(node, inputs, outputs, cts):
    """Max / Min: the cotangent goes to the input that gave the result (the first of ties)."""
    y, g = outputs[0], cts[0]
    taken = np.zeros(np.shape(y), bool)
    out = []
    for x in inputs:
        mine = (np.broadcast_to(x, y.shape) == y) & ~taken
        taken |= mine
        out.append(unbroadcast(np.where(mine, g, 0).astype(g.dtype), x.shape))
    return tuple(out)


@saves()
def _flat_vjp(node, inputs, outputs, cts):
    """Floor, Ceil, Round, Sign: a derivative of 0 almost everywhere."""
    return (np.zeros_like(cts[0]),)


@saves("inputs")
def _where_vjp(node, inputs, outputs, cts):
    condition, a, b = inputs
    g = cts[0]
    return (None, unbroadcast(np.where(condition, g, 0).astype(g.dtype), a.shape),
            unbroadcast(np.where(condition, 0, g).astype(g.dtype), b.shape))


@saves()
def no_gradient(node, inputs, outputs, cts):
    """The rule of an op whose output is not a real number (comparisons, logic, arg reductions):
    nothing flows back through it."""
    return (None,) * len(inputs)


register("Add", "folded", kernel=np.add, interval=arithmetic_interval, in_place=lambda a, b: np.add(a, b, out=a),
         vjp=_add_vjp,
         note="constant bias into the preceding bank; residual adds of activations electronic")
register("Sub", "folded", kernel=np.subtract, interval=arithmetic_interval, vjp=_sub_vjp,
         note="constant into the preceding bank; otherwise electronic")
register("Mul", "folded", kernel=np.multiply, interval=arithmetic_interval, vjp=_mul_vjp,
         note="constant scale into the preceding bank; otherwise electronic (DenseNet-style)")
register("Sum", "electronic", kernel=_variadic(np.add), in_place=lambda a, b: np.add(a, b, out=a), vjp=_sum_vjp,
         note="residual sums of activations")
for _name, _fn, _rule in (("Max", _variadic(np.maximum), _extreme_vjp), ("Min", _variadic(np.minimum), _extreme_vjp),
                          ("Mean", _variadic(np.add, mean=True), _mean_vjp)):
    register(_name, "electronic", kernel=_fn, note="elementwise", vjp=_rule)
for _name, _fn, _rule in (("Floor", np.floor, _flat_vjp), ("Ceil", np.ceil, _flat_vjp), ("Round", np.round, _flat_vjp),
                          ("Sign", np.sign, _flat_vjp), ("Where", np.where, _where_vjp),
                          ("Equal", np.equal, no_gradient), ("Less", np.less, no_gradient),
                          ("Greater", np.greater, no_gradient), ("Not", np.logical_not, no_gradient),
                          ("LessOrEqual", np.less_equal, no_gradient), ("GreaterOrEqual", np.greater_equal, no_gradient),
                          ("And", np.logical_and, no_gradient), ("Or", np.logical_or, no_gradient)):
    register(_name, "electronic", kernel=_fn, vjp=_rule)
