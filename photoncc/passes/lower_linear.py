"""lower_linear: every matrix product with a constant weight becomes one ``Linear`` node.

Maths (W is (M, K) for dense layers, the ONNX (M, C/group, *kernel) tensor for convolutions):

* Gemm:   Y = alpha * A B' + beta * C   ->  W = alpha * B'^T,  b = beta * C   (B' = B or B^T)
* MatMul: Y = X B (B constant, 2-D)     ->  W = B^T, b = 0, applied along X's last axis
* Conv:   Y = conv(X, W) + b            ->  the same W and b, with the conv geometry in attrs

Requires: canonicalize. Ensures: no Gemm, MatMul or Conv remains; those that cannot be lowered
(a data-dependent weight, a transposed activation) are annotated unsupported. Numerics unchanged.
Idempotent.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, fresh_name, prune, type_of


def lower_linear(g: Graph, ctx=None) -> Graph:
    consts, types = dict(g.consts), dict(g.types)
    nodes = []
    for n in g.nodes:
        lowered = _lower(n, g) if n.op in ("Gemm", "MatMul", "Conv") else None
        if isinstance(lowered, tuple):
            w, b, conv = lowered
            dtype = np.dtype(g.types[n.inputs[0]].dtype)
            wname = fresh_name(types, f"{n.name}.weight")
            bname = fresh_name(set(types) | {wname}, f"{n.name}.bias")
            for name, value in ((wname, w), (bname, b)):
                consts[name] = np.ascontiguousarray(value, dtype)
                types[name] = type_of(consts[name])
            attrs = {"conv": conv} if conv else {}
            nodes.append(Node("Linear", (n.inputs[0], wname, bname), n.outputs[:1], attrs, n.name))
        elif isinstance(lowered, str):
            nodes.append(n.replace(attrs={**n.attrs, "unsupported": (lowered, HINT)}))
        else:
            nodes.append(n)
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


HINT = "a photonic bank multiplies data by constant weights; keep weights as initializers"


def _lower(n: Node, g: Graph):
    """(W, b, conv-or-None), or a string saying why the node cannot be lowered."""
    weight = n.inputs[1]
    if weight not in g.consts:
        if n.inputs[0] in g.consts:
            return "the constant operand is on the left; only data @ constant maps onto a bank"
        return "multiplies two data tensors; a bank needs one operand constant"
    bias = g.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
    if n.op == "Conv":  # the kernel as it is (no float64 round trip of the model's largest tensors)
        w = g.consts[weight]
        m = w.shape[0]
        b = np.zeros(m) if bias is None else bias.astype(np.float64)
        conv = {k: [int(v) for v in n.attrs[k]] for k in ("kernel_shape", "strides", "pads", "dilations")}
        conv["group"] = int(n.attrs["group"])
        return w, b, conv
    w = g.consts[weight]  # in its own dtype: scaled in float64 only when alpha asks for it
    if n.op == "MatMul":
        if w.ndim != 2:
            return f"a {w.ndim}-D constant operand (batched MatMul) does not map onto a bank"
        return w.T, np.zeros(w.shape[1]), None
    a = n.attrs
    if a.get("transA", 0):
        return "transA=1 transposes the batch axis into the reduction"
    wm = w if a.get("transB", 0) else w.T
    if a.get("alpha", 1.0) != 1.0:
        wm = wm.astype(np.float64) * a["alpha"]
    m = wm.shape[0]
    b = np.zeros(m)
    if bias is not None:
        c = bias.astype(np.float64) * a.get("beta", 1.0)
        if c.size not in (1, m) or (c.ndim == 2 and c.shape[0] != 1):
            return f"bias C of shape {list(c.shape)} is not one value per output"
        b = np.broadcast_to(c.reshape(-1), (m,)).copy()
    return wm, b, None
