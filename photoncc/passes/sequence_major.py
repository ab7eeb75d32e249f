"""sequence_major: a recurrent layer's values in ONNX's sequence-major layout, kept batch first.

ONNX layers are sequence-major (layout 0: X (T, N, I), Y (T, D, N, H), Y_h and Y_c (D, N, H));
photoncc keeps the batch on axis 0. ``lower_recurrent`` computes every output batch first and
records, for each ONNX-layout value, a *virtual* value: (the batch-first value, perm), where the
ONNX value is the batch-first one transposed by ``perm`` (axis k of the ONNX value is axis
perm[k] of the batch-first one). This module

* takes a layer's input X back batch first (``batch_first_input``): from the Transpose that made
  it sequence-major, or from a virtual value;
* carries a virtual value through the layout ops that read it (``through``: Transpose, Squeeze,
  Unsqueeze, Reshape, Gather and Slice off the batch axis, Concat of virtual values alike) by
  rewriting each op on the batch-first value and composing the permutation, until a Transpose
  brings the batch back to axis 0 (the value is then real again, under the op's output name).

An op that would have to work across the batch axis, or that is not a layout op, gets the reason
it cannot be followed (the pass annotates it ``unsupported``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import ops
from ..ir import Node

if TYPE_CHECKING:
    from .lower_recurrent import Builder

LAYOUT_OPS = ("Transpose", "Squeeze", "Unsqueeze", "Reshape", "Gather", "Slice", "Concat")


def batch_first_input(x: str, layout: int, b: Builder, virtual: dict) -> tuple[str | None, str | None]:
    """(the layer's input as a batch-first (N, T, I) value, None), or (None, the reason there is none)."""
    want = [1, 0, 2] if layout == 0 else [0, 1, 2]  # axis j of (N, T, I) is axis want[j] of X
    if x in virtual:
        source, perm = virtual[x]
    elif layout:
        return x, None
    else:
        made = b.producer.get(x)
        if made is None or made.op != "Transpose" or "unsupported" in made.attrs:
            return None, ("its input X is sequence-major (time on axis 0), so axis 0 of the model's input is not "
                          "the batch")
        source = made.inputs[0]
        perm = [int(p) % 3 for p in made.attrs.get("perm") or [2, 1, 0]]
    q = [perm[k] for k in want]
    if q[0] != 0:
        return None, "its input X does not come batch first from the model (a Transpose would move the batch axis)"
    if q == [0, 1, 2]:
        return source, None
    shape = b.types[source].shape
    return b.op("Transpose", (source,), tuple(shape[k] for k in q), b.types[source].dtype, f"{x}/batch_first",
                {"perm": q}), None


def through(n: Node, b: Builder, virtual: dict, rename: dict, graph_outputs) -> str | None:
    """Carry a virtual value through the layout op ``n`` (its data input), or say why not."""
    if n.op == "Concat" and all(i in virtual for i in n.inputs) and len({tuple(virtual[i][1]) for i in n.inputs}) == 1:
        return _concat(n, b, virtual)
    if n.op not in LAYOUT_OPS or n.op == "Concat" or n.inputs[0] not in virtual or any(i in virtual for i in n.inputs[1:]):
        return (f"reads a recurrent layer's sequence-major output (batch not on axis 0) as {n.op}; photoncc "
                "follows it only through " + ", ".join(LAYOUT_OPS))
    source, perm = virtual[n.inputs[0]]
    args = [b.g.consts.get(i) if i else None for i in n.inputs[1:]]
    if any(i and i not in b.g.consts for i in n.inputs[1:]):
        return f"its {n.op} settings are computed from data"
    a = ops.settings(n, args) if n.op != "Gather" else dict(n.attrs)
    if n.op == "Gather":
        return _gather(n, b, virtual, source, perm, a, args[0])
    if n.op == "Slice":
        return _slice(n, b, virtual, source, perm, a)
    result = _moved(n, b, source, perm, a)
    if isinstance(result, str):
        return result
    kind, order, shape = result
    if kind is not None:  # a Transpose: nothing to compute until the batch is first again
        _transposed(n, b, virtual, rename, graph_outputs, source, order, shape)
        return None
    return _emit(b, n, "Reshape", (source,), {"shape": list(shape[1:])}, shape, order, virtual)


def _concat(n: Node, b: Builder, virtual: dict) -> str | None:
    """Virtual values of one permutation side by side (stacked layers' states: h_n), batch first."""
    perm = virtual[n.inputs[0]][1]
    axis = perm[int(n.attrs["axis"]) % len(perm)]
    if axis == 0:
        return "concatenates along the batch axis"
    sources = [virtual[i][0] for i in n.inputs]
    shape = list(b.types[sources[0]].shape)
    shape[axis] = sum(b.types[v].shape[axis] for v in sources)
    return _emit(b, n, "Concat", sources, {"axis": axis}, shape, perm, virtual)


def _moved(n: Node, b: Builder, source: str, perm, a: dict):
    """A Transpose, Squeeze, Unsqueeze or Reshape of the virtual value as (the batch-first value for
    a Transpose, else None; the permutation to the op's ONNX output; the batch-first shape), or the
    reason it cannot be."""
    base, rank = b.types[source], len(perm)
    if n.op == "Transpose":
        order = [int(q) % rank for q in a.get("perm") or list(range(rank))[::-1]]
        return source, [perm[q] for q in order], base.shape
    if n.op == "Squeeze":
        if "axes" not in a:
            return "squeezes without axes (the batch axis would go at batch 1)"
        gone = {perm[int(x) % rank] for x in a["axes"]}
        if 0 in gone:
            return "squeezes the batch axis"
        keep = [k for k in range(len(base.shape)) if k not in gone]
        rest = [perm[i] for i in range(rank) if perm[i] not in gone]
        return None, [keep.index(k) for k in rest], tuple(base.shape[k] for k in keep)
    if n.op == "Unsqueeze":  # the new size-1 axes appended to the batch-first value
        axes = sorted(int(x) % (rank + len(a["axes"])) for x in a["axes"])
        extra = iter(range(len(base.shape), len(base.shape) + len(axes)))
        inner = iter(perm)
        return (None, [next(extra) if k in axes else next(inner) for k in range(rank + len(axes))],
                tuple(base.shape) + (1,) * len(axes))
    return _reshape(perm, base.shape, b.g.types[n.outputs[0]].shape)


def _transposed(n: Node, b: Builder, virtual: dict, rename: dict, graph_outputs, source: str, order, shape) -> None:
    """The outcome of a Transpose of a virtual value: still virtual while the batch is not first;
    else the batch-first value itself (renamed, or copied to a graph output) or its Transpose."""
    if order[0] != 0:
        virtual[n.outputs[0]] = (source, order)
    elif order == sorted(order):
        if n.outputs[0] in graph_outputs:
            b.op("Identity", (source,), shape, b.types[source].dtype, n.name, output=n.outputs[0])
        else:
            rename[n.outputs[0]] = source
    else:
        b.op("Transpose", (source,), tuple(shape[k] for k in order), b.types[source].dtype, n.name, {"perm": order},
             output=n.outputs[0])


def _gather(n: Node, b: Builder, virtual: dict, source: str, perm, a: dict, index) -> str | None:
    """A Gather of the virtual value, on the batch-first value's matching axis; the index's axes
    take the gathered axis's place in the ONNX output."""
    base, rank = b.types[source], len(perm)
    axis = perm[int(a.get("axis", 0)) % rank]
    if axis == 0:
        return "gathers along the batch axis"
    k = np.ndim(index)
    shape = base.shape[:axis] + np.shape(index) + base.shape[axis + 1:]
    moved = [p if p < axis else p + k - 1 for p in perm]
    at = int(a.get("axis", 0)) % rank
    order = moved[:at] + [axis + j for j in range(k)] + moved[at + 1:]
    return _emit(b, n, "Gather", (source, n.inputs[1]), {"axis": axis}, shape, order, virtual)


def _slice(n: Node, b: Builder, virtual: dict, source: str, perm, a: dict) -> str | None:
    """A Slice of the virtual value, on the batch-first value's matching axes (the permutation
    unchanged)."""
    base, rank = b.types[source], len(perm)
    count = len(a["starts"])
    axes = [perm[int(x) % rank] for x in a.get("axes", range(count))]
    if 0 in axes:
        return "slices the batch axis"
    probe = np.empty(base.shape, np.int8)
    shape = ops.kernels()["Slice"](probe, starts=a["starts"], ends=a["ends"], axes=axes,
                                   steps=a.get("steps", [1] * count)).shape
    return _emit(b, n, "Slice", (source,), {"starts": a["starts"], "ends": a["ends"], "axes": axes,
                                            "steps": a.get("steps", [1] * count)}, shape, perm, virtual)


def _emit(b, n, op, inputs, attrs, shape, order, virtual):
    """The batch-first form of ``n``'s output: under its name when ``order`` is the identity, else a
    new value carried on as virtual."""
    real = order == list(range(len(order)))
    out = b.op(op, inputs, shape, b.types[inputs[0]].dtype, n.name, attrs, output=n.outputs[0] if real else None)
    if not real:
        virtual[n.outputs[0]] = (out, order)
    return None


def _reshape(perm, base, onnx_out):
    """A Reshape of the virtual value (the batch-first ``base`` shape permuted by ``perm``) to
    ``onnx_out``, done on the batch-first value: (None, order, new batch-first shape), or the
    reason it cannot be (it would merge or split axes that the batch-first layout does not hold
    side by side in the same order)."""
    onnx_in = tuple(base[p] for p in perm)
    batch = perm.index(0)
    kept = [i for i in range(len(onnx_in)) if onnx_in[i] != 1 or i == batch]
    out_ones = [j for j, d in enumerate(onnx_out) if d == 1]
    for candidate in out_ones:  # the output's batch axis: a size-1 axis the grouping works with
        groups = _groups([onnx_in[i] if i != batch else None for i in kept],
                         [d if j != candidate else None for j, d in enumerate(onnx_out) if d != 1 or j == candidate])
        if groups is not None:
            break
    else:
        return "reshapes a recurrent layer's sequence-major output across its batch axis"
    # the batch-first value with its size-1 axes (except the batch) dropped, axes ranked as they sit
    squeezed = sorted(perm[i] for i in kept)
    rank_of = {p: k for k, p in enumerate(squeezed)}
    new_shape, position = [], {}
    out_kept = [j for j, d in enumerate(onnx_out) if d != 1 or j == candidate]
    starts = {}
    for (ins, outs) in groups:
        axes = [rank_of[perm[kept[i]]] for i in ins]
        if axes != list(range(axes[0], axes[0] + len(axes))):
            return ("merges or splits axes of a recurrent layer's output that are not side by side batch first; "
                    "photoncc cannot keep the batch on axis 0 there")
        starts[axes[0]] = outs
    for first in sorted(starts):
        for j in starts[first]:
            position[out_kept[j]] = len(new_shape)
            new_shape.append(onnx_out[out_kept[j]])
    for j, d in enumerate(onnx_out):
        if j not in position:
            position[j] = len(new_shape)
            new_shape.append(1)
    order = [position[j] for j in range(len(onnx_out))]
    if new_shape[0] != 1 or order.index(0) != candidate:
        return "reshapes a recurrent layer's sequence-major output across its batch axis"
    return None, order, tuple(new_shape)


def _groups(left, right):
    """Contiguous groups of ``left`` and ``right`` (sizes; None: the batch, a group of its own) with
    equal products, as lists of indices; None when there are none."""
    groups, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        if left[i] is None or right[j] is None:
            if left[i] is not None or right[j] is not None:
                return None
            groups.append(([i], [j]))
            i, j = i + 1, j + 1
            continue
        gi, gj, pi, pj = [i], [j], left[i], right[j]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                if i >= len(left) or left[i] is None:
                    return None
                pi *= left[i]
                gi.append(i)
                i += 1
            else:
                if j >= len(right) or right[j] is None:
                    return None
                pj *= right[j]
                gj.append(j)
                j += 1
        groups.append((gi, gj))
    return groups if i == len(left) and j == len(right) else None
