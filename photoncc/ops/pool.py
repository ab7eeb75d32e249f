"""Pooling: the windows of a convolution reduced by max or mean, electronically after the ADC.

Each window tap is one vectorised step over every sample, channel and output position whose tap
lies inside the input (``_reduce_taps``): no padded copy, and the output keeps the input's memory
order (a channel-last value stays channel-last for the next layer's unfold). Their reverse-mode
rules (``vjp``) walk the same taps backwards: each tap's share of the cotangent added back onto the
input positions it read (the whole of it to the window's maximum, the first one of ties, for
MaxPool; 1 / count of it to every counted tap for AveragePool).
"""
from __future__ import annotations

from functools import reduce as _fold

import numpy as np

from . import monotone, op, saves
from .conv import conv_output_shape, explicit_pads, resolve_auto_pad, spatial_args


def _onnx_pool(kernel):
    """The ONNX form of a pooling op: ``auto_pad`` resolved for the input's size."""
    return lambda node, x: kernel(x, **explicit_pads(node.attrs, x.shape[2:]))


def _lowest(dtype: np.dtype):
    """The identity of ``max``: -inf for floats, the minimum for integers."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    if dtype == np.bool_:
        return False
    return np.iinfo(dtype).min


def _reduce_taps(x: np.ndarray, kernel_shape, strides, pads, dilations, out_shape, ufunc, identity):
    """``ufunc``-reduce of every window of ``x``: ``y[n, c, o] = ufunc_k x[n, c, o*s + k*d - p]``,
    where a tap outside the input (in the padding, or past the end in ceil mode) contributes
    ``identity``. Computed one kernel tap at a time, each step one vectorised op over every sample,
    channel and output position whose tap lies inside the input (a strided slice of ``x``): no
    padded copy of ``x`` is made, and the output keeps ``x``'s memory order (channel-last stays so).
    """
    order = np.argsort([-abs(st) for st in x.strides], kind="stable")  # axes, outermost first
    shape = x.shape[:2] + tuple(out_shape)
    out = np.full([shape[i] for i in order], identity, x.dtype).transpose(np.argsort(order))
    for dst, src in _taps(x.shape, kernel_shape, strides, pads, dilations, out_shape):
        view = out[dst]
        ufunc(view, x[src], out=view)
    return out


def _taps(shape, kernel_shape, strides, pads, dilations, out_shape):
    """Per kernel tap that reads the input somewhere, (output index, input index): the output
    positions whose tap lies inside the input, and those input positions (strided slices)."""
    nd = len(kernel_shape)
    for tap in np.ndindex(*kernel_shape):
        dst, src = [slice(None)] * 2, [slice(None)] * 2
        for i in range(nd):
            offset = tap[i] * dilations[i] - pads[i]  # input position of output o: o * s + offset
            first = max(0, -(offset // strides[i]))
            last = min(out_shape[i] - 1, (shape[2 + i] - 1 - offset) // strides[i])
            if last < first:
                break
            dst.append(slice(first, last + 1))
            src.append(slice(first * strides[i] + offset, last * strides[i] + offset + 1, strides[i]))
        else:
            yield tuple(dst), tuple(src)


def _pool_geometry(node, x):
    a = explicit_pads(node.attrs, x.shape[2:])
    kernel, strides, pads, dilations = spatial_args(x, a["kernel_shape"], a["strides"], a["pads"], a.get("dilations"))
    out = conv_output_shape(x.shape[2:], kernel, strides, pads, dilations, a.get("ceil_mode", False))
    return a, kernel, strides, pads, dilations, out


def _max_pool_vjp(node, inputs, outputs, cts):
    """The cotangent of each window to the first tap that holds its maximum."""
    x, y, g = inputs[0], outputs[0], cts[0]
    _, kernel, strides, pads, dilations, out = _pool_geometry(node, x)
    dx = np.zeros(x.shape, g.dtype)
    taken = np.zeros(y.shape, bool)
    for dst, src in _taps(x.shape, kernel, strides, pads, dilations, out):
        mine = (x[src] == y[dst]) & ~taken[dst]
        taken[dst] |= mine
        dx[src] += np.where(mine, g[dst], 0)
    return (dx,)


@saves("inputs")
def _average_pool_vjp(node, inputs, outputs, cts):
    """Each counted tap gets the window's cotangent over its count."""
    x, g = inputs[0], cts[0]
    a, kernel, strides, pads, dilations, out = _pool_geometry(node, x)
    nd = len(kernel)
    per_axis = [_axis_counts(x.shape[2 + i], kernel[i], strides[i], dilations[i], pads[i], pads[nd + i], out[i],
                             bool(a.get("count_include_pad", False))) for i in range(nd)]
    share = g / _fold(np.multiply.outer, per_axis).astype(g.dtype)
    dx = np.zeros(x.shape, g.dtype)
    for dst, src in _taps(x.shape, kernel, strides, pads, dilations, out):
        dx[src] += share[dst]
    return (dx,)


@saves("inputs")
def _global_average_vjp(node, inputs, outputs, cts):
    x, g = inputs[0], cts[0]
    count = int(np.prod(x.shape[2:]))
    return (np.broadcast_to(g / g.dtype.type(count), x.shape).copy(),)


