"""Neural-network operators: the matrix products that become banks (Gemm, Conv, lowered to the IR's
``Linear`` and then to ``Bank``), normalisation (LRN, BatchNormalization, LayerNormalization) and
softmax. MatMul and Einsum are in ``products``, ConvTranspose in ``conv_transpose``, the photonic
activations in ``photonic``.

``Linear(x, W, b)[conv?]``, ``Bank(x, T, gain, lo, alpha[, adc, offset])[shift, ...]`` and
``Mesh(x, phases, screens, atten, gain, bias, lo, alpha[, adc])[ports, ...]`` (a Linear on coherent
MZI meshes, ``devices.mzi``) are the IR's own ops (no ONNX file may use them). The interpreter evaluates a ``Bank`` in float arithmetic
straight from its definition: u = x - lo, y = g * (T @ v) - s (+ offset), v the bank's optical
input (``program.bank_channels``: [u ; alpha - u ; c] on an incoherent bank, [u ; c] on a
balanced one); weight codes of a quantised program read as T = code * step. The device model, with
its crosstalk, DAC and ADC, is the simulator's: with crosstalk a quantised bank's value here is
not the device's.

The reverse-mode rules (``vjp``) of the matrix products, normalisations and softmaxes sit beside
their forms; the ones of the matrix products are the textbook adjoints (dx = g W, dW = g^T x,
the convolution's through ``conv.conv_vjp``).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import fixed_bounds, op, register, saves, unbroadcast
from .conv import conv, conv_vjp, explicit_pads, im2col, resolve_auto_pad
from .elementwise import scalar
from .layout import batch_axis
from .normalization import trailing_axes_canonical
from .reduce import norm_axis
from ..devices.mzi_mesh import attenuation, decode, mesh_matrix, nominal_loss
from ..program import bank_channels, weight_step


@saves("inputs")
def _gemm_vjp(node, inputs, outputs, cts):
    """Y = alpha A' B' + beta C: dA' = alpha g B'^T, dB' = alpha A'^T g, dC = beta g (summed back)."""
    a, b = inputs[:2]
    c = inputs[2] if len(inputs) > 2 else None
    g, at = cts[0], node.attrs
    ta, tb = at.get("transA", 0), at.get("transB", 0)
    alpha = at.get("alpha", 1.0)
    a2, b2 = (a.T if ta else a), (b.T if tb else b)
    da, db = alpha * (g @ b2.T), alpha * (a2.T @ g)
    grads = [(da.T if ta else da).astype(a.dtype), (db.T if tb else db).astype(b.dtype)]
    if len(inputs) > 2:
        grads.append(None if c is None else unbroadcast(at.get("beta", 1.0) * g, c.shape).astype(c.dtype))
    return tuple(grads)


@saves("inputs")
def _conv_vjp(node, inputs, outputs, cts):
    """ONNX Conv (auto_pad resolved for the input's size) through ``conv.conv_vjp``."""
    x, w = inputs[:2]
    a = explicit_pads(node.attrs, x.shape[2:])
    dx, dw, db = conv_vjp(x, w, cts[0], strides=a["strides"], pads=a["pads"], dilations=a["dilations"],
                          group=a.get("group", 1))
    return (dx, dw) + ((None if inputs[2] is None else db.astype(inputs[2].dtype),) if len(inputs) > 2 else ())


@saves("inputs")
def _linear_vjp(node, inputs, outputs, cts):
    """y = W x + b along x's last axis (dense): dx = g W, dW = g^T x, db = sum g; conv: ``conv_vjp``."""
    x, w, b = inputs
    g = cts[0]
    geometry = node.attrs.get("conv")
    if geometry is not None:
        dx, dw, db = conv_vjp(x, w, g, strides=geometry["strides"], pads=geometry["pads"],
                              dilations=geometry["dilations"], group=geometry["group"])
        return dx, dw, None if b is None else db.astype(b.dtype)
    flat_g, flat_x = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    return ((g @ w).astype(x.dtype), (flat_g.T @ flat_x).astype(w.dtype),
            None if b is None else flat_g.sum(axis=0).astype(b.dtype))


def _gemm_onnx(node, a, b, c=None):
    # ONNX's Gemm: two matrices and C of one type (NumPy would broadcast a 3-D B and cast the result)
    if np.ndim(a) != 2 or np.ndim(b) != 2:
        raise ValueError(f"Gemm multiplies two matrices; its A and B have rank {np.ndim(a)} and {np.ndim(b)}")
    if b.dtype != a.dtype or (c is not None and c.dtype != a.dtype):
        types = ", ".join(str(x.dtype) for x in (a, b, c) if x is not None)
        raise ValueError(f"Gemm's A, B and C must be of one type, not {types}")
    a = a.T if node.attrs.get("transA", 0) else a
    b = b.T if node.attrs.get("transB", 0) else b
    y = node.attrs.get("alpha", 1.0) * (a @ b)
    if c is not None:
        y = y + node.attrs.get("beta", 1.0) * c
    return y.astype(a.dtype, copy=False)


def _conv_onnx(node, x, w, b=None):
    a = explicit_pads(node.attrs, x.shape[2:])
    return conv(x, w, b, strides=a["strides"], pads=a["pads"], dilations=a["dilations"], group=a["group"])


def _linear_onnx(node, x, w, b):
    """y = W x + b; W is (M, K) for dense, the ONNX (M, C/group, *k) kernel for conv."""
    geometry = node.attrs.get("conv")
    if geometry is None:
        y = x @ w.T
        return y + b if b is not None else y
    return conv(x, w, b, **geometry)


def _bank_onnx(node, x, tiles, gain, lo, alpha, adc=None, offset=None):
    """Float reference of a bank, from its definition (``devices``): y = gain * (T @ v) - shift
    (+ offset) with v = [u ; alpha - u ; c] (incoherent) or [u ; c] (balanced), u = x - lo. Weight
    codes (quantised programs) are read as T = code * step; the crosstalk the codes compensate, the
    DAC and the ADC are not modelled here (the simulator models the device; with crosstalk, a
    quantised bank's value here is not the device's)."""
    a = node.attrs
    groups, m = gain.shape
    channels = bank_channels(a, lo.shape[1])
    k = channels.k
    if a.get("weight_bits"):
        tiles = tiles * weight_step(a["weight_bits"], a.get("signed", False))
    t = tiles.transpose(0, 1, 3, 2, 4).reshape(groups, tiles.shape[1] * tiles.shape[3], -1)
    conv = a.get("conv")
    if conv:
        x = im2col(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
    lead = x.shape[:-1]
    u = x.reshape(lead + (groups, k)) - lo
    parts = [u, alpha - u] if channels.complement else [u]
    v = np.concatenate(parts + [np.full(u.shape[:-1] + (1,), a.get("carrier", 1.0), u.dtype)], axis=-1)
    t = t[:, :m, :v.shape[-1]].astype(x.dtype)
    vg = v.reshape(-1, groups, v.shape[-1]).transpose(1, 0, 2)                  # (G, P, J)
    y = np.matmul(vg, t.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(lead + (groups, m))
    y = y * gain - np.asarray(a["shift"], x.dtype)
    if offset is not None:
        y = y + offset.astype(x.dtype)
    y = y.reshape(lead + (groups * m,)).astype(x.dtype)
    return np.moveaxis(y, -1, 1) if conv else y


def mesh_weights(attrs: dict, phases, screens, atten, gain, m: int, k: int) -> np.ndarray:
    """The (G, M, K) matrix an ideal mesh layer applies to its fields: per tile gain x the in-phase
    part of U_mesh diag(atten) V_mesh (with the nominal loss), the tiles put back together."""
    bits = attrs["phase_bits"]
    ph, sc = decode(phases, bits), decode(screens, bits)
    meshes = [mesh_matrix(ph[..., i, :, :], sc[..., i, :], kind=attrs["layout"]) for i in range(2)]
    t = np.matmul(meshes[1] * attenuation(decode(atten, bits))[..., None, :], meshes[0]).real
    t *= (nominal_loss(attrs["ports"], attrs.get("loss_db", 0.0), attrs["layout"]) ** 2 * gain)[..., None, None]
    groups, r, q, n, _ = t.shape
    return t.transpose(0, 1, 3, 2, 4).reshape(groups, r * n, q * n)[:, :m, :k]


def _mesh_onnx(node, x, phases, screens, atten, gain, bias, lo, alpha, adc=None):
    """Float reference of an MZI mesh layer (``devices.mzi``), ideal meshes rebuilt from the phases:
    y = W_eff e + bias with e = (x - lo) / (alpha / 2) - 1 the modulators' fields (0 where alpha = 0)
    and W_eff the tiles' gain x Re(U_mesh diag(atten) V_mesh). No DAC, ADC or chip errors (the
    simulator models the device)."""
    a = node.attrs
    groups, m = bias.shape
    k = lo.shape[1]
    w = mesh_weights(a, phases, screens, atten, gain, m, k)
    conv = a.get("conv")
    if conv:
        x = im2col(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
    lead = x.shape[:-1]
    xs = x.reshape(lead + (groups, k)).astype(np.float64)
    half = alpha.astype(np.float64) / 2.0
    e = np.where(half > 0, (np.clip(xs, lo, lo + alpha) - lo) / np.where(half > 0, half, 1.0) - 1.0, 0.0)
    y = np.einsum("...gk,gmk->...gm", e, w) + bias
    y = y.reshape(lead + (groups * m,)).astype(x.dtype)
    return np.moveaxis(y, -1, 1) if conv else y


@saves("inputs")
def _lrn_vjp(node, inputs, outputs, cts):
    """y_i = x_i s_i^-beta, s_i = bias + alpha/size sum_{j in win(i)} x_j^2: dx_i = g_i s_i^-beta -
    2 alpha beta / size x_i sum_{j: i in win(j)} g_j x_j s_j^(-beta-1) (the window read backwards)."""
    x, g, a = inputs[0], cts[0], node.attrs
    size, alpha, beta, bias = int(a["size"]), a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    rest = [(0, 0)] * (x.ndim - 2)
    s = bias + alpha / size * sliding_window_view(np.pad(x * x, [(0, 0), (lo, hi)] + rest), size, axis=1).sum(-1)
    t = g * x * s ** (-beta - 1)
    back = sliding_window_view(np.pad(t, [(0, 0), (hi, lo)] + rest), size, axis=1).sum(-1)
    return ((g * s ** -beta - 2 * alpha * beta / size * x * back).astype(g.dtype),)


@op("LRN", "electronic", vjp=_lrn_vjp)
def lrn(x, *, size, alpha=1e-4, beta=0.75, bias=1.0) -> np.ndarray:
    """ONNX LRN across channels: ``y = x / (bias + alpha / size * sum_{i in win(c)} x_i^2) ** beta``
    with ``win(c) = [c - floor((size-1)/2), c + ceil((size-1)/2)]`` clipped to the channels."""
    x = np.asarray(x)
    size = int(size)
    lo = (size - 1) // 2
    hi = size - 1 - lo
    sq = np.pad(x * x, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    square_sum = sliding_window_view(sq, size, axis=1).sum(axis=-1)
    scale = scalar(x, bias) + scalar(x, alpha / size) * square_sum
    return x / scale ** scalar(x, beta)


@saves("inputs")
def _batch_norm_vjp(node, inputs, outputs, cts):
    """y = (x - mean) r scale + bias, r = (var + eps)^-1/2, per channel (axis 1): dx = g r scale,
    dscale = sum g (x - mean) r, dbias = sum g, dmean = -sum g r scale, dvar = -1/2 sum g (x - mean) scale r^3."""
    x, scale, bias, mean, var = inputs
    g = cts[0]
    shape = (-1,) + (1,) * (x.ndim - 2)
    axes = (0,) + tuple(range(2, x.ndim))
    r = 1.0 / np.sqrt(var.astype(np.float64) + node.attrs.get("epsilon", 1e-5))
    centred = x - mean.reshape(shape)
    gs = (g * centred).sum(axis=axes)
    gsum = g.sum(axis=axes)
    dx = g * (r * scale).reshape(shape).astype(g.dtype)
    return (dx, (gs * r).astype(scale.dtype), gsum.astype(bias.dtype), (-gsum * r * scale).astype(mean.dtype),
            (-0.5 * gs * scale * r ** 3).astype(var.dtype))


@op("BatchNormalization", "folded", note="into the preceding bank's rows; electronic after Concat etc.",
    vjp=_batch_norm_vjp)
def batch_norm(x, scale, bias, mean, var, *, epsilon=1e-5) -> np.ndarray:
    """Inference BatchNormalization: ``y = (x - mean) / sqrt(var + epsilon) * scale + bias``,
    the per-channel parameters broadcast along axis 1."""
    x = np.asarray(x)
    shape = (-1,) + (1,) * (x.ndim - 2)
    scale, bias, mean, var = (np.asarray(a, dtype=x.dtype).reshape(shape)
                              for a in (scale, bias, mean, var))
    return (x - mean) / np.sqrt(var + scalar(x, epsilon)) * scale + bias


def _coerce_2d(x: np.ndarray, axis: int) -> np.ndarray:
    """Opset < 13 softmax view: ``(prod(shape[:axis]), prod(shape[axis:]))``."""
    axis = norm_axis(axis, x.ndim) if x.ndim else 0
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(rows, -1)


@saves("outputs")
def _softmax_vjp(node, inputs, outputs, cts):
    """dx = y (g - sum(g y)) along the axis (of the 2-D coercion when ``legacy``)."""
    y, g, a = outputs[0], cts[0], node.attrs
    if a.get("legacy"):
        y2, g2 = _coerce_2d(y, a.get("axis", -1)), _coerce_2d(g, a.get("axis", -1))
        return ((y2 * (g2 - (g2 * y2).sum(axis=1, keepdims=True))).reshape(y.shape),)
    axis = a.get("axis", -1)
    return (y * (g - (g * y).sum(axis=axis, keepdims=True)),)


@saves("outputs")
def _log_softmax_vjp(node, inputs, outputs, cts):
    """dx = g - exp(y) sum(g) along the axis (of the 2-D coercion when ``legacy``)."""
    y, g, a = outputs[0], cts[0], node.attrs
    if a.get("legacy"):
        y2, g2 = _coerce_2d(y, a.get("axis", -1)), _coerce_2d(g, a.get("axis", -1))
        return ((g2 - np.exp(y2) * g2.sum(axis=1, keepdims=True)).reshape(y.shape),)
    return (g - np.exp(y) * g.sum(axis=a.get("axis", -1), keepdims=True),)


@op("Softmax", "electronic", canonical=batch_axis(None), bounds=fixed_bounds(0.0, 1.0), vjp=_softmax_vjp,
    note="opset < 13 coerce-to-2-D semantics kept")
def softmax(x, *, axis=-1, legacy=False) -> np.ndarray:
    """``y = exp(x - max) / sum(exp(x - max))`` along ``axis``. ``legacy`` (opset < 13): over the
    2-D coercion ``(prod(shape[:axis]), prod(shape[axis:]))`` instead."""
    x = np.asarray(x)
    if legacy:
        return softmax(_coerce_2d(x, axis), axis=1).reshape(x.shape)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@op("LogSoftmax", "electronic", canonical=batch_axis(None), vjp=_log_softmax_vjp)
def log_softmax(x, *, axis=-1, legacy=False) -> np.ndarray:
    """``y = (x - max) - log(sum(exp(x - max)))`` along ``axis``; ``legacy`` as in ``softmax``."""
    x = np.asarray(x)
    if legacy:
        return log_softmax(_coerce_2d(x, axis), axis=1).reshape(x.shape)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@saves("inputs")
def _layer_norm_vjp(node, inputs, outputs, cts):
    """Over the normalised axes (d values), xhat = (x - mean) inv: dx = inv (h - mean(h) - xhat
    mean(h xhat)) with h = g scale, plus the cotangents of the mean and inv outputs when used
    (dmean/dx = 1/d, dinv/dx = -inv^3 (x - mean) / d); dscale = sum g xhat, dbias = sum g."""
    x, scale = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = node.attrs.get("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    centred = x64 - mean
    inv = 1.0 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + node.attrs.get("epsilon", 1e-5))
    xhat = centred * inv
    g = cts[0] if cts[0] is not None else np.zeros(x.shape)
    h = g * scale
    dx = inv * (h - h.mean(axis=axes, keepdims=True) - xhat * (h * xhat).mean(axis=axes, keepdims=True))
    size = int(np.prod([x.shape[i] for i in axes]))
    if len(cts) > 1 and cts[1] is not None:
        dx = dx + cts[1] / size
    if len(cts) > 2 and cts[2] is not None:
        dx = dx - cts[2] * inv ** 3 * centred / size
    dtype = (cts[0] if cts[0] is not None else x).dtype
    grads = [dx.astype(dtype), unbroadcast(g * xhat, scale.shape).astype(scale.dtype)]
    if len(inputs) > 2:
        grads.append(None if bias is None else unbroadcast(g, bias.shape).astype(bias.dtype))
    return tuple(grads)


@op("LayerNormalization", "electronic", canonical=trailing_axes_canonical, vjp=_layer_norm_vjp,
    note="over the last axes (not the batch); in float64, rounded to the input's dtype")
def layer_norm(x, scale, bias=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    """ONNX LayerNormalization: over the axes ``axis``.. (``d`` of them), ``mean = E[x]``,
    ``inv = 1 / sqrt(E[(x - mean)^2] + epsilon)``, ``y = (x - mean) * inv * scale + bias``; returns
    (y, mean, inv) with the reduced axes kept (a node uses the outputs it lists). Computed in
    float64 whatever ``stash_type`` asks, and rounded to ``x``'s dtype."""
    x = np.asarray(x)
    axes = tuple(range(axis % x.ndim, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    centred = x64 - mean
    inv = 1.0 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + epsilon)
    y = centred * inv * scale
    if bias is not None:
        y += bias
    return y.astype(x.dtype), mean.astype(x.dtype), inv.astype(x.dtype)


register("Gemm", "optical", onnx=_gemm_onnx, vjp=_gemm_vjp, note="all attributes (alpha, beta, transB); transA on data is refused")
register("Conv", "optical", onnx=_conv_onnx, canonical=resolve_auto_pad, vjp=_conv_vjp,
         note="1-D/2-D (and 3-D) conv: stride, pads, auto_pad, dilation, groups, depthwise")
register("Linear", "optical", onnx=_linear_onnx, onnx_op=False, vjp=_linear_vjp, note="IR: y = W x + b, constant W")
register("Bank", "optical", onnx=_bank_onnx, onnx_op=False, note="IR: a Linear in its device form")
register("Mesh", "optical", onnx=_mesh_onnx, onnx_op=False, note="IR: a Linear on coherent MZI meshes")
