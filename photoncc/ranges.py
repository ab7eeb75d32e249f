"""Input ranges of the photonic layers, which the non-negative transform needs (alpha = hi - lo).

For each Linear node's input x, per channel (axis 1 for conv, the last axis for dense):

1. a bound the graph guarantees (``interval_bounds``): x comes, through pooling, reshapes, constant
   affine maps and the like, from Sigmoid or Softmax [0, 1], Tanh [-1, 1], HardSigmoid [0, 1], a
   Clip with both limits, or a model input with a declared range (``--input-range``);
2. otherwise the calibration data: the interpreter runs the graph on it and records the per-channel
   min and max of x (or, with ``percentile`` p < 100, its (100 - p)th and p-th percentiles,
   estimated on a subsample of at most 4096 positions per batch of 32 samples, so that rare
   outliers are clipped instead of stretching the range), widened on each side by ``headroom``
   times the range (the profile's ``calibration.headroom``: unseen data reaches beyond a sample's
   extremes) plus ROUNDING of the
   magnitude (the device computes the same values in another order and precision, so a
   calibration extreme can come out slightly beyond itself there);
3. otherwise the range is unknown and compilation stops with an error that says to pass calibration
   data. Nothing is guessed.

The clipped fraction of a layer is the share of calibration values of x outside its final range
(0 for min/max ranges; non-zero where a declared or guaranteed range is narrower than the data).
"""
from __future__ import annotations

import numpy as np

from . import interp, ops
from .data import batches
from .errors import UserError
from .ir import Graph

BATCH = 32
ROUNDING = 1e-4


def bank_inputs(g: Graph) -> dict[str, tuple[str, int]]:
    """value -> (name of the first Linear node reading it, its channel axis)."""
    found = {}
    for n in g.nodes:
        if n.op == "Linear" and n.inputs[0] not in found:
            axis = 1 if "conv" in n.attrs else len(g.types[n.inputs[0]].shape) - 1
            found[n.inputs[0]] = (n.name, axis)
    return found


def interval_bounds(g: Graph, input_range=None) -> dict:
    """Bounds every input sample keeps, per element: value -> (lo, hi, source), batch-1 arrays.

    Sources: the declared input range, bounded activations (Sigmoid, Tanh...), a Clip with both
    limits, constants. They propagate through ops that are non-decreasing in their data inputs
    (evaluated on lo and on hi: Relu, pooling, reshapes, Concat...) and through Add, Sub, Mul, Div
    by interval arithmetic (e.g. an exported standardisation (x - mean) / std). They do not pass a
    Linear layer: bounds through weights grow too loose to be useful; calibration measures those.
    """
    bounds = {c: (v, v, "constant") for c, v in g.consts.items()}
    if input_range is not None:
        for i in g.inputs:
            t = g.types[i]
            bounds[i] = (np.full(t.shape, input_range[0], t.dtype), np.full(t.shape, input_range[1], t.dtype),
                         "declared input range")
    with np.errstate(all="ignore"):
        for n in g.nodes:
            if len(n.outputs) != 1 or n.op in ("Linear", "Bank"):
                continue
            found = _bound_of(n, [bounds.get(i) for i in n.inputs], g.types[n.outputs[0]])
            if found is not None:
                bounds[n.outputs[0]] = found
    return bounds


def _bound_of(n, ins, out_type):
    """The bounds of ``n``'s output: its op's own (``Op.bounds``), else those its op's rule
    (``Op.interval``) derives from its inputs' bounds ``ins`` (None where an input has none)."""
    found = ops.get(n.op)
    fixed = found.bounds(n.attrs) if found and found.bounds else None
    if fixed is not None:
        return np.full(out_type.shape, fixed[0]), np.full(out_type.shape, fixed[1]), f"{n.op} {n.name!r}"
    if any(b is None for b in ins) or not ins or not found or not found.interval:
        return None
    derived = found.interval(n, [b[0] for b in ins], [b[1] for b in ins])
    if derived is None:
        return None
    source = next((b[2] for b in ins if b[2] != "constant"), "constant")
    return np.asarray(derived[0], np.float64), np.asarray(derived[1], np.float64), source


