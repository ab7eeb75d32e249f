"""NumPy kernels for the ONNX operators that run on the electronic side of the accelerator.

Everything that happens after the ADC (activations, pooling, normalisation, padding, ...) is
computed by these functions. They are shared by the compiler's IR interpreter and by the device
simulator, so this module depends on NumPy only.

Conventions (the caller has already resolved every ONNX quirk):

* Layout is ``N, C, *spatial`` with 1, 2 or 3 spatial axes.
* ``pads`` is in ONNX order ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`` of explicit ints
  (``auto_pad`` has been resolved); ``strides``, ``dilations`` and ``kernel_shape`` are tuples of
  ints of the spatial rank.
* Attributes are keyword arguments holding plain Python values; optional ONNX inputs that are
  really attributes (``Clip``'s bounds, ``Pad``'s pads, the ``Reduce*`` axes) arrive as keyword
  arguments too.
* The input dtype is preserved and the arithmetic is done in it (float32 in, float32 out). The
  one exception is ``erf`` (and ``gelu``), which is evaluated in float64 and rounded back.

``ELECTRONIC`` maps ONNX op types to these functions, each called as ``fn(*inputs, **attrs)``.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import reduce as _fold

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "ELECTRONIC", "abs", "argmax", "argmin", "average_pool", "batch_norm", "clip", "conv", "conv_padded",
    "conv_output_shape", "elu", "erf", "exp", "gelu", "global_average_pool", "global_max_pool",
    "hard_sigmoid", "hard_swish", "im2col", "unfold", "leaky_relu", "log", "log_softmax", "lrn",
    "max_pool", "neg", "pad", "prelu", "reciprocal", "reduce", "relu", "selu", "sigmoid",
    "softmax", "softplus", "softsign", "sqrt", "tanh",
]

# ONNX's Selu defaults are float32 constants; these are their exact values.
SELU_ALPHA = 1.67326319217681884765625
SELU_GAMMA = 1.05070102214813232421875


# --------------------------------------------------------------------------------------------
# helpers


def _scalar(x: np.ndarray, value) -> np.generic:
    """``value`` as a scalar of ``x``'s dtype, so that arithmetic stays in that dtype."""
    return x.dtype.type(value)


