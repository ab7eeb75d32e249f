"""fold_affine: fold BatchNormalization and constant Add/Sub/Mul/Div into the Linear before them.

Maths, per output channel m of y = W x + b (channel = axis 1 for conv, the last axis for dense):

* BatchNormalization: z = gamma (y - mu) / sqrt(var + eps) + beta
                      ->  W' = s W,  b' = s (b - mu) + beta,  s = gamma / sqrt(var + eps)
* y + c  ->  b' = b + c        y - c  ->  b' = b - c        c - y  ->  W' = -W, b' = c - b
* y * c  ->  W' = c W, b' = c b          y / c  ->  W' = W / c, b' = b / c
where c is a constant holding one value per output channel (or one value in all).

A chain (Conv -> BatchNorm -> Mul -> Add) folds in one sweep. A node is folded only when the
Linear's output has no other consumer and is not a graph output. What cannot be folded (a
BatchNorm after a Concat, say) stays and runs electronically. Arithmetic in float64, W rounded to
its dtype once per fold, without a float64 copy of it (a ufunc with dtype=float64 and out=).

Requires: lower_linear. Ensures: numerics unchanged (to float rounding). Idempotent.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, prune, type_of


def fold_affine(g: Graph, ctx=None) -> Graph:
    users = {k: len(v) for k, v in g.consumers().items()}
    outputs = set(g.outputs)
    consts, types = dict(g.consts), dict(g.types)
    nodes: list[Node] = []
    linear_at: dict[str, int] = {}  # value -> index in ``nodes`` of the Linear producing it
    for n in g.nodes:
        source = next((i for i in n.inputs if i in linear_at), None)
        folded = None
        if source is not None and users.get(source) == 1 and source not in outputs:
            lin = nodes[linear_at[source]]
            b = consts[lin.inputs[2]].astype(np.float64)
            folded = _fold(n, source, b, consts, _channel_axis(lin, types[source]), types[source])
        if folded is not None:
            (op, factor), b = folded
            w = consts[lin.inputs[1]]
            if op is not None:  # each row of W times (or over) its factor in float64, rounded once to W's dtype
                shaped = factor.reshape((-1,) + (1,) * (w.ndim - 1))
                w = op(w, shaped, out=np.empty_like(w), dtype=np.float64, casting="same_kind")
            consts[lin.inputs[1]], consts[lin.inputs[2]] = w, b.astype(w.dtype)
            for name in lin.inputs[1:3]:
                types[name] = type_of(consts[name])
            index = linear_at.pop(source)
            nodes[index] = lin.replace(outputs=(n.outputs[0],))
            linear_at[n.outputs[0]] = index
            continue
        nodes.append(n)
        if n.op == "Linear":
            linear_at[n.outputs[0]] = len(nodes) - 1
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


def _channel_axis(lin: Node, t) -> int:
    return 1 if "conv" in lin.attrs else len(t.shape) - 1


def _per_channel(c: np.ndarray, axis: int, t) -> np.ndarray | None:
    """c as one float64 value per output channel, or None if it varies along another axis."""
    rank, m = len(t.shape), t.shape[axis]
    if c.ndim > rank:
        return None
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for i, d in enumerate(full.shape) if i != axis) or full.shape[axis] not in (1, m):
        return None
    return np.broadcast_to(full.reshape(-1).astype(np.float64), (m,))


def _fold(n: Node, source: str, b, consts, axis, t):
    """((op, factor), b') for W' = op(W, factor) per row (op None: W unchanged), or None."""
    if n.op == "BatchNormalization":
        if n.inputs[0] != source or not all(i in consts for i in n.inputs[1:5]) or axis != 1:
            return None
        gamma, beta, mu, var = (consts[i].astype(np.float64) for i in n.inputs[1:5])
        s = gamma / np.sqrt(var + n.attrs.get("epsilon", 1e-5))
        return (np.multiply, s), s * (b - mu) + beta
    if n.op not in ("Add", "Sub", "Mul", "Div") or len(n.inputs) != 2:
        return None
    other = n.inputs[1] if n.inputs[0] == source else n.inputs[0]
    if other not in consts or other == source:
        return None
    c = _per_channel(consts[other], axis, t)
    if c is None or np.asarray(consts[other]).dtype.kind != "f":
        return None
    data_first = n.inputs[0] == source
    same = (None, None)
    if n.op == "Add":
        return same, b + c
    if n.op == "Sub":
        return (same, b - c) if data_first else ((np.multiply, np.full(len(b), -1.0)), c - b)
    if n.op == "Mul":
        return (np.multiply, c), b * c
    if n.op == "Div" and data_first:
        return (np.divide, c), b / c
    return None
