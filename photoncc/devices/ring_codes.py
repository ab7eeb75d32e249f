"""The integer codes a ring bank is set with (profile ``precision.weight_bits`` = b), per bank row
(one photodetector and its TIA gain g):

1. the row is rescaled to use the whole code range: T <- T / r, g <- g r, r = max over the row of
   T / limit (limit 1 for transmissions; w_max / -w_min for signed weights), so g T is unchanged;
2. static thermal crosstalk is pre-compensated (``rings.compensate_crosstalk``), clipped back
   into the reachable range;
3. codes = round(T / step), step = ``program.weight_step`` (incoherent: codes 0 .. 2^b - 1 over
   [0, 1]; signed: clipped to the reachable range);
4. every input-independent error of the realised weights (rounding and crosstalk left over on the
   complement channels, which carry alpha - u, and on the bias ring) is cancelled by a per-row
   electronic offset (``correct_bias``).
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from ..program import bank_channels, weight_step
from .rings import apply_crosstalk, compensate_crosstalk, reach
from .tiles import tile, untile


BLOCK = 1 << 20  # weights quantised at once (float64 blocks of 8 MB, at least one row of tiles)


def code_dtype(bits: int, signed: bool):
    """The integer type of a ring's codes."""
    return (np.int8 if bits <= 8 else np.int16) if signed else (np.uint8 if bits <= 8 else np.uint16)


def quantise_bank(tiles, gain, alpha, attrs: dict, profile, chip=None) -> tuple:
    """Steps 1-4 for one bank: (codes (G, R, Q, B, C), the rescaled gains (G, M) in float64, the
    offsets (G, M)); ``attrs`` are the bank's with the profile's precision. A block of tile rows
    at a time: every step is row by row. ``chip`` (``photoncc.chip``, compile --chip): program for
    that chip's rings: its measured crosstalk is compensated instead of the profile's, and each
    ring's programming offset (the same on every tile) is subtracted before the codes are rounded,
    so that the electronic offsets cancel what is left of it."""
    bits, signed = attrs["weight_bits"], bool(attrs.get("signed"))
    gain = gain.astype(np.float64)
    m, j = gain.shape[1], tiles.shape[2] * tiles.shape[4]
    codes, offset = np.empty(tiles.shape, code_dtype(bits, signed)), np.empty(gain.shape)
    alpha = alpha.astype(np.float64)
    crosstalk = profile["noise"]["crosstalk"] if chip is None else float(chip.arrays["crosstalk"])
    offsets = 0.0 if chip is None else chip.arrays["offset"]
    for block, rows in cpu.tile_row_blocks(tiles, m, BLOCK):  # gain[:, rows]: a view, rescaled in place
        codes[:, block], offset[:, rows] = _quantise_rows(tiles[:, block], gain[:, rows], alpha, j, bits,
                                                          reach(profile, signed), attrs, crosstalk, signed, offsets)
    return codes, gain, offset


def _quantise_rows(tiles, gain, alpha, j, bits, reach, attrs, crosstalk, signed, offsets=0.0):
    """Steps 1-4 of the module docstring for a block of tile rows (G, r, Q, B, C) of a bank whose
    matrix has j columns: (codes as float64, offsets of the block's rows); ``gain`` (G, rows), the
    block's rows' gains, is rescaled in place (step 1)."""
    banks, rings = tiles.shape[3:]
    step = weight_step(bits, signed)
    t = untile(tiles, gain.shape[1], j).astype(np.float64)
    need = np.maximum(np.maximum(t, 0).max(-1) / reach[1], np.maximum(-t, 0).max(-1) / -reach[0] if signed else 0)
    need = np.where(need > 0, need, 1.0)
    t /= need[..., None]
    gain *= need
    wanted = tile(t, banks, rings)
    codes = compensate_crosstalk(wanted - offsets if np.ndim(offsets) else wanted, crosstalk, reach) / step
    low, high = (np.ceil(reach[0] / step), np.floor(reach[1] / step)) if signed else (0, 2 ** bits - 1)
    np.clip(np.round(codes, out=codes), low, high, out=codes)
    return codes, correct_bias(codes, wanted, step, gain, alpha, attrs, crosstalk, offsets)


def correct_bias(codes, tiles, step, gain, alpha, attrs, crosstalk, offsets=0.0):
    """The electronic per-row offset that cancels every input-independent error of the bank.

    The bank realises its weights through codes and thermal crosstalk: w_eff = crosstalk(code x
    step). The complement channel of input k carries alpha_k - u_k, so an error e_k = w_k - w_eff,k
    of its weight adds g e_k alpha_k to every output whatever the input; the bias ring (carrier
    power c) is off by g c (b_k - b_eff). Both are known at compile time: the electronics add
    offset = g sum_k e_k alpha_k + g c (b - b_eff) after the ADC (y = g P - s + offset). Only the
    input-dependent rounding errors (e_k u_k) remain, as on a balanced bank.

    Only the tile columns that hold complement channels or the bias ring are formed (crosstalk
    couples rings within a bank, never across tiles).
    """
    groups, m = gain.shape
    channels = bank_channels(attrs, alpha.shape[1])
    k, rings = channels.k, tiles.shape[4]
    first = (k if channels.complement else channels.carrier) // rings  # the first tile column needed
    shift = first * rings                                              # its first matrix column
    error = apply_crosstalk(codes[:, :, first:] * step, crosstalk)
    if np.ndim(offsets):  # a chip's ring offsets add to what the rings realise
        error = error + offsets
    np.subtract(tiles[:, :, first:], error, out=error)  # wanted - realised
    error = untile(error, m, tiles.shape[2] * rings - shift)
    offset = error[:, :, channels.carrier - shift] * gain * attrs.get("carrier", 1.0)
    if channels.complement:
        offset = offset + np.einsum("gmk,gk->gm", error[:, :, k - shift:2 * k - shift], alpha) * gain
    return offset