def _lowest(dtype: np.dtype):
    """The identity of ``max``: -inf for floats, the minimum for integers."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    if dtype == np.bool_:
        return False
    return np.iinfo(dtype).min


def _spatial_args(x: np.ndarray, kernel_shape, strides, pads, dilations):
    nd = x.ndim - 2
    kernel_shape = tuple(int(k) for k in kernel_shape)
    strides = tuple(int(s) for s in strides) if strides is not None else (1,) * nd
    dilations = tuple(int(d) for d in dilations) if dilations is not None else (1,) * nd
    pads = tuple(int(p) for p in pads) if pads is not None else (0,) * (2 * nd)
    if nd < 1 or len(pads) != 2 * nd or {len(kernel_shape), len(strides), len(dilations)} != {nd}:
        raise ValueError(
            f"input of rank {x.ndim} does not match kernel_shape={kernel_shape}, "
            f"strides={strides}, pads={pads}, dilations={dilations}")
    return kernel_shape, strides, pads, dilations


def _pad_in_place_order(x: np.ndarray, width, fill) -> np.ndarray:
    """``np.pad(x, width, constant_values=fill)`` laid out in memory as ``x`` is (a channel-last
    activation stays channel-last), so the copy streams through memory instead of transposing."""
    order = np.argsort([-abs(st) for st in x.strides], kind="stable")  # axes, outermost first
    xt = x.transpose(order)
    padded = np.pad(xt, [width[i] for i in order], mode="constant", constant_values=fill)
    return padded.transpose(np.argsort(order))


def _windows(x: np.ndarray, kernel_shape, strides, pads, dilations, out_shape, fill):
    """A strided view ``(N, C, *out_shape, *kernel_shape)`` of the sliding windows of ``x``.

    ``x`` is padded with ``pads`` (and, for ceil-mode windows that run past the end padding,
    with as much more as they need) using the constant ``fill``; end padding no window reaches
    is cropped away. Window ``o`` along an axis covers padded positions
    ``o * stride + j * dilation`` for ``j < kernel``.
    """
    nd = len(kernel_shape)
    width = [(0, 0), (0, 0)]
    crop = [slice(None), slice(None)]
    eff = []
    for i in range(nd):
        size = x.shape[2 + i]
        extent = dilations[i] * (kernel_shape[i] - 1) + 1
        need = (out_shape[i] - 1) * strides[i] + extent  # padded length the windows use
        right = need - pads[i] - size
        width.append((pads[i], max(right, 0)))
        crop.append(slice(0, max(size + min(right, 0), 0)))
        eff.append(extent)
    xp = _pad_in_place_order(x[tuple(crop)], width, fill)
    view = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None))
    index += tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out_shape, strides))
    index += tuple(slice(None, None, d) for d in dilations)
    return view[index]


def _reduce_taps(x: np.ndarray, kernel_shape, strides, pads, dilations, out_shape, ufunc, identity):
    """``ufunc``-reduce of every window of ``x``: ``y[n, c, o] = ufunc_k x[n, c, o*s + k*d - p]``,
    where a tap outside the input (in the padding, or past the end in ceil mode) contributes
    ``identity``. Computed one kernel tap at a time, each step one vectorised op over every sample,
    channel and output position whose tap lies inside the input (a strided slice of ``x``): no
    padded copy of ``x`` is made, and the output keeps ``x``'s memory order (channel-last stays so).
    """
    nd = len(kernel_shape)
    order = np.argsort([-abs(st) for st in x.strides], kind="stable")  # axes, outermost first
    shape = x.shape[:2] + tuple(out_shape)
    out = np.full([shape[i] for i in order], identity, x.dtype).transpose(np.argsort(order))
    for tap in np.ndindex(*kernel_shape):
        dst, src = [slice(None)] * 2, [slice(None)] * 2
        for i in range(nd):
            offset = tap[i] * dilations[i] - pads[i]  # input position of output o: o * s + offset
            first = max(0, -(offset // strides[i]))
            last = min(out_shape[i] - 1, (x.shape[2 + i] - 1 - offset) // strides[i])
            if last < first:
                break
            dst.append(slice(first, last + 1))
            src.append(slice(first * strides[i] + offset, last * strides[i] + offset + 1, strides[i]))
        else:
            view = out[tuple(dst)]
            ufunc(view, x[tuple(src)], out=view)
    return out


def _axis_counts(size, kernel, stride, dilation, pad_begin, pad_end, out, include_pad):
    """Per output position along one axis, how many window taps an average divides by.

    A tap at input position ``p`` counts if ``0 <= p < size``, or, with ``include_pad``, if it lies
    in the declared padding ``-pad_begin <= p < size + pad_end``. Taps beyond the end padding
    (ceil-mode windows) never count.
    """
    taps = np.arange(out)[:, None] * stride - pad_begin + np.arange(kernel)[None, :] * dilation
    lo, hi = (-pad_begin, size + pad_end) if include_pad else (0, size)
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


def _norm_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"axis {axis} out of range for rank {ndim}")
    return axis % max(ndim, 1)


def _coerce_2d(x: np.ndarray, axis: int) -> np.ndarray:
    """Opset < 13 softmax view: ``(prod(shape[:axis]), prod(shape[axis:]))``."""
    axis = _norm_axis(axis, x.ndim) if x.ndim else 0
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(rows, -1)


# --------------------------------------------------------------------------------------------
# convolution geometry, im2col, Conv


def conv_output_shape(spatial, kernel_shape, strides, pads, dilations, ceil_mode=False) -> tuple:
    """Output spatial shape of a convolution or pooling window.

    ``out = floor_or_ceil((S + p_begin + p_end - (d * (k - 1) + 1)) / s) + 1``; with ``ceil_mode``
    a last window that would start inside the end padding is dropped (ONNX, as PyTorch): it must
    start inside the input or the begin padding, ``(out - 1) * s < S + p_begin``.
    """
    nd = len(spatial)
    out = []
    for i in range(nd):
        extent = dilations[i] * (kernel_shape[i] - 1) + 1
        span = spatial[i] + pads[i] + pads[nd + i] - extent
        if ceil_mode:
            o = -(-span // strides[i]) + 1
            if (o - 1) * strides[i] >= spatial[i] + pads[i]:
                o -= 1
        else:
            o = span // strides[i] + 1
        if o < 1:
            raise ValueError(
                f"window {tuple(kernel_shape)} (dilations {tuple(dilations)}) does not fit the "
                f"padded input {tuple(spatial)} + pads {tuple(pads)}")
        out.append(int(o))
    return tuple(out)


def im2col(x, kernel_shape, strides, pads, dilations) -> np.ndarray:
    """Unfold the zero-padded sliding windows of ``x (N, C, *S)`` into rows.

    ``cols[n, *o, c * K + k] = xpad[n, c, o * strides + k * dilations]`` with ``K = prod(kernel)``
    and ``k`` the row-major kernel offset, i.e. the last axis is ordered ``(c, k1, k2, ...)`` like
    ``W.reshape(M, -1)``. Returns ``(N, *out_spatial, C * K)``.
    """
    view = unfold(x, kernel_shape, strides, pads, dilations)
    return view.reshape(view.shape[:view.ndim - len(kernel_shape) - 1] + (-1,))


def unfold(x, kernel_shape, strides, pads, dilations) -> np.ndarray:
    """``im2col`` as a strided view ``(N, *out_spatial, C, *kernel)`` of the padded input: a block
    of it reshaped to ``(-1, C * K)`` is the im2col of that block, copied only then."""
    x = np.asarray(x)
    kernel_shape, strides, pads, dilations = _spatial_args(x, kernel_shape, strides, pads,
                                                          dilations)
    nd = len(kernel_shape)
    out = conv_output_shape(x.shape[2:], kernel_shape, strides, pads, dilations)
    view = _windows(x, kernel_shape, strides, pads, dilations, out, fill=0)
    return view.transpose((0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd)))


CONV_BLOCK = 1 << 21  # values per unfolded block of a Conv (8 MB in float32)


def conv(x, w, b=None, *, strides, pads, dilations, group=1, kernel_shape=None) -> np.ndarray:
    """ONNX Conv: ``y[n, m, o] = b[m] + sum_{c in group(m), k} w[m, c, k] * xpad[n, c, o*s + k*d]``.

    ``x (N, C, *S)``, ``w (M, C / group, *K)``, ``b (M,)``. Returns ``(N, M, *out_spatial)``. The
    kernel shape is the weight's; ``kernel_shape``, if given, must agree with it. The input is
    copied channel-last into a zero-padded buffer (``pad_channel_last``), then ``conv_padded``.
    """
    x = np.asarray(x)
    if kernel_shape is not None and tuple(int(k) for k in kernel_shape) != np.shape(w)[2:]:
        raise ValueError(f"Conv: kernel_shape {tuple(kernel_shape)} but weight {np.shape(w)}")
    xp, inner = pad_channel_last(x.shape, pads, x.dtype)
    inner[...] = np.moveaxis(x, 1, -1)
    return conv_padded(xp, w, b, strides=strides, dilations=dilations, group=group)


def pad_channel_last(shape, pads, dtype) -> tuple[np.ndarray, np.ndarray]:
    """For an input of ``shape`` ``(N, C, *S)`` and ONNX ``pads``: a zeroed ``(N, *S_padded, C)``
    buffer and the view of its interior ``(N, *S, C)``, for the caller to fill."""
    nd = len(shape) - 2
    pads = [int(p) for p in pads]
    if nd < 1 or len(pads) != 2 * nd:
        raise ValueError(f"Conv: pads {tuple(pads)} do not match an input of rank {len(shape)}")
    spatial = shape[2:]
    xp = np.zeros((shape[0],) + tuple(s + pads[i] + pads[nd + i] for i, s in enumerate(spatial)) + (shape[1],), dtype)
    return xp, xp[(slice(None),) + tuple(slice(pads[i], pads[i] + s) for i, s in enumerate(spatial))]


def conv_padded(xp, w, b=None, *, strides, dilations, group=1) -> np.ndarray:
    """The convolution of an already padded, channel-last input ``xp (N, *S_padded, C)``.

    The windows are unfolded channel-last (each copied run is one pixel's channels, contiguous:
    about twice as fast as unfolding NCHW) into ``(N*P, K*C)`` and multiplied by the weights in a
    GEMM (an einsum over the groups for grouped and depthwise convolutions), a block at a time:
    whole samples when one sample's unfolded values fit in ``CONV_BLOCK``, else a block of one
    sample's output rows. Every block is unfolded into the same buffer (``threaded``: the gather
    is split over the cores) and its GEMM writes straight into the result, a contiguous slice.
    Returns ``(N, M, *out)`` as a view of a channel-last result: elementwise ops that follow keep
    that memory order (NumPy's ``order="K"``), so the next Conv copies it without a transpose.
    """
    w = np.asarray(w, dtype=xp.dtype)
    n, c = xp.shape[0], xp.shape[-1]
    m, cg = w.shape[:2]
    kernel_shape = w.shape[2:]
    nd = len(kernel_shape)
    if xp.ndim != nd + 2 or c % group or m % group or cg != c // group:
        raise ValueError(f"Conv: input channels {c}, weight {w.shape} and group {group} disagree")
    strides, dilations = (tuple(int(v) for v in a) for a in (strides, dilations))
    out = conv_output_shape(xp.shape[1:-1], kernel_shape, strides, (0,) * 2 * nd, dilations)
    extent = [d * (k - 1) + 1 for k, d in zip(kernel_shape, dilations)]
    view = sliding_window_view(xp, extent, axis=tuple(range(1, 1 + nd)))  # (N, *S', C, *extent)
    index = (slice(None),) + tuple(slice(0, (o - 1) * st + 1, st) for o, st in zip(out, strides))
    view = view[index + (slice(None),) + tuple(slice(None, None, d) for d in dilations)]
    windows = view.transpose((0, *range(1, 1 + nd), *range(2 + nd, 2 + 2 * nd), 1 + nd))  # (N, *out, *k, C)
    taps = int(np.prod(kernel_shape))
    wk = np.moveaxis(w.reshape(group, m // group, cg, taps), 2, 3)  # (g, M/g, K, C/g)
    wt = wk.reshape(m, taps * cg).T if group == 1 else None         # (K*C, M), a transposed copy
    y = np.empty((n,) + tuple(out) + (m,), dtype=xp.dtype)
    flat = y.reshape(-1, m)                                          # (N*P, M), a view
    row = int(np.prod(out[1:], dtype=np.int64))                      # output positions per output row
    width = taps * c                                                 # unfolded values per position
    blocks = row_blocks(n, out[0], row * width, CONV_BLOCK)
    buffer = np.empty(windows[blocks[0]].size if blocks else 0, xp.dtype)  # the first block is the largest
    for samples, rows in blocks:
        block = windows[samples, rows]
        cols = buffer[:block.size].reshape(block.shape)
        threaded(np.copyto, cols, block)                             # the unfold: (n, rows, *out', *k, C)
        start = (samples.start * out[0] + rows.start) * row
        target = flat[start:start + block.size // width]             # the block's outputs, contiguous
        if group == 1:
            np.matmul(cols.reshape(-1, width), wt, out=target)
        else:
            target[...] = np.einsum("pkgc,gmkc->pgm", cols.reshape(-1, taps, group, cg), wk,
                                    optimize=True).reshape(target.shape)
    y = np.moveaxis(y, -1, 1)
    if b is not None:
        y += np.asarray(b, dtype=y.dtype).reshape((1, m) + (1,) * nd)
    return y


def row_blocks(samples: int, rows: int, per_row: int, budget: int) -> list[tuple[slice, slice]]:
    """(samples, output rows) slices that cover a convolution's output, a block of about
    ``budget`` values at a time (``per_row`` values per output row of one sample): whole samples
    when one sample fits, else output rows of one sample. Either way a block's outputs are
    contiguous in a sample-major, row-major layout."""
    if rows * per_row <= budget:
        step = (max(1, budget // max(rows * per_row, 1)), rows)
    else:
        step = (1, max(1, budget // max(per_row, 1)))
    return [(slice(i, i + step[0]), slice(r, r + step[1]))
            for i in range(0, samples, step[0]) for r in range(0, rows, step[1])]


def tile_row_blocks(tiles: np.ndarray, m: int, budget: int) -> list[tuple[slice, slice]]:
    """(tile rows, matrix rows) slices that cover a bank's tiles (G, R, Q, B, C) a block of whole
    tile rows at a time, about ``budget`` rings each (at least one tile row): tile rows r0..r1
    hold matrix rows r0 B .. min(r1 B, m), the last tile row's padding excluded."""
    banks = tiles.shape[3]
    per = max(1, budget // max(1, tiles[:, :1].size))
    return [(slice(r0, r0 + per), slice(r0 * banks, min((r0 + per) * banks, m)))
            for r0 in range(0, tiles.shape[1], per)]


def threaded(fn, out, source, axis: int | None = None) -> None:
    """``fn(out, source)``, a function that writes ``out`` from ``source`` position by position
    (``np.copyto``, or a chain of elementwise ops), split over ``THREADS`` threads along ``axis``
    (default: the first axis of ``out`` long enough to share) when ``out`` holds at least
    ``THREADED`` values. A strided gather (an unfold, a transposing copy) or an elementwise chain
    is bound by one core's memory accesses, and NumPy releases the GIL while it computes, so the
    cores share it; the result does not depend on the split. Operands that ``fn`` broadcasts must
    not vary along ``axis``."""
    parts = THREADS if out.size >= THREADED else 1
    if axis is None:
        axis = next((i for i, s in enumerate(out.shape) if s >= parts), None)
    elif out.shape[axis] < parts:
        axis = None
    if parts == 1 or axis is None or np.ndim(source) != out.ndim:
        fn(out, source)
        return
    bounds = [out.shape[axis] * i // parts for i in range(parts + 1)]
    cut = [(slice(None),) * axis + (slice(a, z),) for a, z in zip(bounds, bounds[1:])]
    jobs = [_pool().submit(fn, out[s], source[s]) for s in cut[1:]]
    fn(out[cut[0]], source[cut[0]])
    for job in jobs:
        job.result()


def threaded_map(fn, items) -> list:
    """``[fn(item) for item in items]``, the items shared by ``THREADS`` threads (this one
    included): for blocks of work that each end in a small result (a reduction), where NumPy
    releases the GIL for the work. ``fn`` must not use ``threaded`` (the threads it would wait for
    are busy with the items)."""
    items = list(items)
    if THREADS == 1 or len(items) < 2:
        return [fn(item) for item in items]
    jobs = {i: _pool().submit(fn, item) for i, item in enumerate(items) if i % THREADS}
    mine = {i: fn(item) for i, item in enumerate(items) if i % THREADS == 0}
    return [mine[i] if i in mine else jobs[i].result() for i in range(len(items))]


THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
THREADED = 1 << 18  # values: below this a copy is faster on one core than handed to others
_POOL = {}  # process id -> its pool: a forked child has none of its parent's threads, so it starts its own


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _POOL:
        _POOL.clear()
        _POOL[pid] = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="photoncc-copy")
    return _POOL[pid]


# --------------------------------------------------------------------------------------------
# pooling


def max_pool(x, *, kernel_shape, strides, pads, dilations, ceil_mode=False) -> np.ndarray:
    """ONNX MaxPool: ``y[n, c, o] = max_k xpad[n, c, o*s + k*d]`` with padding that never wins
    (-inf for floats). Output shape per ``conv_output_shape`` (``ceil_mode`` included)."""
    x = np.asarray(x)
    kernel_shape, strides, pads, dilations = _spatial_args(x, kernel_shape, strides, pads,
                                                          dilations)
    out = conv_output_shape(x.shape[2:], kernel_shape, strides, pads, dilations, ceil_mode)
    return _reduce_taps(x, kernel_shape, strides, pads, dilations, out, np.maximum, _lowest(x.dtype))


def average_pool(x, *, kernel_shape, strides, pads, ceil_mode=False, count_include_pad=False,
                 dilations=None) -> np.ndarray:
    """ONNX AveragePool: ``y[n, c, o] = sum_k xpad[n, c, o*s + k*d] / count(o)``.

    ``count`` is the number of taps inside the input, or, with ``count_include_pad``, inside the
    input plus the declared pads; taps of a ceil-mode window past the end padding never count.
    ``dilations`` (opset 19+) defaults to 1.
    """
    x = np.asarray(x)
    kernel_shape, strides, pads, dilations = _spatial_args(x, kernel_shape, strides, pads,
                                                          dilations)
    nd = len(kernel_shape)
    spatial = x.shape[2:]
    out = conv_output_shape(spatial, kernel_shape, strides, pads, dilations, ceil_mode)
    total = _reduce_taps(x, kernel_shape, strides, pads, dilations, out, np.add, 0)
    per_axis = [_axis_counts(spatial[i], kernel_shape[i], strides[i], dilations[i], pads[i],
                             pads[nd + i], out[i], bool(count_include_pad)) for i in range(nd)]
    count = _fold(np.multiply.outer, per_axis).astype(x.dtype)
    return total / count


def global_average_pool(x) -> np.ndarray:
    """ONNX GlobalAveragePool: mean over every spatial axis, kept as size 1."""
    x = np.asarray(x)
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


def global_max_pool(x) -> np.ndarray:
    """ONNX GlobalMaxPool: max over every spatial axis, kept as size 1."""
    x = np.asarray(x)
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


# --------------------------------------------------------------------------------------------
# normalisation


def lrn(x, *, size, alpha=1e-4, beta=0.75, bias=1.0) -> np.ndarray:
    """ONNX LRN across channels: ``y = x / (bias + alpha / size * sum_{i in win(c)} x_i^2) ** beta``
    with ``win(c) = [c - floor((size-1)/2), c + ceil((size-1)/2)]`` clipped to the channels."""
    x = np.asarray(x)
    size = int(size)
    lo = (size - 1) // 2
    hi = size - 1 - lo
    sq = np.pad(x * x, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    square_sum = sliding_window_view(sq, size, axis=1).sum(axis=-1)
    scale = _scalar(x, bias) + _scalar(x, alpha / size) * square_sum
    return x / scale ** _scalar(x, beta)


def batch_norm(x, scale, bias, mean, var, *, epsilon=1e-5) -> np.ndarray:
    """Inference BatchNormalization: ``y = (x - mean) / sqrt(var + epsilon) * scale + bias``,
    the per-channel parameters broadcast along axis 1."""
    x = np.asarray(x)
    shape = (-1,) + (1,) * (x.ndim - 2)
    scale, bias, mean, var = (np.asarray(a, dtype=x.dtype).reshape(shape)
                              for a in (scale, bias, mean, var))
    return (x - mean) / np.sqrt(var + _scalar(x, epsilon)) * scale + bias


# --------------------------------------------------------------------------------------------
# softmax family, arg reductions, reductions


def softmax(x, *, axis=-1, legacy=False) -> np.ndarray:
    """``y = exp(x - max) / sum(exp(x - max))`` along ``axis``. ``legacy`` (opset < 13): over the
    2-D coercion ``(prod(shape[:axis]), prod(shape[axis:]))`` instead."""
    x = np.asarray(x)
    if legacy:
        return softmax(_coerce_2d(x, axis), axis=1).reshape(x.shape)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, *, axis=-1, legacy=False) -> np.ndarray:
    """``y = (x - max) - log(sum(exp(x - max)))`` along ``axis``; ``legacy`` as in ``softmax``."""
    x = np.asarray(x)
    if legacy:
        return log_softmax(_coerce_2d(x, axis), axis=1).reshape(x.shape)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _arg_reduce(x, fn, axis, keepdims, select_last_index):
    x = np.asarray(x)
    axis = _norm_axis(axis, x.ndim)
    if select_last_index:
        idx = (x.shape[axis] - 1) - fn(np.flip(x, axis=axis), axis=axis)
    else:
        idx = fn(x, axis=axis)
    idx = np.asarray(idx, dtype=np.int64)
    return np.expand_dims(idx, axis) if keepdims else idx


def argmax(x, *, axis=0, keepdims=True, select_last_index=False) -> np.ndarray:
    """Index (int64) of the largest element along ``axis``; the first of ties, or the last with
    ``select_last_index``."""
    return _arg_reduce(x, np.argmax, axis, keepdims, select_last_index)


def argmin(x, *, axis=0, keepdims=True, select_last_index=False) -> np.ndarray:
    """Index (int64) of the smallest element along ``axis``; the first of ties, or the last with
    ``select_last_index``."""
    return _arg_reduce(x, np.argmin, axis, keepdims, select_last_index)


def _log_sum_exp(x, axis, keepdims):
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, _scalar(x, 0))
    y = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis=axis)


