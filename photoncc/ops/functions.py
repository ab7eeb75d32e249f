"""More elementwise operators, on the electronic side, without reverse-mode rules: activations
(Celu, ThresholdedRelu, Shrink, Mish, Swish, SwiGLU), the NaN and infinity tests, Mod, BitShift,
the trigonometric and hyperbolic functions, Xor and the bitwise operators.

As in ``elementwise``, each kernel keeps its input's dtype; Sin and Cos bound the next layer's
input range to [-1, 1], and the non-decreasing ones pass their input's bounds on (``ops.monotone``).
"""
from __future__ import annotations

import numpy as np

from . import fixed_bounds, monotone, op, register
from .elementwise import scalar, sigmoid, softplus


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
