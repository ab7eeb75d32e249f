"""adc_ranges: give every photodetector its ADC input range per tile (profiles with ADCs).

Per Bank, per tile and photodetector (G, R, Q, B, 2): the range [lo, hi] of its partial sums
(``devices.ring_adc``), stored as a sixth input ``<layer>.adc``.

With calibration data: the smallest and largest partial sum that photodetector reads on it,
widened by ``headroom`` of the width on each side. A bank's inputs are the values the graph
before the banks (``ctx.layers``: its Linear layers compute the model's own values, one direct
product each) gives it, which the noiseless device approximates; not the interpreter's values of
the quantised graph, which reads the codes without the crosstalk they compensate and so drifts far
from the device from the second layer on. Without calibration data: the bound of the partial sums
at the largest channel powers, which no input inside the ranges leaves. T are the weights the
device realises (codes with the profile's thermal crosstalk). Both are then widened by the
read-error margin (``ring_adc.margins``): without it a photodetector whose reads hardly vary
(complement channels, the bias carrier) has a range far narrower than the device's read errors
and saturates on every read.

Requires: quantise_banks. Ensures: every bank has an ADC range with lo < hi per photodetector and
tile (when the profile has ADCs); the graph otherwise unchanged. Drops ``ctx.layers``.
"""
from __future__ import annotations

import numpy as np

from .. import interp
from ..data import batches
from ..devices import ring_adc
from ..ir import Graph, fresh_name, type_of
from ..program import bank_input_list, bank_inputs
from ..progress import stage
from ..ranges import BATCH


def adc_ranges(g: Graph, ctx) -> Graph:
    if not ctx.profile["precision"]["output_bits"]:
        return g
    if any(n.op == "Mesh" for n in g.nodes):
        return mesh_adc_ranges(g, ctx)
    ranges = measure_adc_ranges(g, ctx.layers, ctx.calibration, ctx.range_headroom, ctx.profile, ctx.progress)
    ctx.layers = None  # its weights are not needed after the ADC calibration
    consts, types, nodes = dict(g.consts), dict(g.types), []
    for n in g.nodes:
        if n.op == "Bank" and n.name in ranges:
            named = bank_inputs(n.inputs)
            named["adc"] = fresh_name(types, f"{n.name}.adc")
            consts[named["adc"]] = ranges[n.name].astype(np.float32)
            types[named["adc"]] = type_of(consts[named["adc"]])
            n = n.replace(inputs=bank_input_list(named))
        nodes.append(n)
    return g.replace(nodes=tuple(nodes), consts=consts, types=types)