_REDUCERS = {
    "mean": lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims),
    "sum": lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims),
    "max": lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims),
    "min": lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims),
    "prod": lambda x, axis, keepdims: x.prod(axis=axis, keepdims=keepdims),
    "l1": lambda x, axis, keepdims: np.abs(x).sum(axis=axis, keepdims=keepdims),
    "l2": lambda x, axis, keepdims: np.sqrt((x * x).sum(axis=axis, keepdims=keepdims)),
    "sum_square": lambda x, axis, keepdims: (x * x).sum(axis=axis, keepdims=keepdims),
    "log_sum_exp": _log_sum_exp,
}


def reduce(x, *, op, axes=None, keepdims=True) -> np.ndarray:
    """ONNX Reduce{Mean,Sum,Max,Min,Prod,L1,L2,SumSquare,LogSumExp} over ``axes`` (``None``: all
    axes). ``l1 = sum|x|``, ``l2 = sqrt(sum x^2)``, ``sum_square = sum x^2``,
    ``log_sum_exp = m + log(sum exp(x - m))`` with ``m = max x``."""
    x = np.asarray(x)
    if op not in _REDUCERS:
        raise ValueError(f"unknown reduction {op!r}; expected one of {sorted(_REDUCERS)}")
    if axes is None:
        axis = tuple(range(x.ndim))
    else:
        axes = (axes,) if np.isscalar(axes) else axes
        axis = tuple(sorted({_norm_axis(int(a), x.ndim) for a in axes}))
    return np.asarray(_REDUCERS[op](x, axis, bool(keepdims))).astype(x.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# element-wise activations


def relu(x) -> np.ndarray:
    """``max(x, 0)``."""
    x = np.asarray(x)
    return np.maximum(x, _scalar(x, 0))


def leaky_relu(x, *, alpha=0.01) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``alpha * x``."""
    x = np.asarray(x)
    return np.where(x < 0, _scalar(x, alpha) * x, x)


def prelu(x, slope) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``slope * x``, ``slope`` broadcast (NumPy rules) to ``x``."""
    x = np.asarray(x)
    slope = np.asarray(slope, dtype=x.dtype)
    return np.where(x < 0, slope * x, x)


def sigmoid(x) -> np.ndarray:
    """``1 / (1 + exp(-x))``, as ``e / (1 + e)`` with ``e = exp(-|x|)`` for ``x < 0`` so that it
    never overflows."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    one = _scalar(x, 1)
    return np.where(x >= 0, one, e) / (one + e)


def tanh(x) -> np.ndarray:
    """``tanh(x)``."""
    return np.tanh(np.asarray(x))


def clip(x, *, min=None, max=None) -> np.ndarray:  # noqa: A002 - ONNX names
    """``min(max(x, min), max)``; an absent bound does not clip. If ``min > max`` the result is
    ``max`` everywhere, as ONNX specifies."""
    x = np.asarray(x)
    if min is not None:
        x = np.maximum(x, np.asarray(min, dtype=x.dtype))
    if max is not None:
        x = np.minimum(x, np.asarray(max, dtype=x.dtype))
    return x


def elu(x, *, alpha=1.0) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``alpha * (exp(x) - 1)``."""
    x = np.asarray(x)
    return np.where(x < 0, _scalar(x, alpha) * np.expm1(np.minimum(x, _scalar(x, 0))), x)


def selu(x, *, alpha=SELU_ALPHA, gamma=SELU_GAMMA) -> np.ndarray:
    """``gamma * x`` if ``x > 0`` else ``gamma * alpha * (exp(x) - 1)``."""
    x = np.asarray(x)
    neg = _scalar(x, alpha) * np.expm1(np.minimum(x, _scalar(x, 0)))
    return _scalar(x, gamma) * np.where(x > 0, x, neg)


def softplus(x) -> np.ndarray:
    """``log(1 + exp(x))``, as ``log1p(exp(-|x|)) + max(x, 0)`` so that it never overflows."""
    x = np.asarray(x)
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, _scalar(x, 0))


