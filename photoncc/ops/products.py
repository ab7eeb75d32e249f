"""Products of two operands that need not be a layer's weights: MatMul and Einsum.

With a constant matrix operand ``lower_linear`` makes either one a bank (``Linear``); a product of
two activations (attention's scores and their product with the values) runs electronically,
exactly, as ``np.matmul`` / ``np.einsum``, with the batch on axis 0 of every data operand and of
the output (their canonical forms refuse the rest). ``parse_einsum`` reads an equation's axis
labels (``lower_linear`` and the compile report use it too). MatMul's reverse-mode rule (``vjp``)
is the textbook adjoint (da = g b^T, db = a^T g, each summed back to its operand's shape).
"""
from __future__ import annotations

import string

import numpy as np

from . import BATCH_HINT, op, saves, unbroadcast, unsupported


@saves("inputs")
def _matmul_vjp(node, inputs, outputs, cts):
    """NumPy matmul with 1-D operands promoted (a vector as a row on the left, a column on the
    right) and batch axes broadcast: da = g b^T, db = a^T g, each summed back to its shape."""
    a, b = inputs
    g = cts[0]
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g.reshape(g.shape[:-1] + (1,) + g.shape[-1:]) if a.ndim == 1 else g
    g2 = g2[..., None] if b.ndim == 1 else g2
    da = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
    db = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
    return da.astype(a.dtype), db.astype(b.dtype)


def _matmul_batch(node, graph, source):
    """``Op.canonical`` of MatMul: a product of two data tensors keeps the batch on axis 0 of both
    only when both have the same rank >= 3 (np.matmul broadcasts the leading axes elementwise);
    otherwise one operand's axis 0 would be a matrix axis and the samples would mix. Products with a
    constant operand are lower_linear's."""
    a, b = node.inputs[:2]
    if a in graph.consts or b in graph.consts:
        return node
    ra, rb = (len(graph.types[v].shape) for v in (a, b))
    if ra != rb or ra < 3:
        return unsupported(node, f"multiplies two data tensors of ranks {ra} and {rb}: the batch axis (axis 0) of "
                                 "one would be a matrix axis of the product, which mixes the samples of a batch",
                           BATCH_HINT)
    return node


@op("MatMul", "optical", onnx=lambda node, a, b: np.matmul(a, b), canonical=_matmul_batch, vjp=_matmul_vjp,
    note="data @ constant 2-D weight, along the last axis (a bank); data @ data (attention) electronic, exact")
def matmul(a, b):
    """``np.matmul(a, b)`` of two activations of the same rank >= 3 (a program holds it only
    for a product of two data tensors: attention's scores and their product with the values)."""
    return np.matmul(a, b)


def parse_einsum(equation: str, ranks) -> tuple[list[str], str] | None:
    """The operands' and the output's axis labels, one letter per axis (an ellipsis expanded into
    letters the equation does not use, aligned from the right as NumPy broadcasts it; an implicit
    output made explicit: the ellipsis, then the labels used once, sorted), or None for an
    equation of another form."""
    text = equation.replace(" ", "")
    lhs, arrow, rhs = text.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks) or any(t.replace("...", "", 1).count(".") for t in terms + [rhs]):
        return None
    spare = [c for c in string.ascii_letters[::-1] if c not in text]
    widest = max((r - len(t) + 3 for t, r in zip(terms, ranks) if "..." in t), default=0)
    if widest > len(spare):
        return None
    fill = "".join(spare[:widest])
    expanded = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            count = r - len(t) + 3
            if count < 0:
                return None
            t = t.replace("...", fill[widest - count:])
        if len(t) != r or not all(c.isalpha() for c in t):
            return None
        expanded.append(t)
    if arrow:
        out = rhs.replace("...", fill)
    else:
        joined = "".join(expanded)
        out = fill + "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in fill))
    return (expanded, out) if all(c.isalpha() for c in out) and len(set(out)) == len(out) else None


def _einsum_canonical(node, graph, source):
    """The equation in explicit form; the batch must be the first axis of every data operand and
    of the output (one label, used by no constant operand). Products with a constant operand are
    lower_linear's."""
    ranks = [len(graph.types[i].shape) for i in node.inputs]
    parsed = parse_einsum(str(node.attrs.get("equation", "")), ranks)
    if parsed is None:
        return unsupported(node, f"equation {node.attrs.get('equation')!r} is not one photoncc reads")
    terms, out = parsed
    data = [t for t, i in zip(terms, node.inputs) if i not in graph.consts]
    const = [t for t, i in zip(terms, node.inputs) if i in graph.consts]
    batch = data[0][:1] if data and data[0] else ""
    if (not batch or any(t[:1] != batch or t.count(batch) != 1 for t in data) or out[:1] != batch
            or any(batch in t for t in const)):
        return unsupported(node, f"equation {node.attrs['equation']!r} does not keep the batch as the first axis "
                                 "of every data operand and of the output", BATCH_HINT)
    return node.replace(attrs={**node.attrs, "equation": ",".join(terms) + "->" + out})


@op("Einsum", "optical", canonical=_einsum_canonical,
    note="with a constant matrix over one axis of the data: a bank; of data tensors only: electronic (np.einsum)")
def einsum(*xs, equation):
    """``np.einsum(equation, *xs)`` in the operands' dtype."""
    return np.einsum(equation, *xs).astype(np.result_type(*xs), copy=False)
