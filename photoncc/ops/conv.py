"""Convolution geometry and the convolution kernel, shared by the Conv op, the banks' unfold and
the pooling windows.

Conventions: layout ``N, C, *spatial`` with 1, 2 or 3 spatial axes; ``pads`` in ONNX order
``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`` of explicit ints (``explicit_pads`` resolves
``auto_pad``); ``strides``, ``dilations`` and ``kernel_shape`` tuples of the spatial rank.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..cpu import row_blocks, threaded


def spatial_args(x: np.ndarray, kernel_shape, strides, pads, dilations):
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
    kernel_shape, strides, pads, dilations = spatial_args(x, kernel_shape, strides, pads,
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


def explicit_pads(attrs: dict, spatial: tuple) -> dict:
    """Resolve ``auto_pad`` (SAME_UPPER / SAME_LOWER) into explicit ``pads`` for this input size."""
    attrs = dict(attrs)
    mode = attrs.pop("auto_pad", None)
    if mode is None:
        return attrs
    kernel, strides = attrs["kernel_shape"], attrs["strides"]
    dilations = attrs.get("dilations", [1] * len(kernel))
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin.append(large if mode == "SAME_LOWER" else small)
        end.append(small if mode == "SAME_LOWER" else large)
    attrs["pads"] = begin + end
    return attrs


def resolve_auto_pad(node, graph, source):
    """``Op.canonical`` of Conv and the pooling ops: ``auto_pad`` resolved into explicit pads for
    the input's (static) spatial size."""
    if "auto_pad" not in node.attrs:
        return node
    return node.replace(attrs=explicit_pads(node.attrs, graph.types[node.inputs[0]].shape[2:]))


def conv_vjp(x, w, g, *, strides, pads, dilations, group=1, need_x=True):
    """Cotangents (dx or None, dw, db) of ``y = conv(x, w) + b`` for the output cotangent ``g``
    (N, M, *out), the adjoint of the im2col product: with cols = im2col(x) (N*P, C*K),

        dw = g^T cols (per group),   db = sum over samples and positions of g,
        dx = col2im(g w): each kernel tap's column block added back onto the padded input at the
             positions it was read from (one vectorised step per tap), the padding cropped off.
    """
    x, w, g = np.asarray(x), np.asarray(w, dtype=g.dtype), np.asarray(g)
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    kernel = w.shape[2:]
    nd, taps = len(kernel), int(np.prod(kernel))
    cols = unfold(x, kernel, strides, pads, dilations)                     # (N, *out, C, *k), a view
    out = cols.shape[1:1 + nd]
    positions = n * int(np.prod(out))
    cols = cols.reshape(positions, group, cg, taps).astype(g.dtype, copy=False)
    gm = np.moveaxis(g, 1, -1).reshape(positions, group, m // group)
    wk = w.reshape(group, m // group, cg, taps)
    dw = np.einsum("pgm,pgct->gmct", gm, cols, optimize=True).reshape(w.shape)
    db = g.sum(axis=(0,) + tuple(range(2, g.ndim)))
    if not need_x:
        return None, dw, db
    dcols = np.einsum("pgm,gmct->pgct", gm, wk, optimize=True).reshape((n,) + out + (c,) + tuple(kernel))
    pads = [int(p) for p in pads]
    dxp = np.zeros((n, c) + tuple(s + pads[i] + pads[nd + i] for i, s in enumerate(x.shape[2:])), g.dtype)
    for tap in np.ndindex(*kernel):
        where = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                      for t, d, o, s in zip(tap, dilations, out, strides))
        dxp[(slice(None), slice(None)) + where] += np.moveaxis(dcols[(Ellipsis,) + tap], -1, 1)
    inner = tuple(slice(pads[i], pads[i] + s) for i, s in enumerate(x.shape[2:]))
    return dxp[(slice(None), slice(None)) + inner], dw, db