def softsign(x) -> np.ndarray:
    """``x / (1 + |x|)``."""
    x = np.asarray(x)
    return x / (_scalar(x, 1) + np.abs(x))


def hard_sigmoid(x, *, alpha=0.2, beta=0.5) -> np.ndarray:
    """``max(0, min(1, alpha * x + beta))``."""
    x = np.asarray(x)
    return np.clip(_scalar(x, alpha) * x + _scalar(x, beta), _scalar(x, 0), _scalar(x, 1))


def hard_swish(x) -> np.ndarray:
    """``x * max(0, min(1, x / 6 + 1/2))``."""
    x = np.asarray(x)
    return x * hard_sigmoid(x, alpha=1 / 6, beta=0.5)


def exp(x) -> np.ndarray:
    """``e ** x``."""
    return np.exp(np.asarray(x))


def log(x) -> np.ndarray:
    """Natural logarithm."""
    return np.log(np.asarray(x))


def sqrt(x) -> np.ndarray:
    """Square root."""
    return np.sqrt(np.asarray(x))


def abs(x) -> np.ndarray:  # noqa: A001 - ONNX name
    """``|x|``."""
    return np.abs(np.asarray(x))


def neg(x) -> np.ndarray:
    """``-x``."""
    return np.negative(np.asarray(x))


