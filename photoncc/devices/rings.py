"""Microring physics shared by the ring architectures (incoherent and balanced banks): what weights a
ring can hold and how the chip realises the weights a program sets.

* A ring's weight is its drop transmission T in [0, 1] (incoherent) or, read by a balanced pair
  of photodetectors, a signed weight in the profile's ``bank.weight_range`` (``reach``).
* Static thermal crosstalk (profile ``noise.crosstalk`` = c) couples neighbouring rings of a bank:
  ring i realises w_i + c (w_{i-1} + w_{i+1}) (``apply_crosstalk``). It is systematic, part of
  the device and always on; the compiler pre-compensates it (``compensate_crosstalk``: the
  weights to set are (I + c N)^-1 w, clipped into reach).
* ``realised_weights``: the weights a bank realises from the program's tensor (codes decoded by
  ``program.weight_step``), with crosstalk and, given them, each ring's programming error, clipped
  into reach. The compiler calibrates the ADC ranges on them, the simulator loads its banks with
  them: one account of the device for both.
* Row gains are powers of two (``power_of_two_ceil``), so that ``gain * T`` reconstructs a row of
  the matrix exactly, and the bias carrier's power c too (``bias_carrier``).

Crosstalk is elementwise along the rings; ``apply_crosstalk`` shares it over the cores with
``share`` (``cpu.threaded``), which another backend replaces.
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from ..program import weight_step


def reach(profile: dict, signed: bool) -> tuple[float, float]:
    """The weights a ring can realise: a transmission in [0, 1], or a balanced bank's weight_range."""
    return tuple(profile["bank"]["weight_range"]) if signed else (0.0, 1.0)


def apply_crosstalk(tiles: np.ndarray, c: float, share=cpu.threaded) -> np.ndarray:
    """Thermal crosstalk along each bank: ring i's weight becomes w_i + c (w_{i-1} + w_{i+1})."""
    if not c:
        return tiles

    def couple(out, w):  # w_{i+1} + w_{i-1} (0 past the ends), then c x that + w_i; banks apart
        out[..., :-1] = w[..., 1:]
        out[..., -1] = 0
        out[..., 1:] += w[..., :-1]
        out *= c
        out += w
    out = np.empty_like(tiles)
    share(couple, out, tiles)
    return out


def crosstalk_matrix(rings: int, c: float) -> np.ndarray:
    """(I + c N): each ring's effective weight picks up c times each neighbour's along the bank."""
    return np.eye(rings) + c * (np.eye(rings, k=1) + np.eye(rings, k=-1))


def compensate_crosstalk(tiles: np.ndarray, c: float, limits: tuple[float, float]) -> np.ndarray:
    """Weights to program so that, after crosstalk, the banks hold ``tiles`` (as far as reachable)."""
    if c == 0:
        return tiles
    inverse = np.linalg.inv(crosstalk_matrix(tiles.shape[-1], c))
    out = tiles @ inverse.T
    return np.clip(out, *limits, out=out)


def coupled_weights(tiles: np.ndarray, attrs: dict, profile: dict, dtype) -> np.ndarray:
    """The program's weights, decoded, with the profile's thermal crosstalk (not yet clipped)."""
    weights = tiles.astype(dtype, copy=False)
    if attrs.get("weight_bits"):
        weights = weights * np.dtype(dtype).type(weight_step(attrs["weight_bits"], bool(attrs.get("signed"))))
    return apply_crosstalk(weights, profile["noise"]["crosstalk"])


def realised(weights: np.ndarray, attrs: dict, profile: dict, error: np.ndarray | None = None) -> np.ndarray:
    """``coupled_weights`` plus, given them, the rings' programming errors (of ``weights``' shape),
    clipped to the reachable range: with ``error`` a new array (``weights`` is left as it was),
    without it ``weights`` clipped in place (when crosstalk made it a new array) or returned as it is."""
    if error is not None:  # in the weights' dtype (float64 for tile reads), a new array
        weights = weights + error
    if profile["noise"]["crosstalk"] or error is not None:
        weights = np.clip(weights, *reach(profile, bool(attrs.get("signed"))), out=weights)
    return weights


def realised_weights(tiles: np.ndarray, attrs: dict, profile: dict, dtype, error=None) -> np.ndarray:
    """The ring weights (G, R, Q, B, C) a bank realises, in ``dtype``: the program's weights (decoded
    from codes when quantised) with the profile's thermal crosstalk and, given ``error``, each
    ring's programming error, clipped to the reachable range. Without decoding, crosstalk or error
    it is the program's read-only tensor itself. In two steps, ``realised(coupled_weights(...))``,
    for a caller whose one decoding serves a device with programming error and its noiseless twin."""
    return realised(coupled_weights(tiles, attrs, profile, dtype), attrs, profile, error)


def power_of_two_ceil(x: np.ndarray) -> np.ndarray:
    """Smallest power of two >= x (1 where x is 0), so that dividing by it is exact."""
    mantissa, exponent = np.frexp(np.where(x > 0, x, 1.0))
    return np.ldexp(1.0, exponent - (mantissa == 0.5))


def bias_carrier(bias: np.ndarray, gain: np.ndarray) -> float:
    """Smallest power of two c with |bias| / (gain c) <= 1 in every row (1 if that is enough)."""
    need = float((np.abs(bias) / gain).max(initial=0.0))
    return float(power_of_two_ceil(np.array(max(need, 1.0))))
