"""lower_linear: every matrix product with a constant weight becomes one ``Linear`` node.

Maths (W is (M, K) for dense layers, the ONNX (M, C/group, *kernel) tensor for convolutions):

* Gemm:   Y = alpha * A B' + beta * C   ->  W = alpha * B'^T,  b = beta * C   (B' = B or B^T)
* MatMul: Y = X B (B constant, 2-D)     ->  W = B^T, b = 0, applied along X's last axis (X of any
  rank: the rows of every token go through the same bank)
* Conv:   Y = conv(X, W) + b            ->  the same W and b, with the conv geometry in attrs
* ConvTranspose: Y = conv_transpose(X, W) + b  ->  InsertZeros(X) (the input spread out by the
  strides, padded by d (k - 1) - p and the output_padding, electronic) then a Linear convolution
  with stride 1, no pads, the dilations and groups, and the kernel flipped with each group's input
  and output channels swapped (``ops.conv_transpose.conv_transpose_as_conv``): exact, the bank stays a plain
  convolution
* Einsum with one constant 2-D operand that contracts one axis c of the data with it and gives one
  new axis k (e.g. ``btd,dk->btk``)  ->  a Transpose putting c last (when it is not), a Linear
  (W: the constant as (k, c)), a Transpose to the output's order (when it differs)

A product of two data tensors stays as it is when it keeps the batch on axis 0 (MatMul of two
activations of the same rank >= 3, attention's scores and their product with the values; an
Einsum whose data operands all start with the batch): it runs electronically, exactly.

Requires: canonicalize. Ensures: no Gemm, Conv or ConvTranspose remains, and no MatMul or Einsum
with a constant operand; those that cannot be lowered (a data-dependent weight, a constant left
operand, a transposed activation, an Einsum that is no matrix product over one axis) are
annotated unsupported. Numerics unchanged. Idempotent.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, TensorType, fresh_name, prune, type_of
from ..ops.conv_transpose import conv_transpose_as_conv
from ..ops.products import parse_einsum


def lower_linear(g: Graph, ctx=None) -> Graph:
    consts, types = dict(g.consts), dict(g.types)
    nodes = []
    names = {n.name for n in g.nodes}
    for n in g.nodes:
        x = n.inputs[0] if n.inputs else ""
        if n.op == "ConvTranspose" and "unsupported" not in n.attrs:
            lowered = _conv_transpose(n, g)
            if isinstance(lowered, tuple):
                spread, *lowered = lowered
                lowered = tuple(lowered)
                nd = len(spread["strides"])
                spatial = [(s - 1) * st + 1 + p + q for s, st, p, q in
                           zip(g.types[x].shape[2:], spread["strides"], spread["pads"][:nd], spread["pads"][nd:])]
                x = _value(types, f"{n.name}/spread", g.types[x].shape[:2] + tuple(spatial), g.types[x].dtype)
                nodes.append(Node("InsertZeros", (n.inputs[0],), (x,), spread, fresh_name(names, f"{n.name}/InsertZeros")))
        elif n.op == "Einsum" and "unsupported" not in n.attrs and any(i in g.consts for i in n.inputs):
            lowered = _einsum(n, g)
            if isinstance(lowered, tuple):
                before, w, b, after = lowered
                x = lowered_data(n, g)
                if before is not None:  # the contracted axis last
                    shape = tuple(g.types[x].shape[k] for k in before)
                    source, x = x, _value(types, f"{n.name}/contracted_last", shape, g.types[x].dtype)
                    nodes.append(Node("Transpose", (source,), (x,), {"perm": before},
                                      fresh_name(names, f"{n.name}/Transpose")))
                lowered = (w, b, None, after)
        else:
            lowered = _lower(n, g) if n.op in ("Gemm", "MatMul", "Conv") else None
        if isinstance(lowered, tuple):
            w, b, conv = lowered[:3]
            after = lowered[3] if len(lowered) > 3 else None
            dtype = np.dtype(types[x].dtype)
            wname = fresh_name(types, f"{n.name}.weight")
            bname = fresh_name(set(types) | {wname}, f"{n.name}.bias")
            for name, value in ((wname, w), (bname, b)):
                consts[name] = np.ascontiguousarray(value, dtype)
                types[name] = type_of(consts[name])
            attrs = {"conv": conv} if conv else {}
            out = n.outputs[0]
            if after is not None:  # the Linear's output, then the Transpose to the output's order
                final = g.types[out].shape
                inverse = [after.index(k) for k in range(len(after))]
                out = _value(types, f"{n.name}/product", tuple(final[k] for k in inverse), g.types[out].dtype)
            nodes.append(Node("Linear", (x, wname, bname), (out,), attrs, n.name))
            if after is not None:
                nodes.append(Node("Transpose", (out,), n.outputs[:1], {"perm": after},
                                  fresh_name(names, f"{n.name}/output_order")))
        elif isinstance(lowered, str):
            nodes.append(n.replace(attrs={**n.attrs, "unsupported": (lowered, HINT)}))
        else:
            nodes.append(n)
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


def _value(types: dict, base: str, shape, dtype) -> str:
    name = fresh_name(types, base)
    types[name] = TensorType(tuple(int(d) for d in shape), dtype)
    return name


def lowered_data(n: Node, g: Graph) -> str:
    """The data operand of an Einsum with a constant one."""
    return next(i for i in n.inputs if i not in g.consts)


def _conv_transpose(n: Node, g: Graph):
    """(InsertZeros attributes, W, b, conv geometry) of the equivalent convolution, or why not."""
    if n.inputs[1] not in g.consts:
        return "its weights are computed from data; a bank needs constant weights"
    if n.inputs[0] in g.consts:
        return "its input is a constant"
    a = n.attrs
    spread, kernel = conv_transpose_as_conv(a, g.consts[n.inputs[1]])
    bias = g.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
    b = np.zeros(kernel.shape[0]) if bias is None else bias.astype(np.float64)
    nd = len(a["kernel_shape"])
    conv = {"kernel_shape": [int(k) for k in a["kernel_shape"]], "strides": [1] * nd, "pads": [0] * (2 * nd),
            "dilations": [int(d) for d in a["dilations"]], "group": int(a["group"])}
    return spread, kernel, b, conv


def _einsum(n: Node, g: Graph):
    """(perm putting the contracted axis last or None, W (k, c), b, perm to the output's order or
    None), or why the Einsum is no matrix product by its constant operand."""
    why = ("an Einsum with a constant operand maps onto a bank only as a matrix product over one axis of the "
           "data by a constant matrix (e.g. 'btd,dk->btk')")
    if len(n.inputs) != 2 or sum(i in g.consts for i in n.inputs) != 1:
        return why
    data = lowered_data(n, g)
    weight = next(i for i in n.inputs if i in g.consts)
    terms, out = parse_einsum(n.attrs["equation"], [len(g.types[i].shape) for i in n.inputs])
    labels, constant = (terms[0], terms[1]) if n.inputs[0] == data else (terms[1], terms[0])
    if g.consts[weight].ndim != 2 or len(set(constant)) != 2 or len(set(labels)) != len(labels):
        return why
    contracted = [c for c in constant if c in labels and c not in out]
    new = [c for c in constant if c in out and c not in labels]
    if len(contracted) != 1 or len(new) != 1 or sorted(out) != sorted([c for c in labels if c != contracted[0]] + new):
        return why
    c, k = contracted[0], new[0]
    w = g.consts[weight] if constant == k + c else g.consts[weight].T   # (k, c)
    before = None
    if labels[-1] != c:
        order = [i for i, label in enumerate(labels) if label != c] + [labels.index(c)]
        before, labels = order, "".join(labels[i] for i in order)
    produced = labels[:-1] + k
    after = None if produced == out else [produced.index(label) for label in out]
    return before, w, np.zeros(w.shape[0]), after


HINT = "a photonic bank multiplies data by constant weights; keep weights as initializers"


def _lower(n: Node, g: Graph):
    """(W, b, conv-or-None), or a string saying why the node cannot be lowered."""
    weight = n.inputs[1]
    if weight not in g.consts:
        if n.inputs[0] in g.consts:
            return "the constant operand is on the left; only data @ constant maps onto a bank"
        if n.op == "MatMul":
            return None  # two activations batch first (canonicalize checked): electronic, exact
        if n.op == "Gemm":
            return ("multiplies two data tensors: a Gemm's operands are matrices whose rows are the samples, "
                    "so a product of two activations mixes the samples of a batch")
        return "its weights are computed from data; a bank needs one operand constant"
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
