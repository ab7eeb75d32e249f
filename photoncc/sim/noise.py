"""Noise of the device model: Gaussian draws, the rings' programming error, and the statistical
read-noise model.

Noise is seeded: the same program, inputs, seed and batch size give the same outputs. Draws are
shared by the cores in a fixed number of random streams, so they never depend on the machine.

The *statistical* model (``--noise-model statistical``) runs a noisy layer with an ADC in its
direct form (one product per layer) and adds one Gaussian per output with the variance its tile
reads add up to (``read_noise_rows``, ``add_read_noise``): much faster than drawing every read,
but it does not model ADC saturation; noiseless, it runs those layers unquantised (its rounding
error is part of that noise). It covers a layer whose detector noise dithers its ADC's rounding
(``statistical_covers``).
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from ..program import levels

DITHER = 0.5  # detector noise (in ADC code steps) from which rounding errors are uniform and independent
NOISE_BLOCK = 1 << 20  # outputs given their statistical read noise at once (4 MB in float32)
STREAMS = 8  # a draw of at least STREAM_PAIRS pairs of normals comes from this many random streams,
STREAM_PAIRS = 1 << 16  # shared by the cores (fixed numbers: the draws never depend on the machine)


def gaussian(rng: np.random.Generator, shape, sigma: float = 1.0, shared: bool = True) -> np.ndarray:
    """N(0, sigma^2) float32 samples by the Box-Muller transform of float32 uniforms:
    z1 = r cos(t), z2 = r sin(t) with r = sigma sqrt(-2 ln(1 - u1)), t = 2 pi u2, u1, u2 ~ U[0, 1),
    each pair of uniforms giving two independent normals (faster than ``Generator.standard_normal``
    in float32: docs/performance.md). 1 - u1 >= 2^-24 bounds |z| by 5.77 sigma (the cut tail has
    probability 8e-9).
    A large draw comes in STREAMS parts, each from its own stream spawned from ``rng``
    (``Generator.spawn``: independent streams), so that the cores share the drawing; the parts are
    fixed, not the cores, so the samples do not depend on the machine. Uses ``cpu.threaded_map``:
    not to be called from a task that ``cpu.threaded`` or ``threaded_map`` runs, except with
    ``shared`` False (one stream, this thread alone)."""
    count = int(np.prod(shape, dtype=np.int64))
    half = (count + 1) // 2
    z = np.empty((half, 2), np.float32)
    parts = STREAMS if half >= STREAM_PAIRS and shared else 1
    streams = rng.spawn(parts) if parts > 1 else [rng]
    bounds = [half * i // parts for i in range(parts + 1)]

    def draw(i):  # one part: its uniform pairs, then their normals
        z_part = z[bounds[i]:bounds[i + 1]]
        u = streams[i].random((2, len(z_part)), dtype=np.float32)
        radius = np.log1p(-u[0])
        radius *= -2.0 * sigma * sigma
        np.sqrt(radius, out=radius)
        angle = u[1]
        angle *= np.float32(2 * np.pi)
        np.cos(angle, out=z_part[:, 0])
        np.sin(angle, out=z_part[:, 1])
        z_part[:, 0] *= radius
        z_part[:, 1] *= radius
    cpu.threaded_map(draw, range(parts))
    return z.reshape(-1)[:count].reshape(shape)


def programming_error(rng: np.random.Generator, shape, profile: dict) -> np.ndarray:
    """Each ring's programming error, N(0, weight_sigma), float32; drawn once per device load."""
    return gaussian(rng, shape, profile["noise"]["weight_sigma"])


def statistical_covers(attrs: dict, profile: dict) -> bool:
    """Whether the statistical noise model runs a bank with these attributes: one with an ADC whose
    detector noise dithers its rounding (at least DITHER code steps)."""
    bits = attrs.get("output_bits")
    return bool(bits) and profile["noise"]["detector_sigma"] * levels(bits) >= DITHER


