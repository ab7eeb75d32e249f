"""The incoherent microring bank: one photodetector sums non-negative powers through non-negative
transmissions, so every layer runs in its non-negative isomorphic form (Kirtas et al., arXiv
2310.01084).

For a layer y = W x + b whose input lies in [lo, hi] (per input channel, lo <= hi):

    u = x - lo  in [0, alpha],   alpha = hi - lo
    W = Wp - Wn,  Wp = max(W, 0),  Wn = max(-W, 0)
    W x + b = Wp u + Wn (alpha - u) + b~,        b~ = b + W lo - Wn alpha
    b_nn = b~ + s >= 0,                          s = max(0, -min_m b~_m)   (one scalar per layer)

so the bank runs ONE non-negative matrix A = [Wp | Wn | b_nn / c] on the non-negative input
[u ; alpha - u ; c] (``program.bank_channels``; the last channel is a constant carrier of power c
that realises the bias), and the electronics subtract the layer's shift: y = P - s. Each row of A
is stored as ring transmissions T in [0, 1] and a gain g (the TIA): A = g T, g the smallest power
of two >= the row's largest weight, and c the smallest power of two that brings every bias
transmission b_nn / (g c) to at most 1 (so the bias never takes a row's weight range from its
weights), so that g T reconstructs A exactly (for every entry not so far below its row's largest
one that A / g leaves float32's normal range, 2^-126: an entry that small is below any ring's
precision).
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from .rings import bias_carrier, power_of_two_ceil

SIGNED = False

SPLIT_BLOCK = 1 << 16  # weights split at once (whole groups or rows of one, 512 KB in float64: stays in cache)


def split_nonnegative(w, b, lo, alpha, dtype=np.float64):
    """(T, gain, shift, carrier) for per-group W (G, M, K), b (G, M), lo and alpha (G, K); see the
    module docstring. T (G, M, 2K + 1) in ``dtype``, gain (G, M) and the carrier power c satisfy
    gain * T == [Wp | Wn | b_nn / c] exactly. The gain is a power of two, so W / gain is exact and
    T's weight columns are max(W / gain, 0) and max(-W / gain, 0), written straight into T.
    Everything but the shift and the carrier is row by row, so W (any float dtype) is read a block
    of rows at a time in float64: no float64 copy of a layer's weights, nor of Wn, is ever whole."""
    groups, m, k = w.shape
    t = np.empty((groups, m, 2 * k + 1), dtype)
    gain, b_tilde = np.empty((groups, m)), np.empty((groups, m))
    for gs, rs in cpu.row_blocks(groups, m, k, SPLIT_BLOCK):  # whole groups, or rows of one group
        block = w[gs, rs].astype(np.float64)
        wn = np.maximum(-block, 0.0)
        # einsum, not BLAS: its summation order does not depend on the machine or its thread count
        b_tilde[gs, rs] = (b[gs, rs] + np.einsum("gmk,gk->gm", block, lo[gs])
                           - np.einsum("gmk,gk->gm", wn, alpha[gs]))
        row_gain = gain[gs, rs] = power_of_two_ceil(np.abs(block).max(axis=-1, initial=0.0))
        block /= row_gain[..., None]
        np.maximum(block, 0.0, out=t[gs, rs, :k], casting="same_kind")
        np.negative(block, out=block)
        np.maximum(block, 0.0, out=t[gs, rs, k:2 * k], casting="same_kind")
    shift = max(0.0, -float(b_tilde.min(initial=np.inf)))
    b_nn = np.maximum(b_tilde + shift, 0.0)  # >= 0 by construction; max() removes a rounding -0.0
    carrier = bias_carrier(b_nn, gain)
    t[..., 2 * k] = b_nn / carrier / gain
    return t, gain, shift, carrier


def split(w, b, lo, alpha, dtype, profile):
    """The bank form of one layer (``devices`` interface): ring weights T (G, M, 2K + 1) in
    ``dtype``, row gains (G, M) and the bank's attributes (its shift and carrier)."""
    t, gain, shift, carrier = split_nonnegative(w, b, lo, alpha, dtype)
    return t, gain, {"shift": float(shift), "carrier": float(carrier)}


def train_form(w, b, lo, alpha, profile, error=None, chip=None, adc=None) -> dict:
    """The layer as the device runs it, for fine-tuning's forward (``ring_train.train_form``)."""
    from .ring_train import train_form as ring_form
    return ring_form(split, w, b, lo, alpha, profile, error, chip, adc)
