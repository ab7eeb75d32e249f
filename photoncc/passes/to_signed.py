"""to_signed: the bank form of every Linear for a balanced-photodetector device.

A balanced pair of photodetectors (drop minus through port) gives each ring a signed weight in the
reachable range [w_min, w_max] (profile ``bank.weight_range``); inputs are still optical powers, so
they must still be non-negative. For a layer y = W x + b with input in [lo, hi] per channel:

    u = x - lo  in [0, alpha],   W x + b = W u + b',   b' = b + W lo

so the bank runs the signed matrix A = [W | b' / c] on [u ; c] (the last channel a constant carrier
of power c for the bias); no complement channels and no shift are needed. Each row is stored as
ring weights T = A / g within [w_min, w_max] and a gain g (the TIA), g the smallest power of two
with max(W+) / g <= w_max and max(W-) / g <= -w_min, c as in to_nonnegative.py, so g T
reconstructs A exactly.

IR form: ``Bank(x, T, gain, lo, alpha)[shift=0, signed=True, conv?]``, T of shape
(G, 1, 1, M/G, K/G + 1), as in to_nonnegative.py.

Requires: fold_affine; ranges as for to_nonnegative. Ensures: no Linear remains; every T in
[w_min, w_max]; outputs unchanged for inputs inside the ranges. Idempotent.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from .to_nonnegative import banks_from_linears, bias_carrier, power_of_two_ceil


def to_signed(g: Graph, ranges: dict, weight_range: tuple[float, float], progress=None) -> Graph:
    w_min, w_max = weight_range

    def split(wg, bg, lo_cols, alpha_cols, dtype):
        wg = wg.astype(np.float64)
        b_prime = bg + np.einsum("gmk,gk->gm", wg, lo_cols)
        need = np.maximum(np.maximum(wg, 0).max(axis=-1) / w_max, np.maximum(-wg, 0).max(axis=-1) / -w_min)
        gain = power_of_two_ceil(need)
        reach = min(w_max, -w_min)
        carrier = bias_carrier(b_prime / reach, gain)
        a = np.concatenate([wg, (b_prime / carrier)[..., None]], axis=-1)
        return a / gain[..., None], gain, {"shift": 0.0, "carrier": carrier, "signed": True}
    return banks_from_linears(g, ranges, split, progress)
