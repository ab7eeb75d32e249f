"""Data movement on the electronic side: reshapes, transposes, concatenation, slices, padding, casts.
No arithmetic, so every one of them passes its input's bounds on (``monotone``). Broadcasting,
tiling, cropping, blocks and triangles (Expand, Tile, CenterCropPad, DepthToSpace, SpaceToDepth,
Trilu) are in ``shapes``; lookups and selections by index (Gather...) in ``indexing``.

Axis 0 is the batch and must stay so: the canonical form of these ops (``Op.canonical``) holds
positive axes and explicit settings, a ``Reshape`` the per-sample target shape (so a program runs
on any number of samples), and an op that would mix the samples of a batch is annotated
unsupported with the reason.

Their reverse-mode rules (``vjp``) move the cotangent back where each value came from: reshaped,
transposed back, split along a concatenation, scattered into zeros for a slice, a lookup or a
padding (the padding's adjoint through the same padding of the positions' indices, so every mode
and negative pad is covered at once).
"""
from __future__ import annotations

import numpy as np

from . import BATCH_HINT, monotone, op, register, saves, settings, unsupported

_PAD_MODES = ("constant", "reflect", "edge", "wrap")  # numpy.pad's names too
TABLE_LOOKUPS = ("Gather", "GatherElements")  # indexing's lookups: on a constant table, their axis is the table's


def input_rank(graph, node) -> int:
    return len(graph.types[node.inputs[0]].shape)


def per_sample_reshape(node, graph, source):
    """``Op.canonical`` of Reshape, Flatten, Squeeze and Unsqueeze: ``Reshape[shape]`` with the
    per-sample target shape, unless the batch axis changes."""
    x, out = graph.types[node.inputs[0]], graph.types[node.outputs[0]]
    if out.shape[:1] != x.shape[:1] or (node.op == "Flatten" and node.attrs.get("axis", 1) % len(x.shape) == 0):
        return unsupported(node, f"changes the batch axis ({x} -> {out})", BATCH_HINT)
    return node.replace(op="Reshape", attrs={"shape": list(out.shape[1:])})


def _reshape_canonical(node, graph, source):
    """A constant target [1, ...] written in the model (not folded from its shape) mixes the
    samples of a dynamic batch."""
    target = source.inputs[1] if len(source.inputs) > 1 else None
    if (target and graph.meta.get("dynamic_batch") and target in graph.meta.get("model_constants", ())
            and int(graph.consts[target].reshape(-1)[0]) == 1):
        return unsupported(source, "reshapes to a fixed leading dimension of 1 although the model's batch is "
                                   "dynamic: at batch N it would mix the samples", "reshape with 0 or -1 on the batch axis")
    return per_sample_reshape(node, graph, source)


def batch_axis(default):
    """``Op.canonical`` of an op with an ``axis`` attribute (ONNX default ``default``; None: the
    importer always sets it): the axis made positive; axis 0, the batch, refused."""
    def canonical(node, graph, source):
        if node.op in TABLE_LOOKUPS and node.inputs[0] in graph.consts:
            return node  # a lookup table indexed by data: axis 0 is the table's, not the batch
        a = dict(node.attrs)
        a["axis"] = int(a.get("axis", default if default is not None else a.get("axis"))) % input_rank(graph, node)
        if a["axis"] == 0:
            return unsupported(node.replace(attrs=a), "works across the batch axis (axis 0)", BATCH_HINT)
        return node.replace(attrs=a)
    return canonical


def _transpose_canonical(node, graph, source):
    rank = input_rank(graph, node)
    a = dict(node.attrs)
    a["perm"] = [int(p) % rank for p in (a.get("perm") or list(range(rank))[::-1])]
    if a["perm"][0] != 0:
        return unsupported(node.replace(attrs=a), f"moves the batch axis (perm {a['perm']})", BATCH_HINT)
    return node.replace(attrs=a)