def reciprocal(x) -> np.ndarray:
    """``1 / x``."""
    x = np.asarray(x)
    return _scalar(x, 1) / x


# --------------------------------------------------------------------------------------------
# erf and gelu


_ERF_SPLIT = 2.0
_SERIES_TERMS = 32   # converged to double precision for |x| < _ERF_SPLIT
_CF_TERMS = 60       # converged to double precision for |x| >= _ERF_SPLIT
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
# 1 / (1*3*5*...*(2n+1)), the coefficients of sum_n t^n / (2n+1)!!
_SERIES_COEFFS = tuple(1.0 / math.prod(range(1, 2 * n + 2, 2)) for n in range(_SERIES_TERMS + 1))


def _exp_minus_square(a: np.ndarray) -> np.ndarray:
    """``exp(-a*a)`` without the rounding error of ``a*a``: split ``a = z + (a - z)`` with ``z``
    rounded to 24 bits so that ``z*z`` is exact, and ``-a*a = -z*z + (z - a)(z + a)``."""
    z = a.astype(np.float32).astype(np.float64)
    return np.exp(-z * z) * np.exp((z - a) * (z + a))


def _erf_erfc64(x) -> tuple[np.ndarray, np.ndarray]:
    """``(erf(x), erfc(x))`` in float64, to within 1e-15 absolute (erfc to ~1e-15 relative for
    x >= 2, where it matters for the tail of ``gelu``).

    For ``|x| < 2`` the everywhere-positive series
    ``erf(a) = 2/sqrt(pi) * a * exp(-a^2) * sum_n (2a^2)^n / (1*3*...*(2n+1))``;
    beyond, the Laplace continued fraction
    ``erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))``.
    Both are fixed-length loops over the terms (each step vectorised over the whole array).
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    erf_a = np.empty_like(a)
    erfc_a = np.empty_like(a)

    small = a < _ERF_SPLIT
    s = a[small]
    t = 2.0 * s * s
    total = np.full_like(s, _SERIES_COEFFS[-1])  # Horner, in place
    for coeff in _SERIES_COEFFS[-2::-1]:
        total *= t
        total += coeff
    e = _TWO_OVER_SQRT_PI * s * _exp_minus_square(s) * total
    erf_a[small] = e
    erfc_a[small] = 1.0 - e

    large = ~small  # includes NaN, which propagates
    b = np.minimum(a[large], 40.0)  # erfc(40) underflows to 0; keeps inf out of the fraction
    f = b.copy()
    for k in range(_CF_TERMS, 0, -1):  # innermost first, in place: f = b + (k/2) / f
        np.divide(0.5 * k, f, out=f)
        f += b
    c = _exp_minus_square(b) / (math.sqrt(math.pi) * f)
    erfc_a[large] = c
    erf_a[large] = 1.0 - c

    erf_x = np.copysign(erf_a, x)
    erfc_x = np.where(x < 0, 2.0 - erfc_a, erfc_a)
    return erf_x, erfc_x


def erf(x) -> np.ndarray:
    """Error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``, evaluated in float64 and
    rounded to ``x``'s dtype."""
    x = np.asarray(x)
    return _erf_erfc64(x)[0].astype(x.dtype, copy=False)


