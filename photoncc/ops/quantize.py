"""Linear quantisation (QuantizeLinear, DequantizeLinear), on the electronic side: the Q/DQ pairs of
a model exported in the QDQ format run exactly as fake quantisation, and a DequantizeLinear of
constant integer weights folds into the float weights that a bank takes.

The scale and zero point have one value (per tensor), one per element of axis ``axis`` (per axis),
or the input's shape with axis ``axis`` divided into blocks of ``block_size`` (blocked). NumPy's
integer types only (float8, int4 and the like are refused by the importer). A per-axis or blocked
scale along axis 0, the batch, is refused.
"""
from __future__ import annotations

import numpy as np

from . import BATCH_HINT, op, unsupported


def _granular(param: np.ndarray, x: np.ndarray, axis: int, block_size: int) -> np.ndarray:
    """``param`` (a scale or zero point) broadcastable to ``x``: as it is when it holds one value,
    along ``axis`` when 1-D, repeated ``block_size`` times along ``axis`` when blocked."""
    param = np.asarray(param)
    if param.size == 1 or x.ndim <= 1:
        return param.reshape(())
    axis %= x.ndim
    if param.ndim == 1:
        return param.reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return np.repeat(param, int(block_size), axis=axis)[(slice(None),) * axis + (slice(0, x.shape[axis]),)]


def _quant_canonical(node, graph, source):
    """A positive axis; a scale with one value per sample (per axis or blocked on axis 0) refused."""
    rank = len(graph.types[node.inputs[0]].shape)
    axis = int(node.attrs.get("axis", 1)) % max(rank, 1)
    scale = graph.types[node.inputs[1]].shape
    if axis == 0 and int(np.prod(scale, dtype=np.int64)) > 1 and node.inputs[0] not in graph.consts:
        return unsupported(node, "quantises with a scale per sample of the batch axis (axis 0)", BATCH_HINT)
    return node.replace(attrs={**node.attrs, "axis": axis})


@op("QuantizeLinear", "electronic", canonical=_quant_canonical,
    note="per tensor, axis or block; NumPy's integer types (not float8, int4)")
def quantize_linear(x, scale, zero_point=None, *, axis=1, block_size=0, output_dtype=None, saturate=1, precision=0):
    """``y = saturate(round(x / scale) + zero_point)``: the division in the scale's dtype, rounded
    half to even, saturated to the range of the output type (the zero point's; ``output_dtype``;
    else uint8)."""
    x = np.asarray(x)
    dtype = np.dtype(output_dtype or (zero_point.dtype if zero_point is not None else np.uint8))
    scale = _granular(scale, x, axis, block_size)
    q = np.rint(x.astype(scale.dtype) / scale).astype(np.float64)
    if zero_point is not None:
        q += _granular(zero_point, x, axis, block_size)
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


@op("DequantizeLinear", "electronic", canonical=_quant_canonical,
    note="per tensor, axis or block; of constant weights, folded at compile time")
def dequantize_linear(x, scale, zero_point=None, *, axis=1, block_size=0, output_dtype=None):
    """``y = (x - zero_point) * scale`` in the scale's dtype (or ``output_dtype``); the difference
    taken exactly, in int64."""
    x = np.asarray(x)
    dtype = np.dtype(output_dtype or np.asarray(scale).dtype)
    shifted = x.astype(np.int64)
    if zero_point is not None:
        shifted = shifted - _granular(zero_point, x, axis, block_size).astype(np.int64)
    return shifted.astype(dtype) * _granular(scale, x, axis, block_size).astype(dtype)