def read_noise_rows(noise: dict, bank: dict, rows: np.ndarray, part: slice, width: np.ndarray, attrs: dict,
                    profile: dict) -> None:
    """The statistical noise model's constants for matrix rows ``part``, written into ``noise``:
    what every tile read adds, drawn once per output.

    Per read (row m, tile q) the device adds detector noise N(0, (det w_q)^2) (w_q: the width of
    that photodetector's ADC range, ``width`` (G, rows, Q)) and rounds to one of top + 1 levels,
    a step of w_q / top. With detector noise of at least DITHER steps the rounding error is (to
    a few parts in a thousand) uniform and independent of the signal, of variance
    (w_q / top)^2 / 12; RIN makes each channel's power v_j (1 + N(0, rin^2)), adding
    sum_j T_mj^2 v_j^2 rin^2. Summed over a row's tiles (independent reads), each output gets
    one Gaussian of variance

        var_m = sum_q (w_q / top)^2 ((det top)^2 + 1/12) + rin^2 (sum_j T_mj^2 E[v_j^2] + t_b^2 c^2)

    times g_m^2 (the row gain). E[v_j^2] is each input vector's own for a fully connected bank,
    and each input channel's mean over the feature map for a convolution (the variance is exact
    on average over positions; how it varies from one position to the next is not modelled).
    Not modelled: ADC saturation of a read (the per-read model clips it) and the correlation of
    RIN between the rows a channel feeds. ``noise`` holds the input-independent variance
    ``var`` (G, M) and the RIN weights ``rin_u``, ``rin_c`` (G, M, channels; ``rin_c`` None on
    a signed bank) for E[u^2] and E[(alpha - u)^2].
    """
    top = levels(attrs["output_bits"])
    det, rin = profile["noise"]["detector_sigma"], profile["noise"]["rin_sigma"]
    groups, count = rows.shape[:2]
    channels = bank["channels"]
    k = channels.k
    conv = attrs.get("conv")
    taps = int(np.prod(conv["kernel_shape"])) if conv else 1
    var = ((width / top) ** 2).sum(axis=-1) * ((det * top) ** 2 + 1.0 / 12.0)
    var += rin ** 2 * rows[:, :, channels.carrier].astype(np.float64) ** 2 * bank["carrier"] ** 2
    noise["var"][:, part] = var

    def per_channel(t):  # sum over a channel's taps of T^2, in float32 (enough for a variance), no copy
        t = t.reshape(groups, count, k // taps, taps)
        return rin ** 2 * np.einsum("gmct,gmct->gmc", t, t).astype(np.float64)
    noise["rin_u"][:, part] = per_channel(rows[:, :, :k])
    if channels.complement:
        noise["rin_c"][:, part] = per_channel(rows[:, :, k:2 * k])


def add_read_noise(rng, y: np.ndarray, u: np.ndarray, d: dict, conv) -> None:
    """Add the statistical model's noise (``read_noise_rows``) to a bank's outputs ``y``, in place;
    ``u`` holds the modulated inputs x' (channel-last for a convolution). A convolution's channel
    moments come from sums over the feature map without a copy (E[u] in float64, E[u^2] summed in
    float32: a few parts in a million, enough for a variance); the noise is drawn a block of
    output rows (all samples) at a time, in ``y``'s memory order."""
    n = d["noise"]
    groups, m = n["gain"].shape
    lo = d["lo"].astype(np.float64)
    if conv:  # each channel's power u - lo, its moments over the feature map (N, *S, C) -> (N, C)
        positions = int(np.prod(u.shape[1:-1], dtype=np.int64))
        mean = u.sum(axis=tuple(range(1, u.ndim - 1)), dtype=np.float64) / positions
        space = "defghijk"[:u.ndim - 2]                                  # spatial axes (not n, c)
        square = np.einsum(f"n{space}c,n{space}c->nc", u, u)  # float32 sums: a few parts in a million
        if not np.isfinite(square).all():  # overflowed (inputs beyond 1e19): sum in float64 instead
            square = np.einsum(f"n{space}c,n{space}c->nc", u, u, dtype=np.float64)
        square = square.astype(np.float64) / positions
        first = mean - lo
        second = np.maximum(square - 2 * lo * mean + lo * lo, 0.0)   # E[(u - lo)^2]
    else:
        first = u.astype(np.float64) - lo
        second = first * first
    lead = first.shape[:-1]
    first, second = first.reshape(lead + (groups, -1)), second.reshape(lead + (groups, -1))
    var = n["var"] + np.einsum("...gc,gmc->...gm", second, n["rin_u"])
    if n["rin_c"] is not None:  # the complement channel carries alpha - u: E[(a - u)^2]
        alpha = d["alpha"].astype(np.float64).reshape(groups, -1)
        var += np.einsum("...gc,gmc->...gm", alpha ** 2 - 2 * alpha * first + second, n["rin_c"])
    std = (np.sqrt(var) * n["gain"]).reshape(lead + (groups * m,)).astype(y.dtype)
    last = np.moveaxis(y, 1, -1) if conv else y                      # y's memory order
    if conv:
        std = std.reshape((std.shape[0],) + (1,) * (y.ndim - 2) + (groups * m,))
    axis = 1 if conv else 0
    rows = max(1, NOISE_BLOCK // max(1, last[:1].size if not conv else last[:, :1].size))
    for r0 in range(0, last.shape[axis], rows):
        part = last[:, r0:r0 + rows] if conv else last[r0:r0 + rows]
        z = gaussian(rng, part.shape)
        z *= std if conv else std[r0:r0 + rows]
        part += z
