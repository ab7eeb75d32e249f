"""Operators evaluated at compile time: shape arithmetic and constants. ``fold_constants`` replaces
every node whose inputs are known by its value (``Shape`` and ``Size`` are known once the batch is
bound), so shape sub-graphs (Shape -> Gather -> Concat -> Reshape) collapse; none of these ops may
remain in a program."""
from __future__ import annotations

import numpy as np

from . import register


def _shape(node, x):
    shape = np.array(x.shape, np.int64)
    return shape[node.attrs.get("start", 0):node.attrs.get("end")]


def _size(node, x):
    return np.array(x.size, np.int64)


def _constant_of_shape(node, shape):
    value = node.attrs["value"]
    return np.full(tuple(int(d) for d in shape), value.reshape(-1)[0], value.dtype)


def _range(node, start, limit, delta):
    return np.arange(start, limit, delta, dtype=np.asarray(start).dtype)


register("Shape", "compile", onnx=_shape, note="known once the batch is bound")
register("Size", "compile", onnx=_size, note="known once the batch is bound")
register("ConstantOfShape", "compile", onnx=_constant_of_shape, note="of a constant shape")
register("Constant", "compile", note="a constant of the model, read by the importer")
register("Range", "compile", onnx=_range, note="of constant start, limit and delta")
