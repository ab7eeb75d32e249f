"""Data movement that changes the shape: broadcasting (Expand), tiling (Tile), centred cropping or
padding (CenterCropPad), blocks (DepthToSpace, SpaceToDepth) and triangles (Trilu), on the
electronic side; none of them has a reverse-mode rule.

As in ``layout``, axis 0 is the batch and must stay so: a canonical form holds the per-sample
settings, and an op that would mix the samples of a batch is annotated unsupported with the reason.
``matrix_axes`` is the canonical form of the ops on the matrices of the last two axes (Trilu, Det).
"""
from __future__ import annotations

import numpy as np

from . import BATCH_HINT, monotone, op, settings, unsupported
from .layout import input_rank


def _per_sample_shape(node, graph, source, what: str):
    """``Op.canonical`` of an op whose output shape is a setting (Expand, CenterCropPad): the
    per-sample output shape as attribute ``shape``, unless the batch axis moves or changes."""
    x, out = graph.types[node.inputs[0]], graph.types[node.outputs[0]]
    if len(out.shape) != len(x.shape) or out.shape[0] != x.shape[0]:
        return unsupported(node, f"{what} the batch axis ({x} -> {out})", BATCH_HINT)
    return node.replace(attrs={"shape": list(out.shape[1:])})


def _expand_onnx(node, x, *args):
    a = settings(node, args)
    if not args:  # canonical: the per-sample shape
        return expand(x, shape=a["shape"])
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(a["shape"]))).copy()  # a constant of its own


@op("Expand", "layout", onnx=_expand_onnx, settings=("shape",), interval=monotone,
    canonical=lambda node, graph, source: _per_sample_shape(node, graph, source, "broadcasts across"),
    note="constant shape; not the batch axis")
def expand(x, *, shape):
    """Keep the batch (axis 0), broadcast each sample to ``shape`` (NumPy rules); a read-only view."""
    return np.broadcast_to(x, (x.shape[0],) + tuple(shape))


def _tile_onnx(node, x, *args):
    return tile(x, repeats=settings(node, args)["repeats"])


def _tile_canonical(node, graph, source):
    if node.attrs["repeats"][0] != 1:
        return unsupported(node, f"repeats the batch axis (repeats {node.attrs['repeats']})", BATCH_HINT)
    return node


@op("Tile", "layout", onnx=_tile_onnx, settings=("repeats",), canonical=_tile_canonical, interval=monotone,
    note="constant repeats; not the batch axis")
def tile(x, *, repeats):
    """``x`` repeated ``repeats[i]`` times along each axis i."""
    return np.tile(x, [int(r) for r in repeats])


def _center_crop_pad_onnx(node, x, *args):
    a = settings(node, args)
    if not args:  # canonical: the per-sample shape
        return center_crop_pad(x, shape=a["shape"])
    target = list(x.shape)
    for axis, size in zip(a.get("axes", range(x.ndim)), a["shape"]):
        target[int(axis) % x.ndim] = size
    return _crop_or_pad(x, target)


def _crop_or_pad(x, target):
    """``x`` centred in zeros of shape ``target``: an axis longer than its target is cropped to its
    middle, a shorter one padded on both sides (the odd element at the end, in both cases)."""
    y = np.zeros(target, x.dtype)
    src, dst = [], []
    for size, want in zip(x.shape, target):
        start = abs(size - want) // 2
        cut = slice(start, start + min(size, want))
        src.append(cut if size > want else slice(None))
        dst.append(cut if size < want else slice(None))
    y[tuple(dst)] = x[tuple(src)]
    return y


@op("CenterCropPad", "layout", onnx=_center_crop_pad_onnx, settings=("shape",),
    canonical=lambda node, graph, source: _per_sample_shape(node, graph, source, "crops or pads"),
    note="constant shape; not the batch axis")
def center_crop_pad(x, *, shape):
    """Keep the batch (axis 0), centre each sample in ``shape`` (``_crop_or_pad``)."""
    return _crop_or_pad(x, (x.shape[0],) + tuple(shape))


# ------------------------------------------------------------------------------- blocks, triangles

def _depth_to_space_canonical(node, graph, source):
    if input_rank(graph, node) != 4:
        return unsupported(node, "works on 4-D (N, C, H, W) tensors only")
    return node


@op("DepthToSpace", "layout", canonical=_depth_to_space_canonical, interval=monotone, note="DCR and CRD")
def depth_to_space(x, *, blocksize, mode="DCR"):
    """(N, C, H, W) -> (N, C/b^2, H*b, W*b): channel ``(i*b + j)*C/b^2 + c`` (DCR) or
    ``(c*b + i)*b + j`` (CRD) becomes pixel (c, h*b + i, w*b + j)."""
    n, c, h, w = x.shape
    b = int(blocksize)
    if mode == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (b * b), h * b, w * b)


@op("SpaceToDepth", "layout", canonical=_depth_to_space_canonical, interval=monotone, note="DCR and CRD")
def space_to_depth(x, *, blocksize, mode="DCR"):
    """(N, C, H, W) -> (N, C*b^2, H/b, W/b), the inverse of ``depth_to_space``: pixel
    (c, h*b + i, w*b + j) becomes channel ``(i*b + j)*C + c`` (DCR) or ``(c*b + i)*b + j`` (CRD)."""
    n, c, h, w = x.shape
    b = int(blocksize)
    blocks = x.reshape(n, c, h // b, b, w // b, b)
    y = blocks.transpose(0, 3, 5, 1, 2, 4) if mode == "DCR" else blocks.transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


def matrix_axes(node, graph, source):
    """``Op.canonical`` of an op on the matrices of the last two axes (Trilu, Det): a rank-2 input's
    rows would be the batch, refused."""
    if input_rank(graph, node) < 3:
        return unsupported(node, "the matrix's rows are the batch axis (axis 0)", BATCH_HINT)
    return node


def _trilu_onnx(node, x, *args):
    return trilu(x, **settings(node, args))


@op("Trilu", "layout", onnx=_trilu_onnx, settings=("k",), canonical=matrix_axes, note="the last two axes")
def trilu(x, *, k=0, upper=1):
    """The upper (``upper``) or lower triangle of each matrix of the last two axes, from diagonal
    ``k`` on; the rest set to 0."""
    return (np.triu if upper else np.tril)(x, int(k))

