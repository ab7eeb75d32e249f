"""Input ranges of the photonic layers, which the non-negative transform needs (alpha = hi - lo).

For each Linear node's input x, per channel (axis 1 for conv, the last axis for dense):

1. a bound the graph guarantees: x comes (through pooling, reshapes and the like) from Sigmoid or
   Softmax [0, 1], Tanh [-1, 1], HardSigmoid [0, 1], or a Clip with both limits; a model input with
   a declared range (``--input-range``);
2. otherwise the calibration data: the interpreter runs the graph on it and records the per-channel
   min and max of x, widened on each side by ``headroom`` times the range (the profile's
   ``calibration.headroom``: unseen data reaches beyond a sample's extremes) plus ROUNDING of the
   magnitude (the device computes the same values in another order and precision, so a
   calibration extreme can come out slightly beyond itself there);
3. otherwise the range is unknown and compilation stops with an error that says to pass calibration
   data. Nothing is guessed.

The clipped fraction of a layer is the share of calibration values of x outside its final range
(0 for min/max ranges; non-zero where a declared or guaranteed range is narrower than the data).
"""
from __future__ import annotations

import numpy as np

from . import interp, kernels
from .data import batches
from .errors import UserError
from .ir import Graph
from .program import weight_step

PASS_THROUGH = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Reshape",
                "Transpose", "Identity", "Relu"}  # ops whose output stays inside their input's bounds
BOUNDED = {"Sigmoid": (0.0, 1.0), "Softmax": (0.0, 1.0), "Tanh": (-1.0, 1.0), "HardSigmoid": (0.0, 1.0)}
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


def guaranteed_bound(g: Graph, value: str, input_range) -> tuple[float, float, str] | None:
    producers = g.producers()
    while value in producers and producers[value].op in PASS_THROUGH:
        node = producers[value]
        if node.op == "Relu":
            inner = guaranteed_bound(g, node.inputs[0], input_range)
            return (max(inner[0], 0.0), max(inner[1], 0.0), inner[2] + " then Relu") if inner else None
        value = node.inputs[0]
    if value in g.inputs:
        return (*input_range, "declared input range") if input_range else None
    node = producers.get(value)
    if node is None:
        return None
    if node.op in BOUNDED:
        return (*BOUNDED[node.op], f"{node.op} {node.name!r}")
    if node.op == "Clip" and node.attrs.get("min") is not None and node.attrs.get("max") is not None:
        return (float(node.attrs["min"]), float(node.attrs["max"]), f"Clip {node.name!r}")
    return None


def measure_ranges(g: Graph, calibration: dict | None, input_range=None, headroom: float = 0.0):
    """Ranges for every bank input: ({value: (lo, hi)}, {value: info dict}); see module docstring."""
    wanted = bank_inputs(g)
    ranges, info, todo = {}, {}, {}
    for value, (layer, axis) in wanted.items():
        channels = g.types[value].shape[axis]
        bound = guaranteed_bound(g, value, input_range)
        if bound:
            lo, hi, source = bound
            ranges[value] = (np.full(channels, lo), np.full(channels, hi))
            info[value] = {"layer": layer, "source": source}
        else:
            todo[value] = axis
    if todo and calibration is None:
        names = ", ".join(f"{wanted[v][0]!r} (input {v!r})" for v in list(todo)[:5])
        more = f" and {len(todo) - 5} more" if len(todo) > 5 else ""
        raise UserError(f"the input range of layer {names}{more} is not known from the model; pass "
                        "calibration data (--calibration DATA.npz, samples like the ones you will run)"
                        + ("" if input_range else " or declare the input range (--input-range LO,HI)"))
    observed = observe(g, calibration, {v: wanted[v][1] for v in wanted}) if calibration else {}
    for value, axis in todo.items():
        lo, hi, _ = observed[value]
        pad = headroom * (hi - lo) + ROUNDING * np.maximum(np.abs(lo), np.abs(hi))
        ranges[value] = (lo - pad, hi + pad)
        info[value] = {"layer": wanted[value][0], "source": "calibration"}
    for value in wanted:
        lo, hi = ranges[value]
        info[value].update(lo=float(lo.min()), hi=float(hi.max()),
                           clipped=observed[value][2](lo, hi) if value in observed else None)
    return ranges, info


