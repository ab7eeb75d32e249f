"""The training form of a ring-bank layer: what one Linear does on the device, as fine-tuning's
forward needs it (``photoncc.train.surrogate``), for both ring architectures (``incoherent``,
``balanced``: each passes its ``split``).

For the layer's weights W, bias b and the input range [lo, lo + alpha] of each matrix column (the
compile's, ``ranges``), the same steps as the compiler and the device:

1. the architecture's bank form (``split``: ring weights T, power-of-two row gains g, shift s,
   carrier c), cut into tiles (``tiles``);
2. the integer codes (``ring_codes.quantise_bank``: rows rescaled, crosstalk pre-compensated,
   codes rounded, electronic offsets), for a chip's measured errors when one is given;
3. the weights the chip realises (``rings.realised_weights``: codes with the thermal crosstalk and
   the rings' programming errors ``error``, clipped into reach);
4. the layer as one signed product, the simulator's direct form: y = W_eff x' + b_eff with
   W_eff = g (T_u - T_c) and b_eff = g (t_b c + T_c alpha - (T_u - T_c) lo) - s + offset, x' the
   modulated input (clipped to [lo, lo + alpha], on the DAC's levels).

Returned with the constants of the statistical read-noise model for the layer's ADC ranges
(``sim.noise.read_noise_rows``): what the simulator's default noise model adds. Every step is
whole-array NumPy over the layer (no loop over rows, rings or tiles).
"""
from __future__ import annotations

import numpy as np

from ..program import bank_channels
from .ring_codes import quantise_bank
from .rings import realised_weights
from .tiles import tile, untile


def train_form(split, w, b, lo, alpha, profile, error=None, chip=None, adc=None) -> dict:
    """The layer's device form for weights ``w`` (M, K) or a convolution's (M, C/G, *k), bias ``b``
    (M,) and per-column ranges ``lo``, ``alpha`` (G, K/G): a dict with ``weight`` (w's shape,
    float32) and ``bias`` (M,) of the direct form, ``rows`` (G, M/G, J) the realised ring weights,
    ``gain`` (G, M/G), ``attrs`` (the bank's) and ``channels``. ``error``: the rings' programming
    errors (the tiles' shape), or None; ``chip``: a chip's measured errors (``photoncc.chip``),
    whose offsets and crosstalk replace both; ``adc``: the bank's ADC ranges (G, R, Q, B, 2)."""
    groups = alpha.shape[0]
    wg = np.asarray(w, np.float32).reshape(groups, w.shape[0] // groups, -1)
    bg = np.asarray(b, np.float64).reshape(groups, -1)
    lo, alpha = np.asarray(lo, np.float64), np.asarray(alpha, np.float64)
    t, gain, attrs = split(wg, bg, lo, alpha, np.float32, profile)
    attrs = {**attrs, **profile["precision"]}
    tiles = tile(t, profile["bank"]["banks"], profile["bank"]["rings"])
    offset = np.zeros(gain.shape)
    if attrs.get("weight_bits"):
        tiles, gain, offset = quantise_bank(tiles, gain, alpha, attrs, profile, chip)
    device = profile
    if chip is not None:  # the chip's offsets on every tile, its crosstalk (as the simulator loads it)
        device = {**profile, "noise": {**profile["noise"], "crosstalk": float(chip.arrays["crosstalk"])}}
        error = np.broadcast_to(chip.arrays["offset"].astype(np.float32), tiles.shape)
    m, j = gain.shape[1], t.shape[2]
    rows = untile(realised_weights(tiles, attrs, device, np.float32, error), m, j)
    channels = bank_channels(attrs, lo.shape[1])
    k = channels.k
    signed = rows[:, :, :k] - rows[:, :, k:2 * k] if channels.complement else rows[:, :, :k]
    const = gain * rows[:, :, channels.carrier].astype(np.float64) * attrs.get("carrier", 1.0) - attrs["shift"] + offset
    if channels.complement:
        const += gain * np.einsum("gmk,gk->gm", rows[:, :, k:2 * k], alpha)
    const -= gain * np.einsum("gmk,gk->gm", signed, lo)
    weight = (signed * gain[..., None]).astype(np.float32).reshape(w.shape)
    return {"weight": weight, "bias": const.reshape(-1), "rows": rows, "gain": gain, "attrs": attrs,
            "channels": channels, "adc": adc}
