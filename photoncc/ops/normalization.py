"""Normalisations over the axes of one sample, on the electronic side: InstanceNormalization,
GroupNormalization, RMSNormalization, LpNormalization and MeanVarianceNormalization
(LayerNormalization is in ``nn``).

Each computes its statistics and the normalised values in float64 (whatever ``stash_type`` asks)
and rounds the result to the input's dtype once (a float32 sum of squares over a large image loses
digits). None may normalise across samples: a statistic over axis 0, the batch, is refused
(``Op.canonical``).
"""
from __future__ import annotations

import numpy as np

from . import BATCH_HINT, op, unsupported
from .layout import batch_axis


def _standardised(x64: np.ndarray, axes: tuple, epsilon: float) -> np.ndarray:
    """``(x - mean) / sqrt(var + epsilon)``, mean and (population) variance over ``axes``."""
    centred = x64 - x64.mean(axis=axes, keepdims=True)
    return centred / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + epsilon)


def _per_channel(v, ndim: int) -> np.ndarray:
    """A per-channel parameter broadcast along axis 1 of a rank-``ndim`` value, in float64."""
    return np.asarray(v, np.float64).reshape((-1,) + (1,) * (ndim - 2))


@op("InstanceNormalization", "electronic", note="per sample and channel, over the spatial axes")
def instance_norm(x, scale, bias, *, epsilon=1e-5) -> np.ndarray:
    """``y = scale[c] * (x - mean) / sqrt(var + epsilon) + bias[c]``, the mean and variance of each
    sample's channel c over the spatial axes (2, 3, ...)."""
    x = np.asarray(x)
    y = _standardised(x.astype(np.float64), tuple(range(2, x.ndim)), epsilon)
    return (y * _per_channel(scale, x.ndim) + _per_channel(bias, x.ndim)).astype(x.dtype)


@op("GroupNormalization", "electronic", note="per sample and group of channels; scale and bias per channel "
                                             "(opset 21) or per group (opset 18)")
def group_norm(x, scale, bias, *, num_groups, epsilon=1e-5, stash_type=1) -> np.ndarray:
    """``y = scale[c] * (x - mean) / sqrt(var + epsilon) + bias[c]``, the mean and variance of each
    sample's group of C / num_groups consecutive channels (with their spatial axes). Opset 18's
    scale and bias have one value per group, which holds for each of its channels."""
    x = np.asarray(x)
    n, c = x.shape[:2]
    groups = int(num_groups)
    grouped = x.astype(np.float64).reshape(n, groups, -1)
    y = _standardised(grouped, (2,), epsilon).reshape(x.shape)
    scale, bias = (np.repeat(v, c // groups) if np.size(v) == groups else v for v in (scale, bias))
    return (y * _per_channel(scale, x.ndim) + _per_channel(bias, x.ndim)).astype(x.dtype)


def trailing_axes_canonical(node, graph, source):
    """``Op.canonical`` of the normalisations over ``axis`` and every axis after it (RMS, layer
    normalisation): the axis made positive; axis 0, the batch, refused."""
    rank = len(graph.types[node.inputs[0]].shape)
    axis = int(node.attrs.get("axis", -1)) % rank
    if axis == 0:
        return unsupported(node, "normalises across the batch axis (axis 0)", BATCH_HINT)
    return node.replace(attrs={**node.attrs, "axis": axis})


@op("RMSNormalization", "electronic", canonical=trailing_axes_canonical, note="over the last axes (not the batch)")
def rms_norm(x, scale, *, axis=-1, epsilon=1e-5, stash_type=1) -> np.ndarray:
    """``y = x / sqrt(mean(x^2) + epsilon) * scale``, the mean over the axes ``axis``, ``axis + 1``..."""
    x = np.asarray(x)
    x64 = x.astype(np.float64)
    axes = tuple(range(axis % x.ndim, x.ndim))
    y = x64 / np.sqrt((x64 * x64).mean(axis=axes, keepdims=True) + epsilon)
    return (y * np.asarray(scale, np.float64)).astype(x.dtype)


@op("LpNormalization", "electronic", canonical=batch_axis(-1), note="p = 1 or 2; not along the batch axis")
def lp_norm(x, *, axis=-1, p=2) -> np.ndarray:
    """``y = x / ||x||_p`` along ``axis`` (p = 1: the sum of |x|, p = 2: the Euclidean norm); 0 where
    the norm is 0."""
    x = np.asarray(x)
    x64 = x.astype(np.float64)
    norm = np.abs(x64).sum(axis=axis, keepdims=True) if p == 1 else np.sqrt((x64 * x64).sum(axis=axis, keepdims=True))
    return np.where(norm == 0, 0.0, x64 / np.where(norm == 0, 1.0, norm)).astype(x.dtype)


def _mvn_canonical(node, graph, source):
    """Positive axes (ONNX's default [0, 2, 3] includes the batch, refused)."""
    rank = len(graph.types[node.inputs[0]].shape)
    axes = sorted(int(a) % rank for a in node.attrs.get("axes", [0, 2, 3]))
    if 0 in axes:
        return unsupported(node, "normalises across the batch axis (axis 0)", BATCH_HINT)
    return node.replace(attrs={"axes": axes})


@op("MeanVarianceNormalization", "electronic", canonical=_mvn_canonical, note="over axes other than the batch")
def mean_variance_norm(x, *, axes=(0, 2, 3)) -> np.ndarray:
    """``y = (x - mean) / (std + 1e-9)``, the mean and (population) standard deviation over ``axes``
    (the ONNX function's epsilon, added to the deviation)."""
    x = np.asarray(x)
    x64 = x.astype(np.float64)
    axes = tuple(int(a) for a in axes)
    centred = x64 - x64.mean(axis=axes, keepdims=True)
    std = np.sqrt((centred * centred).mean(axis=axes, keepdims=True))
    return (centred / (std + 1e-9)).astype(x.dtype)
