"""Resampling on the electronic side: Resize (and Upsample, the same op as opset 9 wrote it), with
nearest, linear and cubic interpolation.

Interpolation is separable: an N-D resize is a 1-D resize along each resized axis in turn. Along an
axis of input length L resized to L' with scale s, output position i reads the input at

    half_pixel             x = (i + 1/2) / s - 1/2
    half_pixel_symmetric   x = L/2 (1 - L' / (s L)) + (i + 1/2) / s - 1/2
    pytorch_half_pixel     x = (i + 1/2) / s - 1/2, or 0 when L' = 1
    align_corners          x = i (L - 1) / (L' - 1), or 0 when L' = 1
    asymmetric             x = i / s
    tf_half_pixel_for_nn   x = (i + 1/2) / s
    tf_crop_and_resize     x = r0 (L - 1) + i (r1 - r0) (L - 1) / (L' - 1), or (r0 + r1)(L - 1)/2 when
                           L' = 1 (roi [r0, r1]); where x is outside [0, L - 1] the output is
                           ``extrapolation_value``

in float32, in onnxruntime's order of operations (``_source``), so that an x on a rounding tie of
nearest (0.6 as float32 is not 0.6) rounds as there.

* nearest: the input at round(x), by ``nearest_mode``: round_prefer_floor ceil(x - 1/2),
  round_prefer_ceil floor(x + 1/2), floor, ceil, or simple (opset-10 Resize and Upsample as
  onnxruntime runs them: floor where the axis grows, ceil where it shrinks); the index is clamped
  to [0, L - 1]. Exact: a gather.
* linear and cubic: ``sum_j w((j - x) t) in[j]`` over the taps j around x (j = i0 + start, ...,
  i0 + start + n - 1 with i0 = ceil(x) - 1, a tap beyond the edge reading the edge), with t = 1, or
  with ``antialias`` t = min(s, 1) (the kernel widened by 1/s when shrinking, the weights scaled to
  sum to 1). Linear: w(d) = max(0, 1 - |d|); cubic (Keys, a = ``cubic_coeff_a``):
  w(d) = (a + 2)|d|^3 - (a + 3)|d|^2 + 1 for |d| <= 1, a|d|^3 - 5a|d|^2 + 8a|d| - 4a for
  1 < |d| < 2, else 0. With ``exclude_outside`` the taps beyond the edge get weight 0 and the
  weights are scaled to sum to 1. In float64, rounded to the input's dtype (floats only: ONNX
  leaves the rounding of interpolated integers open).

The batch axis is never resized, nor (rank >= 3) the channel axis: ``Op.canonical`` refuses it.
The canonical form holds the per-sample output shape (``sizes``), the scale of each axis of a
sample (``scales``) and, for tf_crop_and_resize, the roi of each axis of a sample (``roi``: pairs).
"""
from __future__ import annotations

import math

import numpy as np

from . import BATCH_HINT, monotone, op, register, settings, unsupported

_SUPPORT = {"linear": 1, "cubic": 2}  # half-width of the interpolation kernel, in taps


def geometry(shape, a: dict) -> tuple[list[int], list[float], list[tuple[float, float]]]:
    """The full-rank output shape, scales and roi of an ONNX Resize of an input of ``shape`` with
    attributes and settings ``a`` (``axes``, ``scales`` or ``sizes``, ``roi``,
    ``keep_aspect_ratio_policy``), in float32 as onnxruntime computes them. Given sizes, the scale
    is size / length (the policy's common scale for not_larger and not_smaller, the sizes rounded
    half up from it); given scales, the size is floor(scale x length) (the roi of
    tf_crop_and_resize does not enter, in onnxruntime as in onnx's reference)."""
    rank = len(shape)
    axes = [int(v) % rank for v in a.get("axes") or range(rank)]
    roi = [(0.0, 1.0)] * rank
    if a.get("roi") and a.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        for i, d in enumerate(axes):
            roi[d] = (a["roi"][i], a["roi"][len(axes) + i])
    scales, sizes = [1.0] * rank, list(shape)
    f32 = np.float32
    if a.get("sizes"):
        for i, d in enumerate(axes):
            sizes[d], scales[d] = int(a["sizes"][i]), float(f32(a["sizes"][i]) / f32(shape[d]))
        policy = a.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            common = (min if policy == "not_larger" else max)(scales[d] for d in axes)
            for d in axes:
                scales[d], sizes[d] = common, math.floor(float(f32(common) * f32(shape[d])) + 0.5)
    else:
        for i, d in enumerate(axes):
            scales[d] = float(f32(a["scales"][i]))
            sizes[d] = int(f32(scales[d]) * f32(shape[d]))
    return sizes, scales, roi