def _global_max_vjp(node, inputs, outputs, cts):
    """To the first position holding each channel's maximum."""
    x, y, g = inputs[0], outputs[0], cts[0]
    flat = x.reshape(x.shape[:2] + (-1,))
    first = np.argmax(flat == y.reshape(x.shape[:2] + (1,)), axis=-1)
    dx = np.zeros(flat.shape, g.dtype)
    np.put_along_axis(dx, first[..., None], g.reshape(x.shape[:2] + (1,)), axis=-1)
    return (dx.reshape(x.shape),)


def _axis_counts(size, kernel, stride, dilation, pad_begin, pad_end, out, include_pad):
    """Per output position along one axis, how many window taps an average divides by.

    A tap at input position ``p`` counts if ``0 <= p < size``, or, with ``include_pad``, if it lies
    in the declared padding ``-pad_begin <= p < size + pad_end``. Taps beyond the end padding
    (ceil-mode windows) never count.
    """
    taps = np.arange(out)[:, None] * stride - pad_begin + np.arange(kernel)[None, :] * dilation
    lo, hi = (-pad_begin, size + pad_end) if include_pad else (0, size)
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


@op("MaxPool", "electronic", onnx=_onnx_pool(lambda x, **a: max_pool(x, **a)), canonical=resolve_auto_pad,
    interval=monotone, vjp=_max_pool_vjp, note="1-D/2-D/3-D, strides, pads, auto_pad, dilations, ceil_mode")
def max_pool(x, *, kernel_shape, strides, pads, dilations, ceil_mode=False) -> np.ndarray:
    """ONNX MaxPool: ``y[n, c, o] = max_k xpad[n, c, o*s + k*d]`` with padding that never wins
    (-inf for floats). Output shape per ``conv_output_shape`` (``ceil_mode`` included)."""
    x = np.asarray(x)
    kernel_shape, strides, pads, dilations = spatial_args(x, kernel_shape, strides, pads,
                                                          dilations)
    out = conv_output_shape(x.shape[2:], kernel_shape, strides, pads, dilations, ceil_mode)
    return _reduce_taps(x, kernel_shape, strides, pads, dilations, out, np.maximum, _lowest(x.dtype))


@op("AveragePool", "electronic", onnx=_onnx_pool(lambda x, **a: average_pool(x, **a)), canonical=resolve_auto_pad,
    interval=monotone, vjp=_average_pool_vjp, note="count_include_pad, ceil_mode")
def average_pool(x, *, kernel_shape, strides, pads, ceil_mode=False, count_include_pad=False,
                 dilations=None) -> np.ndarray:
    """ONNX AveragePool: ``y[n, c, o] = sum_k xpad[n, c, o*s + k*d] / count(o)``.

    ``count`` is the number of taps inside the input, or, with ``count_include_pad``, inside the
    input plus the declared pads; taps of a ceil-mode window past the end padding never count.
    ``dilations`` (opset 19+) defaults to 1.
    """
    x = np.asarray(x)
    kernel_shape, strides, pads, dilations = spatial_args(x, kernel_shape, strides, pads,
                                                          dilations)
    nd = len(kernel_shape)
    spatial = x.shape[2:]
    out = conv_output_shape(spatial, kernel_shape, strides, pads, dilations, ceil_mode)
    total = _reduce_taps(x, kernel_shape, strides, pads, dilations, out, np.add, 0)
    per_axis = [_axis_counts(spatial[i], kernel_shape[i], strides[i], dilations[i], pads[i],
                             pads[nd + i], out[i], bool(count_include_pad)) for i in range(nd)]
    count = _fold(np.multiply.outer, per_axis).astype(x.dtype)
    return total / count


@op("GlobalAveragePool", "electronic", interval=monotone, vjp=_global_average_vjp)
def global_average_pool(x) -> np.ndarray:
    """ONNX GlobalAveragePool: mean over every spatial axis, kept as size 1."""
    x = np.asarray(x)
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


@op("GlobalMaxPool", "electronic", interval=monotone, vjp=_global_max_vjp)
def global_max_pool(x) -> np.ndarray:
    """ONNX GlobalMaxPool: max over every spatial axis, kept as size 1."""
    x = np.asarray(x)
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


@op("LpPool", "electronic", onnx=_onnx_pool(lambda x, **a: lp_pool(x, **a)), canonical=resolve_auto_pad,
    note="p-norm of each window: strides, pads, auto_pad, dilations, ceil_mode")
def lp_pool(x, *, kernel_shape, strides, pads, p=2, dilations=None, ceil_mode=False) -> np.ndarray:
    """ONNX LpPool: ``y[n, c, o] = (sum_k |xpad[n, c, o*s + k*d]|^p) ^ (1/p)``, padding adding
    nothing; in float64, rounded to ``x``'s dtype."""
    x = np.asarray(x)
    kernel_shape, strides, pads, dilations = spatial_args(x, kernel_shape, strides, pads,
                                                          dilations)
    out = conv_output_shape(x.shape[2:], kernel_shape, strides, pads, dilations, ceil_mode)
    powered = np.abs(x.astype(np.float64)) ** p
    total = _reduce_taps(powered, kernel_shape, strides, pads, dilations, out, np.add, 0)
    return (total ** (1.0 / p)).astype(x.dtype)


@op("GlobalLpPool", "electronic")
def global_lp_pool(x, *, p=2) -> np.ndarray:
    """ONNX GlobalLpPool: ``(sum |x|^p) ^ (1/p)`` over every spatial axis, kept as size 1."""
    x = np.asarray(x)
    total = (np.abs(x.astype(np.float64)) ** p).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    return (total ** (1.0 / p)).astype(x.dtype)
