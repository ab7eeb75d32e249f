"""Reductions (ReduceMean ... ReduceLogSumExp), the arg reductions and the ops that select or
accumulate along an axis (Hardmax, TopK, CumSum, CumProd), electronic, never over the batch axis:
each reduction is spelled once, in ``REDUCTIONS``, and its derivative (for the reverse-mode rule
``vjp``) once, in ``SLOPES``; the arg reductions pass no gradient."""
from __future__ import annotations

import numpy as np

from . import BATCH_HINT, fixed_bounds, op, register, saves, settings, unsupported
from .elementwise import scalar
from .layout import batch_axis


def norm_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"axis {axis} out of range for rank {ndim}")
    return axis % max(ndim, 1)


def _arg_reduce(x, fn, axis, keepdims, select_last_index):
    x = np.asarray(x)
    axis = norm_axis(axis, x.ndim)
    if select_last_index:
        idx = (x.shape[axis] - 1) - fn(np.flip(x, axis=axis), axis=axis)
    else:
        idx = fn(x, axis=axis)
    idx = np.asarray(idx, dtype=np.int64)
    return np.expand_dims(idx, axis) if keepdims else idx


@saves()
def _no_gradient(node, inputs, outputs, cts):
    return (None,) * len(inputs)


@op("ArgMax", "electronic", canonical=batch_axis(0), vjp=_no_gradient)
def argmax(x, *, axis=0, keepdims=True, select_last_index=False) -> np.ndarray:
    """Index (int64) of the largest element along ``axis``; the first of ties, or the last with
    ``select_last_index``."""
    return _arg_reduce(x, np.argmax, axis, keepdims, select_last_index)


@op("ArgMin", "electronic", canonical=batch_axis(0), vjp=_no_gradient)
def argmin(x, *, axis=0, keepdims=True, select_last_index=False) -> np.ndarray:
    """Index (int64) of the smallest element along ``axis``; the first of ties, or the last with
    ``select_last_index``."""
    return _arg_reduce(x, np.argmin, axis, keepdims, select_last_index)


def _log_sum_exp(x, axis, keepdims):
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, scalar(x, 0))
    y = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis=axis)


REDUCTIONS = {  # ONNX op -> the reduction of x over ``axis`` (a tuple), its axes kept or not
    "ReduceMean": lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims),
    "ReduceSum": lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims),
    "ReduceMax": lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims),
    "ReduceMin": lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims),
    "ReduceProd": lambda x, axis, keepdims: x.prod(axis=axis, keepdims=keepdims),
    "ReduceL1": lambda x, axis, keepdims: np.abs(x).sum(axis=axis, keepdims=keepdims),
    "ReduceL2": lambda x, axis, keepdims: np.sqrt((x * x).sum(axis=axis, keepdims=keepdims)),
    "ReduceSumSquare": lambda x, axis, keepdims: (x * x).sum(axis=axis, keepdims=keepdims),
    "ReduceLogSumExp": _log_sum_exp,
    "ReduceLogSum": lambda x, axis, keepdims: np.log(x.sum(axis=axis, keepdims=keepdims)),
}


def _first_extreme(x, y, axis):
    """1 at the first position along ``axis`` that holds the reduction's value ``y``, else 0."""
    hits = x == y
    moved = np.moveaxis(hits, axis, tuple(range(hits.ndim - len(axis), hits.ndim)))
    flat = moved.reshape(moved.shape[:hits.ndim - len(axis)] + (-1,))
    first = flat & (np.cumsum(flat, axis=-1) == 1)
    return np.moveaxis(first.reshape(moved.shape), tuple(range(hits.ndim - len(axis), hits.ndim)), axis)


SLOPES = {  # ONNX op -> d reduction / d x, from x, the reduction y (axes kept) and the reduced axes
    "ReduceMean": lambda x, y, axis: np.full(x.shape, 1.0 / np.prod([x.shape[i] for i in axis])),
    "ReduceSum": lambda x, y, axis: np.ones(x.shape),
    "ReduceMax": _first_extreme,
    "ReduceMin": _first_extreme,
    "ReduceProd": lambda x, y, axis: _prod_others(x, axis),
    "ReduceL1": lambda x, y, axis: np.sign(x),
    "ReduceL2": lambda x, y, axis: np.where(y > 0, x / np.where(y > 0, y, 1), 0.0),
    "ReduceSumSquare": lambda x, y, axis: 2 * x,
    "ReduceLogSumExp": lambda x, y, axis: np.exp(x - y),
    "ReduceLogSum": lambda x, y, axis: np.broadcast_to(np.exp(-y), x.shape),  # 1 / sum x
}