def mesh_adc_ranges(g: Graph, ctx) -> Graph:
    """Every Mesh's ADC ranges (G, R, Q, N, 2), per tile and output port: the smallest and largest
    homodyne read on the calibration data (the model's own values at the layer's input, from the
    graph before the meshes) through the tiles the chip realises (``ctx.chip``'s errors, else an
    ideal chip), or without calibration data the bound sum_j |T_ij| of the reads; widened by
    ``headroom`` of the width and by the read-noise and static-error margin: 4 (detector_sigma +
    rin_sigma) of the width, and, compiled without a chip for a profile with static errors,
    2 sqrt(2 N) (phase_sigma + splitter_sigma) times the range's magnitude (the reads' spread on
    a chip it was not programmed for). Drops ``ctx.layers``."""
    from ..devices import mzi
    from ..ops.conv import im2col
    from ..program import mesh_input_list, mesh_inputs
    profile = ctx.profile
    meshes = {n.name: n for n in g.nodes if n.op == "Mesh"}
    errors = ctx.chip.mesh_errors() if ctx.chip is not None else (None, None)
    tensors = {name: {k: g.consts[v] for k, v in mesh_inputs(n.inputs).items() if v and k != "x"}
               for name, n in meshes.items()}
    matrices = {name: mzi.realised_tiles(tensors[name], n.attrs, profile, errors, np.complex64)  # as the simulator
                for name, n in meshes.items()}
    low = {name: np.full(matrices[name].shape[:4], np.inf) for name in meshes}
    high = {name: np.full(matrices[name].shape[:4], -np.inf) for name in meshes}
    by_input: dict[str, list] = {}
    for n in meshes.values():
        by_input.setdefault(n.inputs[0], []).append(n)
    if ctx.calibration is None:
        for name, t in matrices.items():
            bound = np.abs(t).sum(axis=-1)
            low[name], high[name] = -bound, bound
    else:
        def watch(name, value):
            for n in by_input.get(name, ()):
                conv = n.attrs.get("conv")
                x = np.asarray(value)
                if conv:
                    x = im2col(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
                lo, hi = mzi.read_extremes(matrices[n.name], x.reshape(-1, x.shape[-1]), tensors[n.name]["lo"],
                                           tensors[n.name]["alpha"])
                low[n.name], high[n.name] = np.minimum(low[n.name], lo), np.maximum(high[n.name], hi)

        for batch, step in batches(ctx.calibration, BATCH, stage(ctx.progress, "ADC ranges")):
            for name in batch:
                watch(name, batch[name])
            interp.run(ctx.layers, batch, watch=watch, progress=step)
    ctx.layers = None
    noise = profile["noise"]
    static = 0.0 if ctx.chip is not None else \
        2.0 * np.sqrt(2.0 * profile["mesh"]["ports"]) * (noise["phase_sigma"] + noise["splitter_sigma"])
    consts, types, nodes = dict(g.consts), dict(g.types), []
    for n in g.nodes:
        if n.op == "Mesh":
            lo, hi = low[n.name], high[n.name]
            magnitude = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), 1e-30)
            width = hi - lo
            pad = (np.maximum(ctx.range_headroom * width, 1e-5 * magnitude)
                   + 4.0 * (noise["detector_sigma"] + noise["rin_sigma"]) * np.maximum(width, magnitude)
                   + min(static, 1.0) * magnitude)
            named = mesh_inputs(n.inputs)
            named["adc"] = fresh_name(types, f"{n.name}.adc")
            consts[named["adc"]] = np.stack([lo - pad, hi + pad], axis=-1)
            types[named["adc"]] = type_of(consts[named["adc"]])
            n = n.replace(inputs=mesh_input_list(named))
        nodes.append(n)
    return g.replace(nodes=tuple(nodes), consts=consts, types=types)


def measure_adc_ranges(g: Graph, source: Graph, calibration: dict | None, headroom: float, profile,
                       progress=None) -> dict[str, np.ndarray]:
    """Per Bank of the quantised graph ``g`` (by name), its ADC ranges (G, R, Q, B, 2); see the
    module docstring. ``progress(done, total, stage)``: the banks whose margins are done (stage "ADC
    margins"), then the calibration samples run ("ADC ranges"; photoncc/progress.py)."""
    banks = {n.name: n for n in g.nodes if n.op == "Bank"}
    tensors = {name: {k: g.consts[v] for k, v in bank_inputs(n.inputs).items() if v and k != "x"}
               for name, n in banks.items()}
    by_input: dict[str, list] = {}
    for n in banks.values():
        by_input.setdefault(n.inputs[0], []).append(n)
    margin, out = {}, {}
    for index, (name, n) in enumerate(banks.items()):  # a block of one bank's weights at a time
        margin[name], out[name] = ring_adc.margins(tensors[name], n.attrs, profile, bound=calibration is None)
        if progress is not None:
            progress(index + 1, len(banks), "ADC margins")
    if calibration is None:
        return out
    low = {name: np.full(tensors[name]["tiles"].shape[:4], np.inf) for name in banks}
    high = {name: np.full(tensors[name]["tiles"].shape[:4], -np.inf) for name in banks}

    def watch(name, value):
        for n in by_input.get(name, ()):
            bank = tensors[n.name]
            lo, hi = ring_adc.partial_sum_extremes(bank, n.attrs, ring_adc.product_weights(bank, n.attrs, profile),
                                                   np.asarray(value))
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
