"""The balanced microring bank: a pair of photodetectors (drop minus through port) gives each ring a
signed weight in the reachable range [w_min, w_max] (profile ``bank.weight_range``); inputs are
still optical powers, so they must still be non-negative. For a layer y = W x + b with input in
[lo, hi] per channel:

    u = x - lo  in [0, alpha],   W x + b = W u + b',   b' = b + W lo

so the bank runs the signed matrix A = [W | b' / c] on [u ; c] (``program.bank_channels``: no
complement channels, and no shift is needed; the last channel a constant carrier of power c for
the bias). Each row is stored as ring weights T = A / g within [w_min, w_max] and a gain g (the
TIA), g the smallest power of two with max(W+) / g <= w_max and max(W-) / g <= -w_min, c as on an
incoherent bank, so g T reconstructs A exactly.
"""
from __future__ import annotations

import numpy as np

from .rings import bias_carrier, power_of_two_ceil

SIGNED = True


def split(w, b, lo, alpha, dtype, profile):
    """The bank form of one layer (``devices`` interface): ring weights T (G, M, K + 1), row gains
    (G, M) and the bank's attributes (no shift, its carrier, ``signed``)."""
    w_min, w_max = profile["bank"]["weight_range"]
    w = w.astype(np.float64)
    b_prime = b + np.einsum("gmk,gk->gm", w, lo)
    need = np.maximum(np.maximum(w, 0).max(axis=-1) / w_max, np.maximum(-w, 0).max(axis=-1) / -w_min)
    gain = power_of_two_ceil(need)
    carrier = bias_carrier(b_prime / min(w_max, -w_min), gain)
    a = np.concatenate([w, (b_prime / carrier)[..., None]], axis=-1)
    return a / gain[..., None], gain, {"shift": 0.0, "carrier": carrier, "signed": True}


def train_form(w, b, lo, alpha, profile, error=None, chip=None, adc=None) -> dict:
    """The layer as the device runs it, for fine-tuning's forward (``ring_train.train_form``)."""
    from .ring_train import train_form as ring_form
    return ring_form(split, w, b, lo, alpha, profile, error, chip, adc)
