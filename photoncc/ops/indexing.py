"""Lookups and selections by index on the electronic side: Gather, GatherElements, GatherND (from
a constant table, or per sample), ArrayFeatureExtractor, Compress, OneHot. No arithmetic.

Axis 0 is the batch and must stay so: an op that would index across it is annotated unsupported
with the reason, except a lookup in a constant table indexed by data, whose axis 0 is the table's
(``layout.batch_axis``, ``layout.TABLE_LOOKUPS``).
"""
from __future__ import annotations

import numpy as np

from . import BATCH_HINT, monotone, op, saves, settings, unsupported
from .layout import batch_axis, scatter_back


@saves("inputs")
def _gather_vjp(node, inputs, outputs, cts):
    x, indices = inputs
    axis = node.attrs.get("axis", 0) % x.ndim
    if x.dtype.kind != "f":
        return None, None
    positions = np.take(np.arange(x.size).reshape(x.shape), indices.astype(np.int64), axis=axis)
    return scatter_back(x.size, cts[0].reshape(-1), positions.reshape(-1)).reshape(x.shape), None


@op("Gather", "layout", canonical=batch_axis(0), note="lookups; on shapes at compile time", vjp=_gather_vjp)
def gather(x, indices, *, axis=0):
    return np.take(x, indices.astype(np.int64), axis=axis)


@op("ArrayFeatureExtractor", "electronic", domain="ai.onnx.ml", note="ai.onnx.ml (skl2onnx class-label lookup)",
    vjp=lambda node, inputs, outputs, cts: (_gather_vjp(node.replace(attrs={"axis": -1}), inputs, outputs, cts)[0], None))
def array_feature_extractor(x, indices):
    """ai.onnx.ml ArrayFeatureExtractor: x[..., indices]."""
    return np.take(x, indices.astype(np.int64), axis=-1)


def _compress_onnx(node, x, *args):
    a = settings(node, args)
    return compress(x, condition=a["condition"], axis=a.get("axis"))


def _compress_canonical(node, graph, source):
    if "axis" not in node.attrs:
        return unsupported(node, "selects from the flattened tensor, across the batch axis", BATCH_HINT)
    return batch_axis(None)(node, graph, source)


@op("Compress", "layout", onnx=_compress_onnx, settings=("condition",), canonical=_compress_canonical,
    interval=monotone, note="constant condition; not the batch axis")
def compress(x, *, condition, axis=None):
    """The slices of ``x`` along ``axis`` where ``condition`` is true (``axis`` None: of the
    flattened ``x``)."""
    return np.compress(np.asarray(condition, bool), x, axis=axis)


@op("GatherElements", "layout", canonical=batch_axis(0), note="not along the batch axis, but from a constant table")
def gather_elements(x, indices, *, axis=0):
    """``y[i][j][k] = x[indices[i][j][k]][j][k]`` for axis 0 (likewise on the other axes);
    negative indices count from the end."""
    indices = indices.astype(np.int64)
    return np.take_along_axis(x, np.where(indices < 0, indices + x.shape[axis], indices), axis=axis)


def _gather_nd_canonical(node, graph, source):
    """With ``batch_dims`` >= 1 data and indices share the batch; with 0 the indices address data's
    axis 0, which only a constant table may have."""
    if (node.attrs.get("batch_dims", 0) == 0) != (node.inputs[0] in graph.consts):
        return unsupported(node, "indexes across the batch axis (axis 0)", BATCH_HINT)
    return node


@op("GatherND", "layout", canonical=_gather_nd_canonical, note="batch_dims >= 1, or from a constant table")
def gather_nd(x, indices, *, batch_dims=0):
    """``y[b..., i...] = x[b..., indices[b..., i..., :]...]`` where ``b`` runs over the first
    ``batch_dims`` axes (shared by ``x`` and ``indices``) and the last axis of ``indices`` holds
    ``q`` indices into the next ``q`` axes of ``x``; negative indices count from the end."""
    b = int(batch_dims)
    q = indices.shape[-1]
    lead = int(np.prod(x.shape[:b], dtype=np.int64))
    table = x.reshape((lead,) + x.shape[b:])
    idx = indices.astype(np.int64).reshape(lead, -1, q)
    idx = np.where(idx < 0, idx + np.array(x.shape[b:b + q]), idx)
    y = table[(np.arange(lead)[:, None],) + tuple(idx[..., i] for i in range(q))]
    return y.reshape(indices.shape[:-1] + x.shape[b + q:])


def _one_hot_onnx(node, indices, *args):
    a = settings(node, args)
    if args:  # the ONNX form: the output takes the values' dtype
        a["dtype"] = args[1].dtype.name
    return one_hot(indices, **a)


def _one_hot_canonical(node, graph, source):
    """A positive axis among the output's; the one-hot axis before the batch refused."""
    rank = len(graph.types[node.inputs[0]].shape) + 1
    axis = int(node.attrs.get("axis", -1)) % rank
    if axis == 0:
        return unsupported(node, "puts the one-hot axis before the batch axis (axis 0)", BATCH_HINT)
    return node.replace(attrs={**node.attrs, "axis": axis, "dtype": graph.types[node.outputs[0]].dtype})


@op("OneHot", "layout", onnx=_one_hot_onnx, settings=("depth", "values"), canonical=_one_hot_canonical,
    note="constant depth and values; the new axis after the batch")
def one_hot(indices, *, depth, values, dtype, axis=-1):
    """``values[1]`` where the new axis ``axis`` (of ``depth`` positions) is at ``indices`` (negative
    ones counting from ``depth``), ``values[0]`` elsewhere, in ``dtype``."""
    depth = int(depth)
    index = indices.astype(np.int64)
    hot = np.where(index < 0, index + depth, index)[..., None] == np.arange(depth)
    y = np.where(hot, values[1], values[0]).astype(dtype)
    return np.moveaxis(y, -1, axis % y.ndim)