def gelu(x, *, approximate="none") -> np.ndarray:
    """ONNX Gelu: ``x/2 * (1 + erf(x/sqrt 2))`` (as ``x/2 * erfc(-x/sqrt 2)``, in float64), or
    with ``approximate='tanh'`` ``x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`` in ``x``'s
    dtype."""
    x = np.asarray(x)
    if approximate == "tanh":
        inner = _scalar(x, math.sqrt(2.0 / math.pi)) * (x + _scalar(x, 0.044715) * x * x * x)
        return _scalar(x, 0.5) * x * (_scalar(x, 1) + np.tanh(inner))
    if approximate != "none":
        raise ValueError(f"Gelu: unknown approximate={approximate!r}")
    x64 = x.astype(np.float64)
    return (0.5 * x64 * _erf_erfc64(-x64 / math.sqrt(2.0))[1]).astype(x.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# padding


_PAD_MODES = ("constant", "reflect", "edge", "wrap")  # numpy.pad's names too


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


# --------------------------------------------------------------------------------------------
# the op table


ELECTRONIC = {
    "Relu": relu,
    "LeakyRelu": leaky_relu,
    "PRelu": prelu,
    "Sigmoid": sigmoid,
    "Tanh": tanh,
    "Clip": clip,
    "Elu": elu,
    "Selu": selu,
    "Softplus": softplus,
    "Softsign": softsign,
    "HardSigmoid": hard_sigmoid,
    "HardSwish": hard_swish,
    "Gelu": gelu,
    "Exp": exp,
    "Log": log,
    "Sqrt": sqrt,
    "Abs": abs,
    "Neg": neg,
    "Reciprocal": reciprocal,
    "Erf": erf,
    "MaxPool": max_pool,
    "AveragePool": average_pool,
    "GlobalAveragePool": global_average_pool,
    "GlobalMaxPool": global_max_pool,
    "LRN": lrn,
    "Softmax": softmax,
    "LogSoftmax": log_softmax,
    "ArgMax": argmax,
    "ArgMin": argmin,
    "Pad": pad,
    "BatchNormalization": batch_norm,
}


# --------------------------------------------------------------------------------------------
# data movement and elementwise arithmetic, in the canonical form a device program carries:
# every setting is an attribute, axis 0 is the batch and ``Reshape`` holds the per-sample shape.


def reshape(x, *, shape):
    """Keep the batch (axis 0), give each sample ``shape``."""
    return x.reshape((x.shape[0],) + tuple(shape))


def transpose(x, *, perm):
    return np.transpose(x, perm)


def concat(*xs, axis):
    return np.concatenate(xs, axis=axis)


def split(x, *, axis, split):
    return tuple(np.split(x, np.cumsum(split)[:-1], axis=axis))


def slice_(x, *, starts, ends, axes, steps):
    """ONNX Slice: out-of-range starts/ends clamp to the axis, as Python slices do."""
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = x.shape[axis]
        if step < 0 and end < -dim:
            end = None  # through index 0 inclusive
        index[axis] = slice(start, end, step)
    return x[tuple(index)]


def gather(x, indices, *, axis=0):
    return np.take(x, indices.astype(np.int64), axis=axis)


def cast(x, *, to):
    return x.astype(to)


def identity(x):
    return x


def scaler(x, *, offset, scale):
    """ai.onnx.ml Scaler: y = (x - offset) * scale, float32."""
    return ((x - np.asarray(offset, np.float32)) * np.asarray(scale, np.float32)).astype(np.float32)


def array_feature_extractor(x, indices):
    """ai.onnx.ml ArrayFeatureExtractor: x[..., indices]."""
    return np.take(x, indices.astype(np.int64), axis=-1)


def _variadic(fn, mean=False):
    def apply(*xs):
        y = _fold(fn, xs)
        return y / len(xs) if mean else y
    return apply


def divide(a, b):
    """ONNX Div: integer division truncates (shape arithmetic), float division is exact IEEE."""
    if np.issubdtype(a.dtype, np.integer):
        return (np.trunc(a / b)).astype(a.dtype)
    return a / b


def power(a, b):
    return np.power(a, b).astype(a.dtype, copy=False)


def _reduce_op(name):
    return lambda x, *, axes, keepdims=1, noop_with_empty_axes=0: reduce(
        x, op=name, axes=tuple(axes), keepdims=bool(keepdims))


ELECTRONIC.update({
    "Reshape": reshape, "Transpose": transpose, "Concat": concat, "Split": split, "Slice": slice_,
    "Gather": gather, "Cast": cast, "Identity": identity, "Scaler": scaler,
    "ArrayFeatureExtractor": array_feature_extractor,
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": divide, "Pow": power,
    "Sum": _variadic(np.add), "Max": _variadic(np.maximum), "Min": _variadic(np.minimum),
    "Mean": _variadic(np.add, mean=True),
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or,
    "Not": np.logical_not, "Where": np.where, "Floor": np.floor, "Ceil": np.ceil,
    "Round": np.round, "Sign": np.sign,
    **{f"Reduce{k}": _reduce_op(v) for k, v in (
        ("Mean", "mean"), ("Sum", "sum"), ("Max", "max"), ("Min", "min"), ("Prod", "prod"),
        ("L1", "l1"), ("L2", "l2"), ("SumSquare", "sum_square"), ("LogSumExp", "log_sum_exp"))},
})


# --------------------------------------------------------------------------------------------
# photonic activations (optical devices; the simulator places them on the optical side)


def photonic_sigmoid(x, *, A1, A2, x0, d):
    """SOA-based all-optical sigmoid (Mourgias-Alexandris et al., Opt. Express 27:9620, 2019):
    f(u) = A2 + (A1 - A2) / (1 + exp((u - x0) / d)), with (u - x0) capped at 2."""
    t = np.minimum(x.astype(np.float64) - x0, 2.0) / d
    return (A2 + (A1 - A2) * np.exp(-np.logaddexp(0.0, t))).astype(x.dtype)


PHOTONIC = {"PhotonicSigmoid": photonic_sigmoid}
