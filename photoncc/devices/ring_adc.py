"""ADC calibration of a ring bank: the partial sums its photodetectors read, per tile.

Each tile of a bank (B photodetectors, C channels) gives every photodetector a partial sum
P = sum_c T_c v_c of the optical powers v (``program.bank_channels``) through the weights T the
device realises (``rings.realised_weights``: codes with crosstalk, no programming error). The
compile's ``adc_ranges`` pass sizes every ADC's range from these sums on the calibration data
(``partial_sum_extremes``) or, without data, from their bound at the largest powers (``margins``),
and widens both by ERROR_SIGMAS standard deviations of the read errors no calibration read
contains (``margins``).

A bank is given as its tensors by name (``program.bank_inputs``: tiles, lo, alpha...) and its
attributes.
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from ..ops.conv import unfold
from ..program import bank_channels
from .rings import realised_weights

ERROR_SIGMAS = 4.0  # ADC ranges also cover the read errors calibration does not see, to this many sigmas
PRODUCT_BLOCK = 1 << 18  # partial sums (and channel powers) formed at once for the ADC ranges (1 MB)
WEIGHT_BLOCK = 1 << 20  # ring weights decoded at once (float64 blocks of 8 MB, at least one row of tiles)


def margins(bank: dict, attrs: dict, profile, bound: bool):
    """The bank's read-error margins (G, R, Q, B) and, with ``bound``, its ADC ranges (G, R, Q, B, 2)
    from the bound without calibration data (else None), at the tile's largest channel powers
    v_max; a block of tile rows at a time:

        margin = ERROR_SIGMAS sqrt(weight_sigma^2 sum_c v_max,c^2 + rin_sigma^2 sum_c T_c^2 v_max,c^2)
        bound  = [sum_c min(T_c, 0) v_max,c, sum_c max(T_c, 0) v_max,c]

    (the programming error N(0, weight_sigma) of each ring and the laser RIN of each channel)."""
    noise = profile["noise"]
    vmax = channel_powers(bank, attrs, None)  # (G, Q, C)
    margin = np.empty(bank["tiles"].shape[:4])
    ranges = np.empty(margin.shape + (2,)) if bound else None
    for rows, weights in _weight_blocks(bank, attrs, profile):
        margin[:, rows] = ERROR_SIGMAS * np.sqrt(
            noise["weight_sigma"] ** 2 * (vmax ** 2).sum(axis=-1)[:, None, :, None]
            + noise["rin_sigma"] ** 2 * np.einsum("grqbc,gqc->grqb", weights ** 2, vmax ** 2))
        if bound:
            low = np.einsum("grqbc,gqc->grqb", np.minimum(weights, 0), vmax)
            high = np.einsum("grqbc,gqc->grqb", np.maximum(weights, 0), vmax)
            magnitude = np.maximum(np.maximum(np.abs(high), np.abs(low)), 1e-30)
            ranges[:, rows] = np.stack([low - margin[:, rows],
                                        np.maximum(high, low + 1e-6 * magnitude) + margin[:, rows]], axis=-1)
    return margin, ranges


def channel_powers(bank: dict, attrs: dict, x):
    """Optical input powers v (P, G, Q, C), float32, of the bank for its input vectors x (P, G*K)
    (im2col rows for a convolution); for x None, the largest power each channel can carry (G, Q, C)."""
    tiles, lo, alpha = bank["tiles"], bank["lo"].astype(np.float64), bank["alpha"].astype(np.float64)
    groups, _, q, _, c = tiles.shape
    channels = bank_channels(attrs, lo.shape[1])
    k = channels.k
    if x is None:  # every channel at its largest power: u = alpha and the complement alpha too
        parts = [alpha[None], alpha[None]] if channels.complement else [alpha[None]]
        v = np.concatenate(parts + [np.full((1, groups, 1), attrs.get("carrier", 1.0))], axis=-1)
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (q * c - v.shape[-1],))], axis=-1)
        return v.reshape(groups, q, c)
    u = np.clip(x.reshape(-1, groups, k) - lo, 0, alpha).astype(np.float32)
    alpha = alpha.astype(np.float32)
    v = np.zeros(u.shape[:-1] + (q * c,), np.float32)
    v[..., :k] = u
    if channels.complement:
        v[..., k:2 * k] = alpha - u
    v[..., channels.carrier] = attrs.get("carrier", 1.0)
    return v.reshape(v.shape[:-1] + (q, c))


def partial_sum_extremes(bank: dict, attrs: dict, w, x):
    """min and max over samples and positions of every photodetector's partial sum per tile
    (G, R, Q, B), for the bank's ``product_weights`` w: batched products over blocks of positions
    (float32: the ADC's resolution is far coarser); a convolution's input is unfolded whole samples
    or output rows of one sample at a time. A block's channel powers (p, G, Q, C) are formed at
    once (at most PRODUCT_BLOCK values), its products a span of tiles at a time, position-major
    (p, G, span, R*B) and again at most PRODUCT_BLOCK values, so that they stay in the core's cache
    for the min and max that read them. Position-major, each (g, q) product is a strided BLAS
    matrix on both sides and the min and max over positions are elementwise over contiguous rows.
    Memory stays bounded whatever the image and batch."""
    groups, r, q, b, c = bank["tiles"].shape
    low, high = np.full((groups, q, r * b), np.inf), np.full((groups, q, r * b), -np.inf)
    # positions per block; r * b * c: each (g, q) product (p x C times C x R*B) stays below the size
    # from which OpenBLAS shares a product over its own threads (M N K = 2^18): the blocks are
    # already shared over the cores here
    budget = max(1, PRODUCT_BLOCK // max(1, groups * q * c, groups * r * b, r * b * c))
    conv = attrs.get("conv")
    if conv:  # (N, *out, C, *k): blocks of whole samples, or of output rows of one sample
        cols = unfold(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
        lead = cols.shape[:cols.ndim - len(conv["kernel_shape"]) - 1]
        blocks = [cols[samples, rows] for samples, rows in
                  cpu.row_blocks(lead[0], lead[1], int(np.prod(lead[2:], dtype=np.int64)), budget)]
    else:
        flat = x.reshape(-1, x.shape[-1])
        blocks = [flat[r0:r0 + budget] for r0 in range(0, len(flat), budget)]

    def extremes(share):  # one thread's blocks, through one product buffer (no fresh pages per block)
        lo, hi = np.full((groups, q, r * b), np.inf, np.float32), np.full((groups, q, r * b), -np.inf, np.float32)
        buffer = np.empty(0, np.float32)
        for block in share:
            v = channel_powers(bank, attrs, block.reshape(-1, groups * bank["lo"].shape[1]))  # (p, G, Q, C)
            span = max(1, PRODUCT_BLOCK // (len(v) * groups * r * b))  # tiles per product
            for t in range(0, q, span):
                cut = slice(t, t + span)  # tile columns q of this product
                part = v[:, :, cut]
                size = part.size // c * r * b
                if buffer.size < size:
                    buffer = np.empty(size, np.float32)
                partial = buffer[:size].reshape(part.shape[:3] + (r * b,))  # (p, G, span, R*B)
                np.matmul(part.transpose(1, 2, 0, 3), w[:, cut], out=partial.transpose(1, 2, 0, 3))
                np.minimum(lo[:, cut], partial.min(axis=0), out=lo[:, cut])
                np.maximum(hi[:, cut], partial.max(axis=0), out=hi[:, cut])
        return lo, hi

    # the blocks, views of x (or of its unfolded view), dealt round-robin to the cores
    for lo, hi in cpu.threaded_map(extremes, [blocks[i::cpu.THREADS] for i in range(cpu.THREADS)]):
        low, high = np.minimum(low, lo), np.maximum(high, hi)
    return tuple(a.reshape(groups, q, r, b).transpose(0, 2, 1, 3) for a in (low, high))


def _weight_blocks(bank: dict, attrs: dict, profile):
    """(slice of tile rows, the ring weights (G, r, Q, B, C) the noiseless device realises there, in
    float64) for the blocks of the bank's tile rows: no float64 copy of a whole layer."""
    tiles = bank["tiles"]
    for rows, _ in cpu.tile_row_blocks(tiles, tiles.shape[1] * tiles.shape[3], WEIGHT_BLOCK):
        yield rows, realised_weights(tiles[:, rows], attrs, profile, np.float64)


def product_weights(bank: dict, attrs: dict, profile) -> np.ndarray:
    """The bank's realised ring weights as the right operand of its partial sums, float32
    (G, Q, C, R*B): column r*B + b is photodetector b of tile row r."""
    groups, r, q, b, c = bank["tiles"].shape
    w = np.empty((groups, q, c, r * b), np.float32)
    for rows, weights in _weight_blocks(bank, attrs, profile):
        w[..., rows.start * b:rows.start * b + weights.shape[1] * b] = (
            weights.transpose(0, 2, 4, 1, 3).reshape(groups, q, c, -1))
    return w