def _prod_others(x, axis):
    """d prod / d x_i = the product of the other values (exact with zeros, no division)."""
    moved = np.moveaxis(x, axis, tuple(range(x.ndim - len(axis), x.ndim)))
    flat = moved.reshape(moved.shape[:x.ndim - len(axis)] + (-1,)).astype(np.float64)
    left = np.cumprod(np.concatenate([np.ones(flat.shape[:-1] + (1,)), flat[..., :-1]], axis=-1), axis=-1)
    right = np.flip(np.cumprod(np.concatenate([np.ones(flat.shape[:-1] + (1,)), np.flip(flat, -1)[..., :-1]],
                                              axis=-1), axis=-1), -1)
    return np.moveaxis((left * right).reshape(moved.shape), tuple(range(x.ndim - len(axis), x.ndim)), axis)


def _reduce_vjp(node, inputs, outputs, cts):
    """g (axes restored when not kept) times the reduction's slope (``SLOPES``)."""
    x, g = inputs[0], cts[0]
    a = settings(node, inputs[1:])
    axes = a.get("axes")
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return (g,) + (None,) * (len(inputs) - 1)
        axes = range(x.ndim)
    axis = tuple(sorted({int(v) % x.ndim for v in axes}))
    kept = tuple(1 if i in axis else d for i, d in enumerate(x.shape))
    y, g = outputs[0].reshape(kept), g.reshape(kept)
    slope = SLOPES[node.op](x.astype(np.float64), y.astype(np.float64), axis)
    return ((g * slope).astype(g.dtype),) + (None,) * (len(inputs) - 1)


def reduce(x, *, op, axes=None, keepdims=True) -> np.ndarray:
    """ONNX reduction ``op`` (a key of REDUCTIONS) over ``axes`` (``None``: all axes).
    ``L1 = sum|x|``, ``L2 = sqrt(sum x^2)``, ``SumSquare = sum x^2``,
    ``LogSumExp = m + log(sum exp(x - m))`` with ``m = max x``."""
    x = np.asarray(x)
    if op not in REDUCTIONS:
        raise ValueError(f"unknown reduction {op!r}; expected one of {sorted(REDUCTIONS)}")
    if axes is None:
        axis = tuple(range(x.ndim))
    else:
        axes = (axes,) if np.isscalar(axes) else axes
        axis = tuple(sorted({norm_axis(int(a), x.ndim) for a in axes}))
    return np.asarray(REDUCTIONS[op](x, axis, bool(keepdims))).astype(x.dtype, copy=False)


def _reduce_onnx(node, x, *args):
    a = settings(node, args)
    axes = a.get("axes")
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return x
        axes = range(x.ndim)
    return reduce(x, op=node.op, axes=tuple(int(v) % x.ndim for v in axes), keepdims=bool(a.get("keepdims", 1)))


def _reduce_canonical(node, graph, source):
    """Positive, sorted axes; a reduction over the batch (or over every axis) refused."""
    a = dict(node.attrs)
    axes = a.get("axes")
    if not axes and not a.get("noop_with_empty_axes", 0):
        return unsupported(node, "reduces over every axis, including the batch", BATCH_HINT)
    a["axes"] = sorted(int(v) % len(graph.types[node.inputs[0]].shape) for v in (axes or []))
    if 0 in a["axes"]:
        return unsupported(node.replace(attrs=a), "reduces over the batch axis", BATCH_HINT)
    return node.replace(attrs=a)


def _kernel(name):
    return lambda x, *, axes, keepdims=1, noop_with_empty_axes=0: reduce(
        x, op=name, axes=tuple(axes), keepdims=bool(keepdims))


