"""to_nonnegative: the non-negative isomorphic form of every Linear (Kirtas et al., arXiv 2310.01084).

For a layer y = W x + b whose input lies in [lo, hi] (per input channel, lo <= hi):

    u = x - lo  in [0, alpha],   alpha = hi - lo
    W = Wp - Wn,  Wp = max(W, 0),  Wn = max(-W, 0)
    W x + b = Wp u + Wn (alpha - u) + b~,        b~ = b + W lo - Wn alpha
    b_nn = b~ + s >= 0,                          s = max(0, -min_m b~_m)   (one scalar per layer)

so the bank runs ONE non-negative matrix A = [Wp | Wn | b_nn / c] on the non-negative input
[u ; alpha - u ; c] (the last channel is a constant carrier of power c that realises the bias), and
the electronics subtract the layer's shift: y = P - s. Each row of A is stored as ring
transmissions T in [0, 1] and a gain g (the TIA): A = g T, g the smallest power of two >= the row's
largest weight, and c the smallest power of two that brings every bias transmission b_nn / (g c)
to at most 1 (so the bias never takes a row's weight range from its weights), so that g T
reconstructs A exactly (for every entry not so far below its row's largest one that
A / g leaves float32's normal range, 2^-126: an entry that small is below any ring's precision).

Convolutions: a zero-padded x stays exact when 0 lies in [lo, hi] (the pad maps to u = -lo in
[0, alpha], i.e. the complement channel is padded with hi; with lo = 0 that is alpha-padding), so a
padded conv widens its range to include 0. Groups (depthwise too) give one matrix per group.

IR form: ``Bank(x, T, gain, lo, alpha)[shift, carrier, conv?]`` with T of shape (G, 1, 1, M/G, 2K/G + 1)
(one tile per group; ``tile_banks`` cuts it for the hardware), gain (G, M/G), lo and alpha
(G, K/G) per matrix column.

Requires: fold_affine; ``ranges[x]`` = (lo, hi) per channel of the Linear's input x (channel = axis 1
for conv, the last axis for dense). Ensures: no Linear remains; every T, gain, alpha, b_nn >= 0;
the outputs are unchanged for inputs inside the ranges. Idempotent.
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from ..ir import Graph, Node, fresh_name, prune, type_of


def to_nonnegative(g: Graph, ranges: dict, progress=None) -> Graph:
    def split(w, b, lo, alpha, dtype):
        t, gain, shift, carrier = split_nonnegative(w, b, lo, alpha, dtype)
        return t, gain, {"shift": float(shift), "carrier": float(carrier)}
    return banks_from_linears(g, ranges, split, progress)


def banks_from_linears(g: Graph, ranges: dict, split, progress=None) -> Graph:
    """Every ``Linear`` node of ``g`` replaced by a ``Bank``: ``split(W, b, lo, alpha, dtype)``, on
    the per-group matrices and column ranges of ``column_ranges``, gives the bank's ring weights
    T (G, M, J), row gains (G, M) and attributes; the bank's inputs are x, T, gain, lo, alpha.
    Shared by the incoherent (this module) and the balanced (``to_signed``) transforms.
    ``progress(done, total)`` after each layer (photoncc/progress.py)."""
    consts, types = dict(g.consts), dict(g.types)
    nodes, done, total = [], 0, sum(n.op == "Linear" for n in g.nodes)
    for n in g.nodes:
        if n.op != "Linear":
            nodes.append(n)
            continue
        conv = n.attrs.get("conv")
        wg, bg, lo_cols, alpha_cols = column_ranges(n, consts, ranges)
        dtype = consts[n.inputs[1]].dtype
        t, gain, attrs = split(wg, bg, lo_cols, alpha_cols, dtype)
        names = []
        for k in ("T", "gain", "lo", "alpha"):
            names.append(fresh_name(set(types) | set(names), f"{n.name}.{k}"))
        for name, value in zip(names, (t[:, None, None], gain, lo_cols, alpha_cols)):
            consts[name] = np.ascontiguousarray(value, dtype)
            types[name] = type_of(consts[name])
        attrs = {**attrs, **({"conv": conv} if conv else {})}
        nodes.append(Node("Bank", (n.inputs[0], *names), n.outputs, attrs, n.name))
        done += 1
        if progress is not None:
            progress(done, total)
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


def column_ranges(n: Node, consts: dict, ranges: dict):
    """Per group: W (G, M/G, K/G), a view of the weights in their dtype, and b (G, M/G), lo and
    alpha (G, K/G) per matrix column in float64.

    Column order is the im2col order (channel, kernel offsets); a padded conv's range is widened to
    include 0 (see the module docstring).
    """
    conv = n.attrs.get("conv")
    lo, hi = (np.asarray(v, np.float64) for v in ranges[n.inputs[0]])
    if conv and any(conv["pads"]):
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    w = consts[n.inputs[1]]  # in its own dtype: the splits read it in float64 a block at a time
    groups = conv["group"] if conv else 1
    taps = int(np.prod(conv["kernel_shape"])) if conv else 1
    wg = w.reshape(groups, w.shape[0] // groups, -1)
    bg = consts[n.inputs[2]].astype(np.float64).reshape(groups, -1)
    lo_cols = np.repeat(lo.reshape(groups, -1), taps, axis=-1)
    alpha_cols = np.repeat((hi - lo).reshape(groups, -1), taps, axis=-1)
    return wg, bg, lo_cols, alpha_cols


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


def bias_carrier(bias: np.ndarray, gain: np.ndarray) -> float:
    """Smallest power of two c with |bias| / (gain c) <= 1 in every row (1 if that is enough)."""
    need = float((np.abs(bias) / gain).max(initial=0.0))
    return float(power_of_two_ceil(np.array(max(need, 1.0))))


def power_of_two_ceil(x: np.ndarray) -> np.ndarray:
    """Smallest power of two >= x (1 where x is 0), so that dividing by it is exact."""
    mantissa, exponent = np.frexp(np.where(x > 0, x, 1.0))
    return np.ldexp(1.0, exponent - (mantissa == 0.5))