def _split_canonical(node, graph, source):
    node = batch_axis(0)(node, graph, source)
    if "unsupported" in node.attrs or "split" in node.attrs:
        return node
    a = dict(node.attrs)
    a["split"] = [graph.types[o].shape[a["axis"]] for o in node.outputs]
    a.pop("num_outputs", None)
    return node.replace(attrs=a)


def _slice_canonical(node, graph, source):
    x, out = graph.types[node.inputs[0]], graph.types[node.outputs[0]]
    a = dict(node.attrs)
    axes = [int(v) % len(x.shape) for v in a.get("axes", range(len(a["starts"])))]
    if 0 in axes and out.shape[0] != x.shape[0]:
        return unsupported(node, "slices the batch axis", BATCH_HINT)
    a["axes"] = axes
    a.setdefault("steps", [1] * len(axes))
    return node.replace(attrs=a)


def _pad_canonical(node, graph, source):
    rank = input_rank(graph, node)
    a = dict(node.attrs)
    pads = list(a.get("pads", []))
    if "axes" in a:
        full = [0] * (2 * rank)
        for i, axis in enumerate(int(v) % rank for v in a.pop("axes")):
            full[axis], full[axis + rank] = pads[i], pads[i + len(pads) // 2]
        pads = full
    a["pads"] = pads
    a["value"] = float(a.get("value", 0.0) or 0.0)
    if pads[0] or pads[rank]:
        return unsupported(node.replace(attrs=a), "pads the batch axis", BATCH_HINT)
    return node.replace(attrs=a)


@saves("inputs")
def _reshape_vjp(node, inputs, outputs, cts):
    """Reshape, Flatten, Squeeze, Unsqueeze: the cotangent in the input's shape (settings get None)."""
    return (cts[0].reshape(inputs[0].shape),) + (None,) * (len(inputs) - 1)


@saves()
def _transpose_vjp(node, inputs, outputs, cts):
    perm = node.attrs.get("perm")  # None: reversed, its own inverse
    return (np.transpose(cts[0], None if perm is None else np.argsort(perm)),)


@saves("inputs")
def _concat_vjp(node, inputs, outputs, cts):
    sizes = [x.shape[node.attrs["axis"]] for x in inputs]
    return tuple(np.split(cts[0], np.cumsum(sizes)[:-1], axis=node.attrs["axis"]))


@saves("outputs")
def _split_vjp(node, inputs, outputs, cts):
    """The outputs' cotangents joined (zeros for an output nothing differentiates)."""
    parts = [g if g is not None else np.zeros(np.shape(y), next(c for c in cts if c is not None).dtype)
             for g, y in zip(cts, outputs)]
    return (np.concatenate(parts, axis=node.attrs.get("axis", 0) % outputs[0].ndim),) + (None,) * (len(inputs) - 1)


def scatter_back(shape, g, index) -> np.ndarray:
    """The adjoint of ``x[index]``: zeros of ``shape`` with ``g`` added at ``index`` (repeats add up)."""
    out = np.zeros(shape, g.dtype)
    np.add.at(out, index, g)
    return out


@saves("inputs")
def _slice_vjp(node, inputs, outputs, cts):
    x = inputs[0]
    a = settings(node, inputs[1:])
    count = len(a["starts"])
    axes = [int(v) % x.ndim for v in a.get("axes", range(count))]
    positions = np.arange(x.size).reshape(x.shape)
    picked = slice_(positions, starts=a["starts"], ends=a["ends"], axes=axes, steps=a.get("steps", [1] * count))
    return (scatter_back(x.size, cts[0].reshape(-1), picked.reshape(-1)).reshape(x.shape),) + (None,) * (len(inputs) - 1)


@saves("inputs")
def _pad_vjp(node, inputs, outputs, cts):
    """Pad the positions' indices as the data was padded (-1 where a constant was put): each
    output position's cotangent goes back to the input position it copies."""
    x = inputs[0]
    positions = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    a = settings(node, inputs[1:])
    pads = a["pads"]
    if "axes" in a and a["axes"] is not None:
        pads = _pads_for_axes(pads, a["axes"], x.ndim)
    padded = pad(positions, pads=pads, mode=a.get("mode", "constant"), value=-1)
    keep = padded.reshape(-1) >= 0
    g = cts[0].reshape(-1)
    return (scatter_back(x.size, g[keep], padded.reshape(-1)[keep]).reshape(x.shape),) + (None,) * (len(inputs) - 1)


def _pads_for_axes(pads, axes, ndim):
    full = [0] * (2 * ndim)
    for i, axis in enumerate(int(v) % ndim for v in axes):
        full[axis], full[axis + ndim] = pads[i], pads[i + len(axes)]
    return full


@saves("inputs")
def _cast_vjp(node, inputs, outputs, cts):
    """A cast between float types passes the cotangent on (in the input's type); to or from
    integers or booleans nothing flows."""
    x = inputs[0]
    if x.dtype.kind != "f" or np.dtype(node.attrs["to"]).kind != "f":
        return (None,)
    return (cts[0].astype(x.dtype),)


@saves()
def _identity_vjp(node, inputs, outputs, cts):
    return (cts[0],) + (None,) * (len(inputs) - 1)


def _reshape_onnx(node, x, *args):
    a = settings(node, args)
    if not args:  # canonical: per-sample shape
        return reshape(x, shape=a["shape"])
    shape = a["shape"]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


@op("Reshape", "layout", onnx=_reshape_onnx, settings=("shape",), canonical=_reshape_canonical, interval=monotone,
    vjp=_reshape_vjp,
    note="must keep axis 0 as the batch")
def reshape(x, *, shape):
    """Keep the batch (axis 0), give each sample ``shape``."""
    return x.reshape((x.shape[0],) + tuple(shape))


def _flatten_onnx(node, x):
    axis = node.attrs.get("axis", 1) % max(x.ndim, 1)
    return x.reshape((int(np.prod(x.shape[:axis])), -1))


def _squeeze_onnx(node, x, *args):
    axes = settings(node, args).get("axes")
    return np.squeeze(x, axis=None if axes is None else tuple(a % x.ndim for a in axes))


def _unsqueeze_onnx(node, x, *args):
    axes = settings(node, args)["axes"]
    ndim = x.ndim + len(axes)
    return np.expand_dims(x, tuple(sorted(a % ndim for a in axes)))


@op("Transpose", "layout", canonical=_transpose_canonical, interval=monotone, note="must keep axis 0 first",
    vjp=_transpose_vjp)
def transpose(x, *, perm=None):
    """``x`` with its axes permuted by ``perm`` (None, as ONNX's default: reversed)."""
    return np.transpose(x, perm)


@op("Concat", "layout", canonical=batch_axis(None), interval=monotone, note="not on the batch axis", vjp=_concat_vjp)
def concat(*xs, axis):
    return np.concatenate(xs, axis=axis)


def _split_onnx(node, x, *args):
    a = settings(node, args)
    axis = a.get("axis", 0) % x.ndim
    sizes = a.get("split")
    if sizes is None:
        count = a.get("num_outputs", len(node.outputs))
        chunk = -(-x.shape[axis] // count)
        sizes = [min(chunk, x.shape[axis] - chunk * i) for i in range(count)]
    return split(x, axis=axis, split=sizes)


@op("Split", "layout", onnx=_split_onnx, settings=("split",), canonical=_split_canonical, interval=monotone,
    vjp=_split_vjp,
    note="not on the batch axis")
def split(x, *, axis, split):
    return tuple(np.split(x, np.cumsum(split)[:-1], axis=axis))


def _slice_onnx(node, x, *args):
    a = settings(node, args)
    count = len(a["starts"])
    axes = [int(v) % x.ndim for v in a.get("axes", range(count))]
    return slice_(x, starts=a["starts"], ends=a["ends"], axes=axes, steps=a.get("steps", [1] * count))


@op("Slice", "layout", onnx=_slice_onnx, settings=("starts", "ends", "axes", "steps"), canonical=_slice_canonical,
    interval=monotone, vjp=_slice_vjp, note="not across the batch axis")
def slice_(x, *, starts, ends, axes, steps):
    """ONNX Slice: out-of-range starts/ends clamp to the axis, as Python slices do."""
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = x.shape[axis]
        if step < 0 and end < -dim:
            end = None  # through index 0 inclusive
        index[axis] = slice(start, end, step)
    return x[tuple(index)]


def _pad_onnx(node, x, *args):
    a = settings(node, args)
    pads, axes = a.pop("pads"), a.pop("axes", None)
    if axes is not None:
        full = [0] * (2 * x.ndim)
        for i, axis in enumerate(int(v) % x.ndim for v in axes):
            full[axis], full[axis + x.ndim] = pads[i], pads[i + len(axes)]
        pads = full
    return pad(x, pads=pads, mode=a.get("mode", "constant"), value=a.get("value", 0.0) or 0.0)


@op("Pad", "layout", onnx=_pad_onnx, settings=("pads", "value", "axes"), canonical=_pad_canonical, interval=monotone,
    vjp=_pad_vjp,
    note="constant, reflect, edge, wrap; not on the batch axis")
def pad(x, *, pads, mode="constant", value=0.0) -> np.ndarray:
    """ONNX Pad over every axis: ``pads = [b1, ..., bn, e1, ..., en]``.

    Negative pads crop first; the cropped tensor is then padded by the positive pads with
    ``value`` (constant), its mirror image excluding the edge (reflect; a pad may not exceed the
    cropped size - 1, as in onnxruntime), its edge values (edge) or its periodic continuation
    (wrap, any length).
    """
    x = np.asarray(x)
    nd = x.ndim
    pads = [int(p) for p in pads]
    if len(pads) != 2 * nd:
        raise ValueError(f"Pad: {len(pads)} pads for a rank-{nd} input")
    if mode not in _PAD_MODES:
        raise ValueError(f"Pad: unknown mode {mode!r}")
    begin, end = pads[:nd], pads[nd:]
    crop = tuple(slice(max(-b, 0), max(size - max(-e, 0), max(-b, 0)))
                 for size, b, e in zip(x.shape, begin, end))
    x = x[crop]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if mode == "reflect":
        for axis, (b, e) in enumerate(width):
            if (b or e) and max(b, e) > x.shape[axis] - 1:
                raise ValueError(f"Pad reflect: pads {(b, e)} exceed {x.shape[axis] - 1}, the "
                                 f"most axis {axis} of size {x.shape[axis]} can mirror")
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=0 if value is None else value)
    return np.pad(x, width, mode=mode)


@op("Cast", "electronic", interval=monotone, note="a Cast to the same type is removed", vjp=_cast_vjp)
def cast(x, *, to):
    return x.astype(to)


@op("Identity", "removed", interval=monotone, vjp=_identity_vjp,
    note="kept only to copy a graph input, or another output, to an output of its own name")
def identity(x):
    return x


@op("Dropout", "removed", note="inference: identity (electronic only where a model reads its all-true mask)",
    vjp=_identity_vjp)
def dropout(x, *ratio_and_training_mode):
    """Inference Dropout: ``x`` itself and the mask of the values kept, all of them (bool)."""
    return x, np.ones(x.shape, bool)


register("Flatten", "layout", onnx=_flatten_onnx, canonical=per_sample_reshape, note="axis >= 1", vjp=_reshape_vjp)
register("Squeeze", "layout", onnx=_squeeze_onnx, settings=("axes",), canonical=per_sample_reshape,
         note="not the batch axis", vjp=_reshape_vjp)
register("Unsqueeze", "layout", onnx=_unsqueeze_onnx, settings=("axes",), canonical=per_sample_reshape,
         note="not the batch axis", vjp=_reshape_vjp)



register("CastLike", "electronic", onnx=lambda node, x, like: x.astype(like.dtype),
         canonical=lambda node, graph, source: node.replace(
             op="Cast", inputs=node.inputs[:1], attrs={"to": graph.types[node.inputs[1]].dtype}),
         note="a Cast to the other input's dtype; of a constant, folded at compile time")