def measure_ranges(g: Graph, calibration: dict | None, input_range=None, headroom: float = 0.0,
                   percentile: float = 100.0, progress=None):
    """Ranges for every bank input: ({value: (lo, hi)}, {value: info dict}); see module docstring.
    ``progress(done, total)``: calibration samples run (photoncc/progress.py)."""
    wanted = bank_inputs(g)
    ranges, info, todo = {}, {}, {}
    bounds = interval_bounds(g, input_range)
    for value, (layer, axis) in wanted.items():
        if value in bounds and bounds[value][2] != "constant":
            lo, hi, source = bounds[value]
            channels = g.types[value].shape[axis]
            per_channel = [np.moveaxis(np.broadcast_to(b, g.types[value].shape), axis, -1).reshape(-1, channels)
                           for b in (lo, hi)]
            ranges[value] = (per_channel[0].min(axis=0), per_channel[1].max(axis=0))
            info[value] = {"layer": layer, "source": source}
        else:
            todo[value] = axis
    if todo and calibration is None:
        names = ", ".join(f"{wanted[v][0]!r} (input {v!r})" for v in list(todo)[:5])
        more = f" and {len(todo) - 5} more" if len(todo) > 5 else ""
        raise UserError(f"the input range of layer {names}{more} is not known from the model; pass "
                        "calibration data (--calibration DATA.npz, samples like the ones you will run)"
                        + ("" if input_range else " or declare the input range (--input-range LO,HI)"))
    observed = observe(g, calibration, {v: wanted[v][1] for v in wanted}, progress) if calibration else {}
    for value, axis in todo.items():
        lo, hi, _, sample = observed[value]
        if percentile < 100:  # on the kept subsample (at most 4096 positions per batch)
            lo, hi = np.percentile(sample, 100 - percentile, axis=0), np.percentile(sample, percentile, axis=0)
        pad = headroom * (hi - lo) + ROUNDING * np.maximum(np.abs(lo), np.abs(hi))
        ranges[value] = (lo - pad, hi + pad)
        info[value] = {"layer": wanted[value][0], "source": "calibration"}
    for value in wanted:
        lo, hi = ranges[value]
        info[value].update(lo=float(lo.min()), hi=float(hi.max()),
                           clipped=observed[value][2](lo, hi) if value in observed else None)
    return ranges, info


def observe(g: Graph, calibration: dict, axes: dict[str, int], progress=None):
    """Run ``g`` on the calibration samples; per watched value: (min, max, clipped-fraction fn)."""
    low, high, seen = {}, {}, {v: [] for v in axes}

    def watch(name, value):
        if name in axes:
            axis = axes[name]
            others = tuple(i for i in range(value.ndim) if i != axis)  # reduce in place: no copies
            low[name] = np.minimum(low.get(name, np.inf), value.min(axis=others).astype(np.float64))
            high[name] = np.maximum(high.get(name, -np.inf), value.max(axis=others).astype(np.float64))
            moved = np.moveaxis(value, axis, -1).reshape(-1, value.shape[axis])  # a view when it can be
            step = max(1, len(moved) // 4096)
            seen[name].append(moved[::step].astype(np.float64))  # a sample for clipped fractions, percentiles

    for batch, step in batches(calibration, BATCH, progress):
        for name in axes:
            if name in batch:
                watch(name, batch[name])
        interp.run(g, batch, watch=watch, progress=step)

    samples = {name: np.concatenate(seen[name]) for name in axes}

    def clipped_fn(name):
        return lambda lo, hi: float(np.mean((samples[name] < lo) | (samples[name] > hi)))

    return {name: (low[name], high[name], clipped_fn(name), samples[name]) for name in axes}
