"""to_nonnegative: the non-negative isomorphic form of every Linear (Kirtas et al., arXiv 2310.01084).

For a layer y = W x + b whose input lies in [lo, hi] (per input channel, lo <= hi):

    u = x - lo  in [0, alpha],   alpha = hi - lo
    W = Wp - Wn,  Wp = max(W, 0),  Wn = max(-W, 0)
    W x + b = Wp u + Wn (alpha - u) + b~,        b~ = b + W lo - Wn alpha
    b_nn = b~ + s >= 0,                          s = max(0, -min_m b~_m)   (one scalar per layer)

so the bank runs ONE non-negative matrix A = [Wp | Wn | b_nn] on the non-negative input
[u ; alpha - u ; 1] (the last channel is a constant full-power carrier that realises the bias), and
the electronics subtract the layer's shift: y = P - s. Each row of A is stored as ring
transmissions T in [0, 1] and a gain g (the TIA): A = g T, g the smallest power of two >= max(row),
so that g T reconstructs A exactly (for every entry not so far below its row's largest one that
A / g leaves float32's normal range, 2^-126: an entry that small is below any ring's precision).

Convolutions: a zero-padded x stays exact when 0 lies in [lo, hi] (the pad maps to u = -lo in
[0, alpha], i.e. the complement channel is padded with hi; with lo = 0 that is alpha-padding), so a
padded conv widens its range to include 0. Groups (depthwise too) give one matrix per group.

IR form: ``Bank(x, T, gain, lo, alpha)[shift, conv?]`` with T of shape (G, 1, 1, M/G, 2K/G + 1)
(one tile per group; ``tile_banks`` cuts it for the hardware), gain (G, M/G), lo and alpha
(G, K/G) per matrix column.

Requires: fold_affine; ``ranges[x]`` = (lo, hi) per channel of the Linear's input x (channel = axis 1
for conv, the last axis for dense). Ensures: no Linear remains; every T, gain, alpha, b_nn >= 0;
the outputs are unchanged for inputs inside the ranges. Idempotent.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, prune, type_of


def to_nonnegative(g: Graph, ranges: dict) -> Graph:
    consts, types = dict(g.consts), dict(g.types)
    nodes = []
    for n in g.nodes:
        if n.op != "Linear":
            nodes.append(n)
            continue
        conv = n.attrs.get("conv")
        lo, hi = (np.asarray(v, np.float64) for v in ranges[n.inputs[0]])
        if conv and any(conv["pads"]):
            lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
        w = consts[n.inputs[1]].astype(np.float64)
        b = consts[n.inputs[2]].astype(np.float64)
        groups = conv["group"] if conv else 1
        wg = w.reshape(groups, w.shape[0] // groups, -1)  # (G, M/G, K/G)
        taps = int(np.prod(conv["kernel_shape"])) if conv else 1
        lo_cols = np.repeat(lo.reshape(groups, -1), taps, axis=-1)  # (G, K/G)
        alpha_cols = np.repeat((hi - lo).reshape(groups, -1), taps, axis=-1)
        t, gain, shift = split_nonnegative(wg, b.reshape(groups, -1), lo_cols, alpha_cols)
        dtype = consts[n.inputs[1]].dtype
        names = [f"{n.name}.{k}" for k in ("T", "gain", "lo", "alpha")]
        for name, value in zip(names, (t[:, None, None], gain, lo_cols, alpha_cols)):
            consts[name] = np.ascontiguousarray(value, dtype)
            types[name] = type_of(consts[name])
        attrs = {"shift": float(shift), **({"conv": conv} if conv else {})}
        nodes.append(Node("Bank", (n.inputs[0], *names), n.outputs, attrs, n.name))
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


def split_nonnegative(w, b, lo, alpha):
    """(T, gain, shift) for per-group W (G, M, K), b (G, M), lo and alpha (G, K); see module docstring.

    T (G, M, 2K + 1) and gain (G, M) satisfy gain * T == [Wp | Wn | b_nn] exactly.
    """
    wp, wn = np.maximum(w, 0.0), np.maximum(-w, 0.0)
    b_tilde = b + np.einsum("gmk,gk->gm", w, lo) - np.einsum("gmk,gk->gm", wn, alpha)
    shift = max(0.0, -float(b_tilde.min()))
    b_nn = np.maximum(b_tilde + shift, 0.0)  # >= 0 by construction; max() removes a rounding -0.0
    a = np.concatenate([wp, wn, b_nn[..., None]], axis=-1)
    gain = power_of_two_ceil(a.max(axis=-1))
    return a / gain[..., None], gain, shift


def power_of_two_ceil(x: np.ndarray) -> np.ndarray:
    """Smallest power of two >= x (1 where x is 0), so that dividing by it is exact."""
    mantissa, exponent = np.frexp(np.where(x > 0, x, 1.0))
    return np.ldexp(1.0, exponent - (mantissa == 0.5))
