"""Special functions: the error function and GELU, evaluated in float64 to within 1e-15 and rounded
to the input's dtype (float32 rounding of a float32 series would be off by several units); the
determinant, by LU factorisation in float64."""
from __future__ import annotations

import math

import numpy as np

from . import op, saves
from .elementwise import scalar
from .shapes import matrix_axes

_ERF_SPLIT = 2.0
_SERIES_TERMS = 32   # converged to double precision for |x| < _ERF_SPLIT
_CF_TERMS = 60       # converged to double precision for |x| >= _ERF_SPLIT
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
# 1 / (1*3*5*...*(2n+1)), the coefficients of sum_n t^n / (2n+1)!!
_SERIES_COEFFS = tuple(1.0 / math.prod(range(1, 2 * n + 2, 2)) for n in range(_SERIES_TERMS + 1))


def _exp_minus_square(a: np.ndarray) -> np.ndarray:
    """``exp(-a*a)`` without the rounding error of ``a*a``: split ``a = z + (a - z)`` with ``z``
    rounded to 24 bits so that ``z*z`` is exact, and ``-a*a = -z*z + (z - a)(z + a)``."""
    z = a.astype(np.float32).astype(np.float64)
    return np.exp(-z * z) * np.exp((z - a) * (z + a))


def _erf_erfc64(x) -> tuple[np.ndarray, np.ndarray]:
    """``(erf(x), erfc(x))`` in float64, to within 1e-15 absolute (erfc to ~1e-15 relative for
    x >= 2, where it matters for the tail of ``gelu``).

    For ``|x| < 2`` the everywhere-positive series
    ``erf(a) = 2/sqrt(pi) * a * exp(-a^2) * sum_n (2a^2)^n / (1*3*...*(2n+1))``;
    beyond, the Laplace continued fraction
    ``erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))``.
    Both are fixed-length loops over the terms (each step vectorised over the whole array).
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    erf_a = np.empty_like(a)
    erfc_a = np.empty_like(a)

    small = a < _ERF_SPLIT
    s = a[small]
    t = 2.0 * s * s
    total = np.full_like(s, _SERIES_COEFFS[-1])  # Horner, in place
    for coeff in _SERIES_COEFFS[-2::-1]:
        total *= t
        total += coeff
    e = _TWO_OVER_SQRT_PI * s * _exp_minus_square(s) * total
    erf_a[small] = e
    erfc_a[small] = 1.0 - e

    large = ~small  # includes NaN, which propagates
    b = np.minimum(a[large], 40.0)  # erfc(40) underflows to 0; keeps inf out of the fraction
    f = b.copy()
    for k in range(_CF_TERMS, 0, -1):  # innermost first, in place: f = b + (k/2) / f
        np.divide(0.5 * k, f, out=f)
        f += b
    c = _exp_minus_square(b) / (math.sqrt(math.pi) * f)
    erfc_a[large] = c
    erf_a[large] = 1.0 - c

    erf_x = np.copysign(erf_a, x)
    erfc_x = np.where(x < 0, 2.0 - erfc_a, erfc_a)
    return erf_x, erfc_x


@saves("inputs")
def _erf_vjp(node, inputs, outputs, cts):
    """d erf(x) / dx = 2 / sqrt(pi) exp(-x^2)."""
    x = inputs[0].astype(np.float64)
    return ((cts[0] * _TWO_OVER_SQRT_PI * np.exp(-x * x)).astype(cts[0].dtype),)


@saves("inputs")
def _gelu_vjp(node, inputs, outputs, cts):
    """Exact GELU: Phi(x) + x phi(x) (Phi, phi: the standard normal's distribution and density);
    tanh form: 1/2 (1 + t) + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2), t = tanh(inner)."""
    x = inputs[0].astype(np.float64)
    if node.attrs.get("approximate", "none") == "tanh":
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x ** 3))
        slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    else:
        slope = 0.5 * _erf_erfc64(-x / math.sqrt(2.0))[1] + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return ((cts[0] * slope).astype(cts[0].dtype),)


@op("Erf", "electronic", vjp=_erf_vjp)
def erf(x) -> np.ndarray:
    """Error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``, evaluated in float64 and
    rounded to ``x``'s dtype."""
    x = np.asarray(x)
    return _erf_erfc64(x)[0].astype(x.dtype, copy=False)


@op("Gelu", "electronic", vjp=_gelu_vjp)
def gelu(x, *, approximate="none") -> np.ndarray:
    """ONNX Gelu: ``x/2 * (1 + erf(x/sqrt 2))`` (as ``x/2 * erfc(-x/sqrt 2)``, in float64), or
    with ``approximate='tanh'`` ``x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`` in ``x``'s
    dtype."""
    x = np.asarray(x)
    if approximate == "tanh":
        inner = scalar(x, math.sqrt(2.0 / math.pi)) * (x + scalar(x, 0.044715) * x * x * x)
        return scalar(x, 0.5) * x * (scalar(x, 1) + np.tanh(inner))
    if approximate != "none":
        raise ValueError(f"Gelu: unknown approximate={approximate!r}")
    x64 = x.astype(np.float64)
    return (0.5 * x64 * _erf_erfc64(-x64 / math.sqrt(2.0))[1]).astype(x.dtype, copy=False)


@op("Det", "electronic", canonical=matrix_axes, note="of the matrices of the last two axes")
def det(x) -> np.ndarray:
    """The determinant of each square matrix of the last two axes, in float64 (LU factorisation)
    rounded to ``x``'s dtype."""
    x = np.asarray(x)
    return np.linalg.det(x.astype(np.float64)).astype(x.dtype)
