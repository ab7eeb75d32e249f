"""Input ranges of the photonic layers, which the non-negative transform needs (alpha = hi - lo).

For each Linear node's input x, per channel (axis 1 for conv, the last axis for dense):

1. a bound the graph guarantees (``interval_bounds``): x comes, through pooling, reshapes, constant
   affine maps and the like, from Sigmoid or Softmax [0, 1], Tanh [-1, 1], HardSigmoid [0, 1], a
   Clip with both limits, or a model input with a declared range (``--input-range``);
2. otherwise the calibration data: the interpreter runs the graph on it and records the per-channel
   min and max of x (or, with ``percentile`` p < 100, its (100 - p)th and p-th percentiles, estimated
   on a subsample of at most 4096 positions per batch of 32 samples, so that rare outliers are
   clipped instead of stretching the range), widened on each side by ``headroom`` times the range (the profile's
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

from . import cpu, interp, ops
from .data import batches
from .errors import UserError
from .ir import Graph
from .ops.conv import unfold
from .progress import stage
from .simulator import device_weights

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


ERROR_SIGMAS = 4.0  # ADC ranges also cover the read errors calibration does not see, to this many sigmas


def adc_ranges(g: Graph, source: Graph, calibration: dict | None, headroom: float, profile,
               progress=None) -> dict[str, np.ndarray]:
    """Per Bank of the quantised graph ``g``, per tile and photodetector (G, R, Q, B, 2): the ADC
    input range [lo, hi].

    With calibration data: the smallest and largest partial sum that photodetector reads on it,
    widened by ``headroom`` of the width on each side. A bank's inputs are the values ``source``
    (the graph before to_banks, whose Linear layers compute the model's own values, one direct
    product each) gives it, which the noiseless device approximates; not the interpreter's values
    of ``g``, which reads the codes without the crosstalk they compensate and so drifts far from the
    device from the second layer on. Without calibration data: the bound
    [sum_c min(T_c, 0) v_max,c, sum_c max(T_c, 0) v_max,c], which no input inside the ranges leaves.
    T are the weights the device realises (codes with the profile's thermal crosstalk). Both are
    then widened on each side by ERROR_SIGMAS standard deviations of the read errors the device adds
    that no calibration read contains, at the tile's largest channel powers v_max:

        sigma = sqrt(weight_sigma^2 sum_c v_max,c^2 + rin_sigma^2 sum_c T_c^2 v_max,c^2)

    (the programming error N(0, weight_sigma) of each ring and the laser RIN of each channel).
    Without this margin a photodetector whose reads hardly vary (complement channels, the bias
    carrier) has a range far narrower than those errors and saturates on every read.
    ``progress(done, total, stage)``: the banks whose margins are done (stage "ADC margins"), then
    the calibration samples run ("ADC ranges"; photoncc/progress.py)."""
    banks = {n.name: n for n in g.nodes if n.op == "Bank"}
    by_input: dict[str, list] = {}
    for n in banks.values():
        by_input.setdefault(n.inputs[0], []).append(n)
    margin, out = {}, {}
    for index, (name, n) in enumerate(banks.items()):  # a block of one bank's weights at a time
        margin[name], out[name] = _margins(n, g.consts, profile, bound=calibration is None)
        if progress is not None:
            progress(index + 1, len(banks), "ADC margins")
    if calibration is None:
        return out
    low = {name: np.full(g.consts[n.inputs[1]].shape[:4], np.inf) for name, n in banks.items()}
    high = {name: np.full(g.consts[n.inputs[1]].shape[:4], -np.inf) for name, n in banks.items()}

    def watch(name, value):
        for n in by_input.get(name, ()):
            lo, hi = _partial_sum_extremes(n, g.consts, _product_weights(n, g.consts, profile), np.asarray(value))
            low[n.name], high[n.name] = np.minimum(low[n.name], lo), np.maximum(high[n.name], hi)

    for batch, step in batches(calibration, BATCH, stage(progress, "ADC ranges")):
        for name in batch:
            watch(name, batch[name])
        interp.run(source, batch, watch=watch, progress=step)
    out = {}
    for name in banks:
        magnitude = np.maximum(np.maximum(np.abs(high[name]), np.abs(low[name])), 1e-30)
        pad = np.maximum(headroom * (high[name] - low[name]), 1e-5 * magnitude) + margin[name]  # float32 keeps lo < hi
        out[name] = np.stack([low[name] - pad, high[name] + pad], axis=-1)
    return out


def _margins(n, consts, profile, bound: bool):
    """Bank ``n``'s read-error margins (G, R, Q, B) of ``adc_ranges`` and, with ``bound``, its ADC
    ranges from the bound without calibration data (else None); a block of tile rows at a time."""
    noise = profile["noise"]
    vmax = _channel_powers(n, consts, None)  # (G, Q, C)
    margin = np.empty(consts[n.inputs[1]].shape[:4])
    ranges = np.empty(margin.shape + (2,)) if bound else None
    for rows, weights in _weight_blocks(n, consts, profile):
        margin[:, rows] = ERROR_SIGMAS * np.sqrt(
            noise["weight_sigma"] ** 2 * (vmax ** 2).sum(axis=-1)[:, None, :, None]
            + noise["rin_sigma"] ** 2 * np.einsum("grqbc,gqc->grqb", weights ** 2, vmax ** 2))
        if bound:
            low = np.einsum("grqbc,gqc->grqb", np.minimum(weights, 0), vmax)
            high = np.einsum("grqbc,gqc->grqb", np.maximum(weights, 0), vmax)
            magnitude = np.maximum(np.maximum(np.abs(high), np.abs(low)), 1e-30)
            ranges[:, rows] = np.stack([low - margin[:, rows],
                                        np.maximum(high, low + 1e-6 * magnitude) + margin[:, rows]], axis=-1)
    return margin, ranges


def _channel_powers(n, consts, x):
    """Optical input powers v (P, G, Q, C), float32, of bank ``n`` for its input vectors x (P, G*K)
    (im2col rows for a convolution); for x None, the largest power each channel can carry (G, Q, C)."""
    tiles, lo, alpha = consts[n.inputs[1]], consts[n.inputs[3]].astype(np.float64), consts[n.inputs[4]].astype(np.float64)
    groups, _, q, _, c = tiles.shape
    k = lo.shape[1]
    if x is None:  # every channel at its largest power: u = alpha and the complement alpha too
        parts = [alpha[None]] if n.attrs.get("signed") else [alpha[None], alpha[None]]
        v = np.concatenate(parts + [np.full((1, groups, 1), n.attrs.get("carrier", 1.0))], axis=-1)
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (q * c - v.shape[-1],))], axis=-1)
        return v.reshape(groups, q, c)
    u = np.clip(x.reshape(-1, groups, k) - lo, 0, alpha).astype(np.float32)
    alpha = alpha.astype(np.float32)
    parts = [u] if n.attrs.get("signed") else [u, alpha - u]
    v = np.zeros(u.shape[:-1] + (q * c,), np.float32)
    v[..., :k] = parts[0]
    if len(parts) == 2:
        v[..., k:2 * k] = parts[1]
    v[..., len(parts) * k] = n.attrs.get("carrier", 1.0)
    return v.reshape(v.shape[:-1] + (q, c))


def _partial_sum_extremes(n, consts, w, x):
    """min and max over samples and positions of every photodetector's partial sum per tile
    (G, R, Q, B), for the bank's ``_product_weights`` w: batched products over blocks of positions
    (float32: the ADC's resolution is far coarser); a convolution's input is unfolded whole samples
    or output rows of one sample at a time. A block's channel powers (p, G, Q, C) are formed at
    once (at most PRODUCT_BLOCK values), its products a span of tiles at a time, position-major
    (p, G, span, R*B) and again at most PRODUCT_BLOCK values, so that they stay in the core's cache
    for the min and max that read them. Position-major, each (g, q) product is a strided BLAS
    matrix on both sides and the min and max over positions are elementwise over contiguous rows
    (reducing a middle axis was 2-4x slower). Memory stays bounded whatever the image and batch."""
    groups, r, q, b, c = consts[n.inputs[1]].shape
    low, high = np.full((groups, q, r * b), np.inf), np.full((groups, q, r * b), -np.inf)
    # positions per block; r * b * c: each (g, q) product (p x C times C x R*B) stays below the size
    # from which OpenBLAS shares a product over its own threads (M N K = 2^18): the blocks are
    # already shared over the cores here, and two such calls at once ran 2x slower than one
    budget = max(1, PRODUCT_BLOCK // max(1, groups * q * c, groups * r * b, r * b * c))
    conv = n.attrs.get("conv")
    if conv:  # (N, *out, C, *k): blocks of whole samples, or of output rows of one sample
        cols = unfold(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
        lead = cols.shape[:cols.ndim - len(conv["kernel_shape"]) - 1]
        blocks = [cols[samples, rows] for samples, rows in
                  cpu.row_blocks(lead[0], lead[1], int(np.prod(lead[2:], dtype=np.int64)), budget)]
    else:
        flat = x.reshape(-1, x.shape[-1])
        blocks = [flat[r0:r0 + budget] for r0 in range(0, len(flat), budget)]

    def extremes(share):  # one thread's blocks, through one product buffer (no fresh pages per block)
        lo, hi = np.full((groups, q, r * b), np.inf, np.float32), np.full((groups, q, r * b), -np.inf, np.float32)
        buffer = np.empty(0, np.float32)
        for block in share:
            v = _channel_powers(n, consts, block.reshape(-1, groups * consts[n.inputs[3]].shape[1]))  # (p, G, Q, C)
            span = max(1, PRODUCT_BLOCK // (len(v) * groups * r * b))  # tiles per product
            for t in range(0, q, span):
                cut = slice(t, t + span)  # tile columns q of this product
                part = v[:, :, cut]
                size = part.size // c * r * b
                if buffer.size < size:
                    buffer = np.empty(size, np.float32)
                partial = buffer[:size].reshape(part.shape[:3] + (r * b,))  # (p, G, span, R*B)
                np.matmul(part.transpose(1, 2, 0, 3), w[:, cut], out=partial.transpose(1, 2, 0, 3))
                np.minimum(lo[:, cut], partial.min(axis=0), out=lo[:, cut])
                np.maximum(hi[:, cut], partial.max(axis=0), out=hi[:, cut])
        return lo, hi

    # the blocks, views of x (or of its unfolded view), dealt round-robin to the cores
    for lo, hi in cpu.threaded_map(extremes, [blocks[i::cpu.THREADS] for i in range(cpu.THREADS)]):
        low, high = np.minimum(low, lo), np.maximum(high, hi)
    return tuple(a.reshape(groups, q, r, b).transpose(0, 2, 1, 3) for a in (low, high))


PRODUCT_BLOCK = 1 << 18  # partial sums (and channel powers) formed at once for the ADC ranges (1 MB)
WEIGHT_BLOCK = 1 << 20  # ring weights decoded at once (float64 blocks of 8 MB, at least one row of tiles)


def _weight_blocks(n, consts, profile):
    """(slice of tile rows, the ring weights (G, r, Q, B, C) the noiseless device realises there, in
    float64) for the blocks of bank ``n``'s tile rows: no float64 copy of a whole layer."""
    tiles = consts[n.inputs[1]]
    for rows, _ in cpu.tile_row_blocks(tiles, tiles.shape[1] * tiles.shape[3], WEIGHT_BLOCK):
        yield rows, device_weights(tiles[:, rows], n.attrs, profile, np.float64)


def _product_weights(n, consts, profile) -> np.ndarray:
    """Bank ``n``'s realised ring weights as the right operand of its partial sums, float32
    (G, Q, C, R*B): column r*B + b is photodetector b of tile row r."""
    groups, r, q, b, c = consts[n.inputs[1]].shape
    w = np.empty((groups, q, c, r * b), np.float32)
    for rows, weights in _weight_blocks(n, consts, profile):
        w[..., rows.start * b:rows.start * b + weights.shape[1] * b] = (
            weights.transpose(0, 2, 4, 1, 3).reshape(groups, q, c, -1))
    return w
