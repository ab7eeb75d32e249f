"""Neural-network operators: the matrix products that become banks (Gemm, MatMul, Conv, lowered to
the IR's ``Linear`` and then to ``Bank``), normalisation, softmax, and the photonic sigmoid.

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

import string

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import BATCH_HINT, fixed_bounds, monotone, op, register, saves, unbroadcast, unsupported
from .conv import conv, conv_vjp, explicit_pads, im2col, resolve_auto_pad
from .elementwise import scalar
from .layout import batch_axis
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
    meshes = [mesh_matrix(ph[..., i, :, :], sc[..., i, :]) for i in range(2)]
    t = np.matmul(meshes[1] * attenuation(decode(atten, bits))[..., None, :], meshes[0]).real
    t *= (nominal_loss(attrs["ports"], attrs.get("loss_db", 0.0)) ** 2 * gain)[..., None, None]
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


def _layer_norm_canonical(node, graph, source):
    """The normalised axes are ``axis`` and every axis after it: axis 0, the batch, refused."""
    rank = len(graph.types[node.inputs[0]].shape)
    axis = int(node.attrs.get("axis", -1)) % rank
    if axis == 0:
        return unsupported(node, "normalises across the batch axis (axis 0)", BATCH_HINT)
    return node.replace(attrs={**node.attrs, "axis": axis})


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


@op("LayerNormalization", "electronic", canonical=_layer_norm_canonical, vjp=_layer_norm_vjp,
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


@op("PhotonicSigmoid", "optical", activation=True, bounds=lambda a: (a["A1"], a["A2"]), onnx_op=False)
def photonic_sigmoid(x, *, A1, A2, x0, d):
    """SOA-based all-optical sigmoid (Mourgias-Alexandris et al., Opt. Express 27:9620, 2019):
    f(u) = A2 + (A1 - A2) / (1 + exp((u - x0) / d)), with (u - x0) capped at 2."""
    t = np.minimum(x.astype(np.float64) - x0, 2.0) / d
    return (A2 + (A1 - A2) * np.exp(-np.logaddexp(0.0, t))).astype(x.dtype)


# ------------------------------------------------------------------ products of two activations, einsum

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


# ------------------------------------------------------------------ transposed convolution

def conv_transpose_geometry(attrs: dict, spatial, kernel) -> dict:
    """The explicit geometry of an ONNX ConvTranspose on an input of ``spatial`` size with a
    ``kernel`` (the weight's spatial shape): strides, dilations, group, begin/end ``pads`` and
    ``output_padding`` (``output_shape`` and ``auto_pad`` resolved as onnxruntime does)."""
    nd = len(kernel)
    strides = [int(v) for v in attrs.get("strides") or [1] * nd]
    dilations = [int(v) for v in attrs.get("dilations") or [1] * nd]
    extra = [int(v) for v in attrs.get("output_padding") or [0] * nd]
    pads = [int(v) for v in attrs.get("pads") or [0] * (2 * nd)]
    mode = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    shape = attrs.get("output_shape")
    if shape is not None and len(shape) == nd + 2:
        shape = shape[2:]
    if shape is None and mode in ("SAME_UPPER", "SAME_LOWER"):
        shape = [s * st for s, st in zip(spatial, strides)]
    if shape is not None:
        pads = [0] * (2 * nd)
        for i in range(nd):
            total = strides[i] * (spatial[i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1 - int(shape[i])
            small, large = total // 2, total - total // 2
            pads[i], pads[nd + i] = (small, large) if mode == "SAME_UPPER" else (large, small)
    return {"kernel_shape": [int(k) for k in kernel], "strides": strides, "dilations": dilations,
            "group": int(attrs.get("group", 1)), "pads": pads, "output_padding": extra}


def conv_transpose_as_conv(geometry: dict, w: np.ndarray):
    """A ConvTranspose as a convolution: the ``InsertZeros`` settings (the strides and the pads
    d (k - 1) - p_begin, d (k - 1) - p_end + output_padding, negative ones cropping) and the
    kernel flipped along its spatial axes with each group's input and output channels swapped,
    (M, C/group, *k) from the ONNX (C, M/group, *k); the convolution then has stride 1, no pads,
    the dilations and the groups."""
    nd = len(geometry["kernel_shape"])
    group = geometry["group"]
    reach = [d * (k - 1) for d, k in zip(geometry["dilations"], geometry["kernel_shape"])]
    pads = ([r - p for r, p in zip(reach, geometry["pads"][:nd])]
            + [r - p + o for r, p, o in zip(reach, geometry["pads"][nd:], geometry["output_padding"])])
    c, mg = w.shape[:2]
    flipped = np.flip(w, axis=tuple(range(2, 2 + nd)))
    kernel = flipped.reshape((group, c // group, mg) + w.shape[2:]).swapaxes(1, 2).reshape((group * mg, c // group) + w.shape[2:])
    return {"strides": geometry["strides"], "pads": pads}, np.ascontiguousarray(kernel)


def _conv_transpose_onnx(node, x, w, b=None):
    geometry = conv_transpose_geometry(node.attrs, x.shape[2:], w.shape[2:])
    spread, kernel = conv_transpose_as_conv(geometry, np.asarray(w))
    nd = len(geometry["kernel_shape"])
    return conv(insert_zeros(x, **spread), kernel.astype(x.dtype, copy=False), b, strides=[1] * nd, pads=[0] * (2 * nd),
                dilations=geometry["dilations"], group=geometry["group"])


def _conv_transpose_canonical(node, graph, source):
    """Every setting explicit (``conv_transpose_geometry``); the weight must be constant (else
    lower_linear says so)."""
    w = node.inputs[1]
    if w not in graph.consts:
        return node
    spatial = graph.types[node.inputs[0]].shape[2:]
    return node.replace(attrs=conv_transpose_geometry(node.attrs, spatial, graph.consts[w].shape[2:]))


@op("InsertZeros", "layout", interval=monotone, onnx_op=False,
    note="IR: a ConvTranspose's input spread out by its strides (zeros between) and padded or cropped")
def insert_zeros(x, *, strides, pads):
    """``x (N, C, *S)`` with ``strides[i] - 1`` zeros between neighbours along each spatial axis,
    then ``pads`` (ONNX order, begin then end) zeros added at each end, a negative pad cropping."""
    x = np.asarray(x)
    nd = x.ndim - 2
    spread = [(s - 1) * st + 1 for s, st in zip(x.shape[2:], strides)]
    grow = [(max(pads[i], 0), max(pads[nd + i], 0)) for i in range(nd)]
    out = np.zeros(x.shape[:2] + tuple(s + b + e for s, (b, e) in zip(spread, grow)), x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(b, b + s, st) for (b, _), s, st in zip(grow, spread, strides))] = x
    crop = tuple(slice(max(-pads[i], 0), out.shape[2 + i] - max(-pads[nd + i], 0)) for i in range(nd))
    return out[(slice(None), slice(None)) + crop]


register("ConvTranspose", "optical", onnx=_conv_transpose_onnx, canonical=_conv_transpose_canonical,
         note="1-D/2-D/3-D: a convolution (a bank) on the input spread out by InsertZeros; strides, pads, "
              "output_padding, output_shape, auto_pad, dilations, groups")


def transmission(x, od):
    """The saturable absorber's probe transmission T(z) = exp(-(OD/2) / (1 + z^2)), in float64."""
    z = np.asarray(x, np.float64)
    return np.exp(-(od / 2.0) / (1.0 + z * z))


@saves("inputs")
def _absorber_vjp(node, inputs, outputs, cts):
    """The exact slope g'(z) = [1 + OD z^2 / (1 + z^2)^2] T(z)."""
    z, od = inputs[0].astype(np.float64), node.attrs.get("OD", 10.0)
    slope = (1.0 + od * z * z / (1.0 + z * z) ** 2) * transmission(z, od)
    return ((cts[0] * slope).astype(cts[0].dtype),)


@op("SaturableAbsorber", "optical", activation=True, interval=monotone, vjp=_absorber_vjp, onnx_op=False)
def saturable_absorber(x, *, OD=10.0):  # noqa: N803 - the profile's name
    """The saturable absorber in field form (Spall et al., arXiv 2308.05226), g(z) = z T(z) with
    T(z) = exp(-(OD/2) / (1 + z^2)) (saturation intensity 1), in float64, rounded to x's dtype.
    Optical on a saturable_absorber profile (``map_activations`` finds it written with standard
    operators, as ``photoncc finetune --activation saturable_absorber`` writes it)."""
    return (np.asarray(x, np.float64) * transmission(x, OD)).astype(np.asarray(x).dtype)


register("Gemm", "optical", onnx=_gemm_onnx, vjp=_gemm_vjp, note="all attributes (alpha, beta, transB); transA on data is refused")
register("Conv", "optical", onnx=_conv_onnx, canonical=resolve_auto_pad, vjp=_conv_vjp,
         note="1-D/2-D (and 3-D) conv: stride, pads, auto_pad, dilation, groups, depthwise")
register("Linear", "optical", onnx=_linear_onnx, onnx_op=False, vjp=_linear_vjp, note="IR: y = W x + b, constant W")
register("Bank", "optical", onnx=_bank_onnx, onnx_op=False, note="IR: a Linear in its device form")
register("Mesh", "optical", onnx=_mesh_onnx, onnx_op=False, note="IR: a Linear on coherent MZI meshes")
