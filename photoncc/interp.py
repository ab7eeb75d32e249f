"""IR interpreter: one small NumPy function per op, keyed by op name (like onnx's ReferenceEvaluator).

It runs a graph at every stage of the pipeline, which is how every pass is checked by execution,
how value types are inferred (one run on a batch-1 input) and how calibration statistics are
gathered. Electronic ops come from ``kernels``; this module adds the structural ops, the ONNX
matrix products and the two IR-only ops:

* ``Linear``: y = W x + b along the channel axis (dense: last axis; conv: axis 1 with the conv
  geometry in attrs). Weight and bias are constant inputs.
* ``Bank``: the non-negative form of a Linear (see passes/to_nonnegative.py), evaluated here in float
  arithmetic straight from its definition:  u = x - lo,  y = g * (T @ [u ; alpha - u ; 1]) - s.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import kernels
from .ir import Graph, type_of
from .program import dead_after, weight_step

OPS: dict[str, Callable] = {}


def op(*names):
    def register(fn):
        for name in names:
            OPS[name] = fn
        return fn
    return register


def run(g: Graph, feeds: dict, watch: Callable[[str, np.ndarray], None] | None = None, ops: dict = OPS,
        progress=None) -> dict:
    """Evaluate ``g`` on ``feeds`` (input name -> array); returns the graph outputs by name.

    ``watch(name, value)`` is called for every value a node produces, in order; ``ops`` maps op
    names to their functions (``OPS``; ``infer_types`` replaces the matrix products);
    ``progress(done, total)`` after each node (see photoncc/progress.py). A value is dropped after
    the last node that reads it (``program.dead_after``): memory holds the live values, not all.
    """
    env = dict(g.consts)
    env.update(feeds)
    env[""] = None
    dead = dead_after([(n.inputs, n.outputs) for n in g.nodes], set(g.outputs))
    with np.errstate(all="ignore"):
        for index, n in enumerate(g.nodes):
            args = [env[i] for i in n.inputs]
            result = ops[n.op](n, *args)
            if not isinstance(result, tuple):
                result = (result,)
            for name, value in zip(n.outputs, result):
                if name:
                    env[name] = value
                    if watch is not None:
                        watch(name, value)
            del args, result
            for name in dead[index]:
                del env[name]
            if progress is not None:
                progress(index + 1, len(g.nodes))
    return {o: env[o] for o in g.outputs}


def per_sample_product(node, consts: dict, rank: int) -> bool:
    """Whether ``node``, whose data input has rank ``rank``, is a matrix product that computes each
    sample on its own whatever the batch: a Conv, Gemm (not transA) or MatMul (weights of rank
    <= 2) of a data input of rank >= 2 by constant weights. Type inference and canonicalize's
    batch probe need only its output's shape, and skip its arithmetic (the products are most of
    a model's work)."""
    if node.op not in ("Conv", "Gemm", "MatMul") or node.attrs.get("transA") or node.inputs[0] in consts:
        return False
    weights = [i for i in node.inputs[1:] if i]
    return (rank >= 2 and all(i in consts for i in weights)
            and not (node.op == "MatMul" and np.ndim(consts[weights[0]]) > 2))


def infer_types(g: Graph) -> Graph:
    """Fill the type table by running the graph once on ones shaped like the declared inputs.

    A ``per_sample_product`` is run on none of the samples (its input's first 0 rows) and gives
    zeros of the shape that returns with the samples restored: its output type for a fraction of
    its cost (no later shape can depend on its values in a graph photoncc takes)."""
    feeds = {i: np.ones(g.types[i].shape, g.types[i].dtype) for i in g.inputs}
    types = {k: v for k, v in g.types.items() if k in g.inputs or k in g.consts}

    def record(name, value):
        types[name] = type_of(np.asarray(value))

    def outline(fn):
        def product(node, x, *weights):
            if not per_sample_product(node, g.consts, np.ndim(x)):
                return fn(node, x, *weights)
            y = fn(node, x[:0], *weights)
            return np.zeros(x.shape[:1] + y.shape[1:], y.dtype)
        return product

    run(g, feeds, watch=record, ops={**OPS, **{name: outline(OPS[name]) for name in ("Conv", "Gemm", "MatMul")}})
    for i in g.inputs:
        types[i] = g.types[i]
    return g.replace(types=types)


# ---------------------------------------------------------------- electronic ops (kernels)