def _source(mode: str, out: int, length: int, scale: float, roi) -> np.ndarray:
    """The input coordinate x of every output position (module docstring), in float32 in
    onnxruntime's order of operations (half_pixel_symmetric ends in float64 there, and so here)."""
    i = np.arange(out, dtype=np.float32)
    s, n, m = np.float32(scale), np.float32(length), np.float32(out)
    half, one = np.float32(0.5), np.float32(1)
    if mode == "half_pixel":
        return (i + half) / s - half
    if mode == "half_pixel_symmetric":  # the offset in float32, the rest in float64
        offset = n / 2 * (one - m / (s * n))
        return (np.float64(offset) + (i + 0.5) / np.float64(s) - 0.5).astype(np.float32)
    if mode == "pytorch_half_pixel":
        return (i + half) / s - half if out > 1 else np.zeros_like(i)
    if mode == "align_corners":
        return i * (n - one) / (m - one) if out > 1 else np.zeros_like(i)
    if mode == "asymmetric":
        return i / s
    if mode == "tf_half_pixel_for_nn":
        return (i + half) / s
    if mode == "tf_crop_and_resize":
        r0, r1 = np.float32(roi[0]), np.float32(roi[1])
        if out == 1:
            return np.full_like(i, 0.5 * np.float64(r0 + r1) * np.float64(n - one))
        return r0 * (n - one) + i * (r1 - r0) * (n - one) / (m - one)
    raise ValueError(f"Resize: unknown coordinate_transformation_mode {mode!r}")


def _nearest(x: np.ndarray, mode: str, scale: float) -> np.ndarray:
    """round(x) by the nearest mode, as int64."""
    if mode == "simple":
        mode = "ceil" if scale < 1 else "floor"
    rounded = {"round_prefer_floor": lambda v: np.ceil(v - 0.5), "round_prefer_ceil": lambda v: np.floor(v + 0.5),
               "floor": np.floor, "ceil": np.ceil}.get(mode)
    if rounded is None:
        raise ValueError(f"Resize: unknown nearest_mode {mode!r}")
    return rounded(x).astype(np.int64)


def _weights(mode: str, d: np.ndarray, a: float) -> np.ndarray:
    """The interpolation kernel at distances ``d`` (module docstring)."""
    d = np.abs(d)
    if mode == "linear":
        return np.maximum(1.0 - d, 0.0)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _resize_axis(x: np.ndarray, axis: int, out: int, scale: float, roi, a: dict) -> np.ndarray:
    """``x`` resized to ``out`` along ``axis`` (a float64 array for linear and cubic)."""
    length = x.shape[axis]
    source = _source(a["coordinate_transformation_mode"], out, length, scale, roi).astype(np.float64)
    shape = [1] * x.ndim
    shape[axis] = out
    if a["mode"] == "nearest":
        y = np.take(x, np.clip(_nearest(source, a["nearest_mode"], scale), 0, length - 1), axis=axis)
    else:
        stretch = min(scale, 1.0) if a["antialias"] else 1.0
        start = math.floor(-_SUPPORT[a["mode"]] / stretch) + 1
        taps = (np.ceil(source) - 1).astype(np.int64)[:, None] + np.arange(start, 2 - start)  # (out, n)
        w = _weights(a["mode"], (taps - source[:, None]) * stretch, a["cubic_coeff_a"])
        if a["exclude_outside"]:
            w = np.where((taps < 0) | (taps >= length), 0.0, w)
        if a["exclude_outside"] or a["antialias"]:
            w = w / w.sum(axis=1, keepdims=True)
        taps = np.clip(taps, 0, length - 1)
        y = np.zeros(x.shape[:axis] + (out,) + x.shape[axis + 1:])
        for k in range(taps.shape[1]):  # a handful of taps (more when antialiasing a large shrink)
            y += np.take(x, taps[:, k], axis=axis) * w[:, k].reshape(shape)
    if a["coordinate_transformation_mode"] == "tf_crop_and_resize":
        outside = ((source < 0) | (source > length - 1)).reshape(shape)
        y = np.where(outside, np.asarray(a["extrapolation_value"], y.dtype), y)
    return y