def observe(g: Graph, calibration: dict, axes: dict[str, int]):
    """Run ``g`` on the calibration samples; per watched value: (min, max, clipped-fraction fn)."""
    low, high, seen = {}, {}, {v: [] for v in axes}

    def watch(name, value):
        if name in axes:
            moved = np.moveaxis(np.asarray(value, np.float64), axes[name], -1).reshape(-1, value.shape[axes[name]])
            low[name] = np.minimum(low.get(name, np.inf), moved.min(axis=0))
            high[name] = np.maximum(high.get(name, -np.inf), moved.max(axis=0))
            seen[name].append(moved[:: max(1, len(moved) // 4096)])  # a sample for clipped fractions

    for batch in batches(calibration, BATCH):
        for name in axes:
            if name in batch:
                watch(name, batch[name])
        interp.run(g, batch, watch=watch)

    def clipped_fn(name):
        sample = np.concatenate(seen[name])
        return lambda lo, hi: float(np.mean((sample < lo) | (sample > hi)))

    return {name: (low[name], high[name], clipped_fn(name)) for name in axes}


def adc_ranges(g: Graph, calibration: dict | None, headroom: float) -> dict[str, np.ndarray]:
    """Per Bank, per tile and photodetector (G, R, Q, B, 2): the ADC input range [lo, hi], the
    smallest and largest partial sum that photodetector reads on the calibration data, widened by
    ``headroom`` of the width on each side; without calibration data the bound
    [sum_c min(T_c, 0) v_max,c, sum_c max(T_c, 0) v_max,c], which no input inside the ranges leaves."""
    banks = {n.name: n for n in g.nodes if n.op == "Bank"}
    by_input: dict[str, list] = {}
    for n in banks.values():
        by_input.setdefault(n.inputs[0], []).append(n)
    if calibration is None:
        out = {}
        for name, n in banks.items():
            tiles = _weights(n, g.consts)
            vmax = _channel_powers(n, g.consts, None)  # (G, Q, C): the largest power per channel
            low = np.einsum("grqbc,gqc->grqb", np.minimum(tiles, 0), vmax)
            high = np.einsum("grqbc,gqc->grqb", np.maximum(tiles, 0), vmax)
            out[name] = np.stack([low, high], axis=-1)
        return out
    low = {name: np.full(g.consts[n.inputs[1]].shape[:4], np.inf) for name, n in banks.items()}
    high = {name: np.full(g.consts[n.inputs[1]].shape[:4], -np.inf) for name, n in banks.items()}

    def watch(name, value):
        for n in by_input.get(name, ()):
            lo, hi = _partial_sum_extremes(n, g.consts, np.asarray(value, np.float64))
            low[n.name], high[n.name] = np.minimum(low[n.name], lo), np.maximum(high[n.name], hi)

    for batch in batches(calibration, BATCH):
        for name in batch:
            watch(name, batch[name])
        interp.run(g, batch, watch=watch)
    out = {}
    for name in banks:
        width = np.maximum(high[name] - low[name], 1e-12 * np.maximum(np.abs(high[name]), 1.0))
        out[name] = np.stack([low[name] - headroom * width, high[name] + headroom * width], axis=-1)
    return out


def _channel_powers(n, consts, x):
    """Optical input powers v (P, G, Q, C) of bank ``n`` for its input x; for x None, the largest
    power each channel can carry (G, Q, C)."""
    tiles, lo, alpha = consts[n.inputs[1]], consts[n.inputs[3]].astype(np.float64), consts[n.inputs[4]].astype(np.float64)
    groups, _, q, _, c = tiles.shape
    k = lo.shape[1]
    if x is None:
        u = alpha[None]
    else:
        conv = n.attrs.get("conv")
        if conv:
            x = kernels.im2col(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
        u = np.clip(x.reshape(-1, groups, k) - lo, 0, alpha)
    parts = [u] if n.attrs.get("signed") else [u, alpha - u]
    v = np.concatenate(parts + [np.full(u.shape[:-1] + (1,), n.attrs.get("carrier", 1.0))], axis=-1)
    v = np.concatenate([v, np.zeros(v.shape[:-1] + (q * c - v.shape[-1],))], axis=-1)
    v = v.reshape(v.shape[:-1] + (q, c))
    return v[0] if x is None else v


def _partial_sum_extremes(n, consts, x):
    """min and max over samples and positions of every photodetector's partial sum per tile
    (G, R, Q, B), computed in chunks of positions to bound memory."""
    tiles = _weights(n, consts)
    v = _channel_powers(n, consts, x)  # (P, G, Q, C)
    groups, r, q, b, _ = tiles.shape
    low, high = np.full((groups, r, q, b), np.inf), np.full((groups, r, q, b), -np.inf)
    chunk = max(1, (1 << 24) // max(1, groups * r * q * b))
    for start in range(0, len(v), chunk):
        partial = np.einsum("pgqc,grqbc->grqbp", v[start:start + chunk], tiles)
        low, high = np.minimum(low, partial.min(axis=-1)), np.maximum(high, partial.max(axis=-1))
    return low, high


def _weights(n, consts) -> np.ndarray:
    """The bank's ring weights (G, R, Q, B, C), decoded from weight codes when quantised."""
    tiles = consts[n.inputs[1]].astype(np.float64)
    bits = n.attrs.get("weight_bits")
    return tiles * weight_step(bits, n.attrs.get("signed", False)) if bits else tiles