def _from_kernel(name):
    fn = kernels.ELECTRONIC[name]
    return lambda node, *args: fn(*[a for a in args if a is not None], **node.attrs)


for _name in kernels.ELECTRONIC:
    OPS[_name] = _from_kernel(_name)
for _name, _fn in kernels.PHOTONIC.items():
    OPS[_name] = lambda node, x, _fn=_fn: _fn(x, **node.attrs)  # the ops below that need more than the kernel override it


# ---------------------------------------------------------------- IR-only ops

@op("Linear")
def _linear(node, x, w, b):
    """y = W x + b; W is (M, K) for dense, the ONNX (M, C/group, *k) kernel for conv."""
    conv = node.attrs.get("conv")
    if conv is None:
        y = x @ w.T
        return y + b if b is not None else y
    return kernels.conv(x, w, b, **conv)


@op("Bank")
def _bank(node, x, tiles, gain, lo, alpha, adc=None, offset=None):
    """Float reference of a bank, from its definition (passes/to_nonnegative.py, to_signed.py):
    y = gain * (T @ v) - shift (+ offset) with v = [u ; alpha - u ; c] (incoherent) or [u ; c] (signed),
    u = x - lo. Weight codes (quantised programs) are read as T = code * step; the crosstalk the
    codes compensate, the DAC and the ADC are not modelled here (the simulator models the device;
    with crosstalk, a quantised bank's value here is not the device's)."""
    a = node.attrs
    groups, m = gain.shape
    k = lo.shape[1]
    if a.get("weight_bits"):
        tiles = tiles * weight_step(a["weight_bits"], a.get("signed", False))
    t = tiles.transpose(0, 1, 3, 2, 4).reshape(groups, tiles.shape[1] * tiles.shape[3], -1)
    conv = a.get("conv")
    if conv:
        x = kernels.im2col(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
    lead = x.shape[:-1]
    u = x.reshape(lead + (groups, k)) - lo
    parts = [u] if a.get("signed") else [u, alpha - u]
    v = np.concatenate(parts + [np.full(u.shape[:-1] + (1,), a.get("carrier", 1.0), u.dtype)], axis=-1)
    t = t[:, :m, :v.shape[-1]].astype(x.dtype)
    vg = v.reshape(-1, groups, v.shape[-1]).transpose(1, 0, 2)                  # (G, P, J)
    y = np.matmul(vg, t.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(lead + (groups, m))
    y = y * gain - np.asarray(a["shift"], x.dtype)
    if offset is not None:
        y = y + offset.astype(x.dtype)
    y = y.reshape(lead + (groups * m,)).astype(x.dtype)
    return np.moveaxis(y, -1, 1) if conv else y


@op("Gemm")
def _gemm(node, a, b, c=None):
    a = a.T if node.attrs.get("transA", 0) else a
    b = b.T if node.attrs.get("transB", 0) else b
    y = node.attrs.get("alpha", 1.0) * (a @ b)
    if c is not None:
        y = y + node.attrs.get("beta", 1.0) * c
    return y.astype(a.dtype, copy=False)


@op("MatMul")
def _matmul(node, a, b):
    return np.matmul(a, b)


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


@op("Conv")
def _conv(node, x, w, b=None):
    a = explicit_pads(node.attrs, x.shape[2:])
    return kernels.conv(x, w, b, strides=a["strides"], pads=a["pads"], dilations=a["dilations"],
                        group=a["group"])


@op("MaxPool", "AveragePool")
def _pool(node, x):
    a = explicit_pads(node.attrs, x.shape[2:])
    return kernels.ELECTRONIC[node.op](x, **a)


# ---------------------------------------------------------------- ONNX forms of electronic ops
# Opset >= 10/11/13/18 files carry some settings as inputs; canonicalize moves them into attributes.
# Until then these wrappers read them from the inputs and call the same kernels.

CONFIG_INPUTS = {  # op -> names of the inputs after the data input that are settings
    "Reshape": ("shape",), "Clip": ("min", "max"), "Pad": ("pads", "value", "axes"),
    "Slice": ("starts", "ends", "axes", "steps"), "Split": ("split",), "Squeeze": ("axes",),
    "Unsqueeze": ("axes",), **{f"Reduce{k}": ("axes",) for k in (
        "Mean", "Sum", "Max", "Min", "Prod", "L1", "L2", "SumSquare", "LogSumExp")},
}


def settings(node, args) -> dict:
    """The node's attributes updated with the values of its setting inputs (CONFIG_INPUTS)."""
    a = dict(node.attrs)
    for key, value in zip(CONFIG_INPUTS.get(node.op, ()), args):
        if value is not None:
            a[key] = value.item() if key in ("min", "max", "value") else [int(v) for v in value.reshape(-1)]
    return a


@op("Clip")
def _clip(node, x, *args):
    a = settings(node, args)
    return kernels.clip(x, min=a.get("min"), max=a.get("max"))


@op("Pad")
def _pad(node, x, *args):
    a = settings(node, args)
    pads, axes = a.pop("pads"), a.pop("axes", None)
    if axes is not None:
        full = [0] * (2 * x.ndim)
        for i, axis in enumerate(int(v) % x.ndim for v in axes):
            full[axis], full[axis + x.ndim] = pads[i], pads[i + len(axes)]
        pads = full
    return kernels.pad(x, pads=pads, mode=a.get("mode", "constant"), value=a.get("value", 0.0) or 0.0)


@op("Reshape")
def _reshape(node, x, *args):
    a = settings(node, args)
    if not args:  # canonical: per-sample shape
        return kernels.reshape(x, shape=a["shape"])
    shape = a["shape"]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


@op("Flatten")
def _flatten(node, x):
    axis = node.attrs.get("axis", 1) % max(x.ndim, 1)
    return x.reshape((int(np.prod(x.shape[:axis])), -1))


@op("Squeeze")
def _squeeze(node, x, *args):
    axes = settings(node, args).get("axes")
    return np.squeeze(x, axis=None if axes is None else tuple(a % x.ndim for a in axes))


@op("Unsqueeze")
def _unsqueeze(node, x, *args):
    axes = settings(node, args)["axes"]
    ndim = x.ndim + len(axes)
    return np.expand_dims(x, tuple(sorted(a % ndim for a in axes)))


@op("Split")
def _split(node, x, *args):
    a = settings(node, args)
    axis = a.get("axis", 0) % x.ndim
    sizes = a.get("split")
    if sizes is None:
        count = a.get("num_outputs", len(node.outputs))
        chunk = -(-x.shape[axis] // count)
        sizes = [min(chunk, x.shape[axis] - chunk * i) for i in range(count)]
    return kernels.split(x, axis=axis, split=sizes)


@op("Slice")
def _slice(node, x, *args):
    a = settings(node, args)
    count = len(a["starts"])
    axes = [int(v) % x.ndim for v in a.get("axes", range(count))]
    return kernels.slice_(x, starts=a["starts"], ends=a["ends"], axes=axes, steps=a.get("steps", [1] * count))


def _reduce(node, x, *args):
    a = settings(node, args)
    axes = a.get("axes")
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return x
        axes = range(x.ndim)
    return kernels.reduce(x, op=REDUCE[node.op], axes=tuple(int(v) % x.ndim for v in axes),
                          keepdims=bool(a.get("keepdims", 1)))


REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min",
          "ReduceProd": "prod", "ReduceL1": "l1", "ReduceL2": "l2", "ReduceSumSquare": "sum_square",
          "ReduceLogSumExp": "log_sum_exp"}
for _name in REDUCE:
    OPS[_name] = _reduce


@op("Dropout")
def _dropout(node, x, *rest):
    return (x, np.ones(x.shape, bool)) if len(node.outputs) > 1 else x


# ---------------------------------------------------------------- compile-time ops (shapes, constants)

@op("Shape")
def _shape(node, x):
    shape = np.array(x.shape, np.int64)
    return shape[node.attrs.get("start", 0):node.attrs.get("end")]


@op("Size")
def _size(node, x):
    return np.array(x.size, np.int64)


@op("ConstantOfShape")
def _constant_of_shape(node, shape):
    value = node.attrs["value"]
    return np.full(tuple(int(d) for d in shape), value.reshape(-1)[0], value.dtype)


@op("Expand")
def _expand(node, x, shape):
    return x * np.ones([int(d) for d in shape], x.dtype)


@op("Tile")
def _tile(node, x, repeats):
    return np.tile(x, [int(r) for r in repeats])


@op("Range")
def _range(node, start, limit, delta):
    return np.arange(start, limit, delta, dtype=np.asarray(start).dtype)