_DEFAULTS = dict(mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_floor",
                 cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0, antialias=0)


def _canonical_attrs(shape, a: dict) -> dict:
    """The kernel's attributes (module docstring) of an ONNX Resize of an input of ``shape``."""
    sizes, scales, roi = geometry(shape, a)
    found = {key: a.get(key, default) for key, default in _DEFAULTS.items()}
    found.update(sizes=sizes[1:], scales=scales[1:])
    if found["coordinate_transformation_mode"] == "tf_crop_and_resize":
        found["roi"] = [list(r) for r in roi[1:]]
    return found


def _resize_onnx(node, x, *args):
    a = settings(node, args)
    if not args and "sizes" in a and "scales" in a:  # canonical
        return resize(x, **a)
    return resize(x, **_canonical_attrs(x.shape, a))


def _resize_canonical(node, graph, source):
    """Per-sample sizes, scales and roi; a resize of the batch axis, or of the channel axis of a
    tensor with spatial axes, refused."""
    shape = graph.types[node.inputs[0]].shape
    sizes, scales, roi = geometry(shape, node.attrs)
    kept = (0, 1) if len(shape) >= 3 else (0,)
    moved = [axis for axis in kept if sizes[axis] != shape[axis] or scales[axis] != 1 or roi[axis] != (0.0, 1.0)]
    if 0 in moved:
        return unsupported(node, "resizes the batch axis (axis 0)", BATCH_HINT)
    if moved:
        return unsupported(node, "resizes the channel axis (axis 1)", "Resize keeps N and C; resize the spatial axes")
    if node.attrs.get("mode", "nearest") != "nearest" and np.dtype(graph.types[node.inputs[0]].dtype).kind in "iub":
        return unsupported(node, "interpolates integers, whose rounding ONNX leaves open (onnxruntime truncates, "
                                 "onnx's reference rounds)", "cast to float before the Resize")
    return node.replace(op="Resize", attrs=_canonical_attrs(shape, node.attrs))


@op("Resize", "electronic", settings=("roi", "scales", "sizes"), onnx=_resize_onnx, canonical=_resize_canonical,
    interval=lambda node, lows, highs: None if node.attrs.get("mode") == "cubic" else monotone(node, lows, highs),
    note="nearest (4 roundings), linear, cubic; every coordinate mode, antialias; constant scales or "
         "sizes; not the batch or channel axis")
def resize(x, *, sizes, scales, roi=None, **how) -> np.ndarray:
    """Keep the batch (axis 0), resize each sample to ``sizes`` with ``scales`` (one per axis of a
    sample; ``roi``: a (start, end) pair per axis of a sample, tf_crop_and_resize only); ``how``:
    the ONNX attributes of ``_DEFAULTS``."""
    x = np.asarray(x)
    a = {**_DEFAULTS, **how}
    y = x if a["mode"] == "nearest" else x.astype(np.float64)
    for axis, (size, scale) in enumerate(zip(sizes, scales), start=1):
        window = tuple(roi[axis - 1]) if roi else (0.0, 1.0)
        if size != y.shape[axis] or scale != 1 or window != (0.0, 1.0):
            y = _resize_axis(y, axis, int(size), float(scale), window, a)
    return y.astype(x.dtype, copy=False)


register("Upsample", "electronic", settings=("scales",), onnx=_resize_onnx, canonical=_resize_canonical,
         note="written as Resize: asymmetric coordinates, nearest or linear (opset 9)")
