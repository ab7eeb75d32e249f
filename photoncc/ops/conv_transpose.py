"""The transposed convolution: ONNX ConvTranspose (1-D, 2-D, 3-D) as a convolution on its input
spread out.

``conv_transpose_geometry`` makes every setting explicit (``output_shape`` and ``auto_pad``
resolved as onnxruntime does); ``conv_transpose_as_conv`` turns it into the IR's ``InsertZeros``
(zeros between neighbours by the strides, then the pads, a negative one cropping) followed by a
stride-1 convolution with the kernel flipped and each group's input and output channels swapped,
which ``lower_linear`` makes a bank. Neither op has a reverse-mode rule.
"""
from __future__ import annotations

import numpy as np

from . import monotone, op, register
from .conv import conv


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