for _name in REDUCTIONS:
    register(_name, "electronic", kernel=_kernel(_name), onnx=_reduce_onnx, settings=("axes",), vjp=_reduce_vjp,
             canonical=_reduce_canonical, note="not over the batch axis" if _name == "ReduceMean" else "")


def _along(axis: int, ndim: int, index) -> tuple:
    """An index tuple selecting ``index`` on ``axis`` and everything on the other axes."""
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


@op("Hardmax", "electronic", canonical=batch_axis(None), bounds=fixed_bounds(0.0, 1.0),
    note="opset < 13 coerce-to-2-D semantics kept")
def hardmax(x, *, axis=-1, legacy=False) -> np.ndarray:
    """1 at the first largest element along ``axis``, 0 elsewhere, in ``x``'s dtype; ``legacy``
    (opset < 13): along the 2-D coercion ``(prod(shape[:axis]), prod(shape[axis:]))``."""
    x = np.asarray(x)
    axis = norm_axis(axis, x.ndim)
    if legacy:
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        return hardmax(x.reshape(rows, -1), axis=1).reshape(x.shape)
    y = np.zeros_like(x)
    np.put_along_axis(y, np.expand_dims(x.argmax(axis=axis), axis), 1, axis=axis)
    return y


def _top_k_onnx(node, x, *args):
    return top_k(x, **settings(node, args))


@op("TopK", "electronic", onnx=_top_k_onnx, settings=("K",), canonical=batch_axis(-1),
    note="constant K; not along the batch axis")
def top_k(x, *, K, axis=-1, largest=1, sorted=1):  # noqa: A002 - ONNX name
    """The ``K`` largest (``largest``) or smallest elements along ``axis`` and their indices
    (int64), from the largest (smallest) on, equal elements by increasing index (a stable order;
    ``sorted=0`` allows any order, this one is as good)."""
    x = np.asarray(x)
    axis = norm_axis(axis, x.ndim)
    if largest:  # descending and stable: the stable ascending order of the reversed axis, reversed
        last = x.shape[axis] - 1
        order = last - np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    indices = order[_along(axis, x.ndim, slice(0, int(K)))].astype(np.int64)
    return np.take_along_axis(x, indices, axis=axis), indices


def _cumulative(fn):
    """The ONNX form of CumSum or CumProd: its axis input made an attribute."""
    return lambda node, x, *args: fn(x, **settings(node, args))


def _accumulate(x, ufunc, axis, exclusive, reverse) -> np.ndarray:
    """``y[i] = x[0] o ... o x[i]`` along ``axis`` for the ufunc ``o`` (up to ``x[i-1]``, from its
    identity on, with ``exclusive``; from the end with ``reverse``), in ``x``'s dtype."""
    x = np.asarray(x)
    axis = norm_axis(axis, x.ndim)
    if reverse:
        x = np.flip(x, axis)
    y = ufunc.accumulate(x, axis=axis, dtype=x.dtype)
    if exclusive:  # shifted by one: the identity, then the inclusive results but the last
        first = np.full_like(y[_along(axis, y.ndim, slice(0, 1))], ufunc.identity)
        y = np.concatenate([first, y[_along(axis, y.ndim, slice(0, -1))]], axis=axis)
    return np.flip(y, axis) if reverse else y


@op("CumSum", "electronic", onnx=_cumulative(lambda x, **a: cumsum(x, **a)), settings=("axis",),
    canonical=batch_axis(None), note="constant axis; not along the batch axis")
def cumsum(x, *, axis, exclusive=0, reverse=0) -> np.ndarray:
    """``y[i] = sum_{j <= i} x[j]`` along ``axis`` (``j < i`` with ``exclusive``; ``j >= i``, or
    ``j > i``, with ``reverse``)."""
    return _accumulate(x, np.add, axis, exclusive, reverse)


@op("CumProd", "electronic", onnx=_cumulative(lambda x, **a: cumprod(x, **a)), settings=("axis",),
    canonical=batch_axis(None), note="constant axis; not along the batch axis")
def cumprod(x, *, axis, exclusive=0, reverse=0) -> np.ndarray:
    """``y[i] = prod_{j <= i} x[j]`` along ``axis`` (``exclusive`` and ``reverse`` as in CumSum)."""
    return _accumulate(x, np.multiply, axis, exclusive, reverse)
