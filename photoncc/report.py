"""The compile report: what the program does on the device, layer by layer, and what it costs.

Per optical layer (a Bank): its matrix, tiles and rings used of the ring count, the input range
(alpha) and shift, where the range came from and the calibration data's clipped fraction, and
estimates from the profile's ``timing`` and ``energy`` figures, per inference (one sample):

* positions P: input vectors per sample (output pixels of a convolution, 1 for a dense layer);
* passes = P x tiles: every tile (B x C rings, reprogrammed between tiles) sees every position;
* latency = tiles x reprogram_us + passes / clock  (tiles run one after another, batch 1);
* energy = P x rings_used x mac_pj + P x R x Q x C x dac_pj (every tile row re-reads its channels)
  + P x R x Q x B x adc_pj (one read per photodetector and tile) + tiles x reprogram_nj.

These are first-order estimates of the optical core only (no memory traffic, no electronic ops).
With quantisation or noise, ``add_quantisation_error`` adds each layer's SQNR on the calibration
data: the noiseless device (for a program compiled for a chip, that chip with its static errors)
against the model's own value (the IR interpreter on the imported graph).
"""
from __future__ import annotations

import numpy as np

from . import interp, ops
from .data import fixed_batches
from .ir import Graph
from .program import OPTICAL_OPS, Program, bank_channels, bank_inputs, mesh_inputs

ERROR_SAMPLES = 4  # per-layer SQNR on at most this many calibration samples: every tile read is simulated,
ERROR_READS = 1 << 28  # and on no more than one sample beyond this many reads (about a second of simulation)


def compile_report(device: Graph, profile, range_info: dict, mesh_facts: dict | None = None) -> dict:
    if profile["architecture"] == "mzi":
        report = _mesh_report(device, profile, range_info, mesh_facts or {})
    else:
        report = _ring_report(device, profile, range_info)
    return _with_split(report, device)


def is_optical(op: str) -> bool:
    """Whether an instruction of ``op`` runs optically: a layer (Bank, Mesh) or a photonic
    activation. MatMul and Einsum are "optical" in the registry for their products by constants,
    which become banks; one left in a program multiplies two activations, electronically."""
    found = ops.get(op)
    return op in OPTICAL_OPS or (found is not None and found.placement == "optical" and found.activation)


def layer_macs(n, g: Graph) -> int:
    """Multiply-accumulates per sample of the matrix product ``n`` of graph ``g`` at any stage: a
    Linear, Bank or Mesh (positions x rows x columns of its matrix over all groups: the model's own
    products, not the device form's doubled columns), or a product of two activations (MatMul,
    Einsum); 0 for other ops."""
    out = g.types[n.outputs[0]].shape if n.outputs and n.outputs[0] in g.types else ()
    conv = "conv" in n.attrs
    positions = int(np.prod(out[2:] if conv else out[1:-1], dtype=np.int64))
    if n.op == "Linear":
        w = g.consts[n.inputs[1]].shape
        return positions * int(np.prod(w, dtype=np.int64))
    if n.op in OPTICAL_OPS:
        named = mesh_inputs(n.inputs) if n.op == "Mesh" else bank_inputs(n.inputs)
        groups, m = g.consts[named["bias" if n.op == "Mesh" else "gain"]].shape
        return positions * groups * m * int(g.consts[named["lo"]].shape[1])
    if n.op == "MatMul":
        return int(np.prod(out[1:], dtype=np.int64)) * int(g.types[n.inputs[0]].shape[-1])
    if n.op == "Einsum":
        from .ops.products import parse_einsum
        parsed = parse_einsum(n.attrs.get("equation", ""), [len(g.types[i].shape) for i in n.inputs])
        if parsed is None:
            return 0
        sizes = {label: d for term, i in zip(parsed[0], n.inputs) for label, d in zip(term, g.types[i].shape)}
        batch = parsed[1][:1]
        return int(np.prod([d for label, d in sizes.items() if label != batch], dtype=np.int64))
    return 0


def mac_split(g: Graph) -> dict:
    """The graph's matrix products per sample: MACs on the optical layers (Linear before the
    banks, Bank or Mesh after), MACs of the electronic matrix products per op (products of two
    activations), the optical share of all of them (None when there is none), and the count of
    every other op per type (``electronic_ops``: before the banks every op but Linear)."""
    optical_macs, products, electronic = 0, {}, {}
    for n in g.nodes:
        macs = layer_macs(n, g)
        if n.op == "Linear" or n.op in OPTICAL_OPS:
            optical_macs += macs
            continue
        if macs:
            products[n.op] = products.get(n.op, 0) + macs
        if not is_optical(n.op):
            electronic[n.op] = electronic.get(n.op, 0) + 1
    total = optical_macs + sum(products.values())
    return {"optical": optical_macs, "electronic": sum(products.values()),
            "optical_share": optical_macs / total if total else None,
            "electronic_products": dict(sorted(products.items())), "electronic_ops": dict(sorted(electronic.items()))}


def _with_split(report: dict, device: Graph) -> dict:
    """The report with its layers' MACs and the optical share of all the MACs (``mac_split``)."""
    split = mac_split(device)
    by_name = {n.name: layer_macs(n, device) for n in device.nodes if n.op in OPTICAL_OPS}
    for layer in report["layers"]:
        layer["macs"] = by_name.get(layer["name"], 0)
    report["macs"] = {key: split[key] for key in ("optical", "electronic", "optical_share", "electronic_products")}
    if device.meta.get("unrolled"):  # passes/lower_recurrent: each step's recurrent bank holds its own copy of R
        report["unrolled"] = [dict(u) for u in device.meta["unrolled"]]
    return report


def _ring_report(device: Graph, profile, range_info: dict) -> dict:
    ring_count = profile.banks * profile.rings
    report = _layers_and_ops(device, "Bank", lambda n: _layer(n, device, profile, range_info, ring_count))
    return {"profile": profile.name, "ring_count": ring_count, **report}


def _layers_and_ops(device: Graph, op: str, layer) -> dict:
    """What every report holds: a ``layer(node)`` per optical layer of ``op``, the count of each
    electronic op, the activations and where they run, and the layers' totals."""
    layers, electronic, activations = [], {}, []
    for n in device.nodes:
        optical = is_optical(n.op)
        if ops.get(n.op).activation:
            activations.append({"name": n.name, "op": n.op, "placement": "optical" if optical else "electronic"})
        if n.op == op:
            layers.append(layer(n))
        elif not optical:
            electronic[n.op] = electronic.get(n.op, 0) + 1
    return {"layers": layers, "electronic_ops": dict(sorted(electronic.items())), "activations": activations,
            "optical_layers": len(layers), "tiles": sum(layer["tiles"] for layer in layers),
            "latency_us": round(sum(layer["latency_us"] for layer in layers), 6),
            "energy_nj": round(sum(layer["energy_nj"] for layer in layers), 6)}


def _layer(n, device: Graph, profile, range_info: dict, ring_count: int) -> dict:
    named = bank_inputs(n.inputs)
    tiles = device.consts[named["tiles"]].shape  # (G, R, Q, B, C)
    groups, m = device.consts[named["gain"]].shape
    alpha = device.consts[named["alpha"]]
    channels = bank_channels(n.attrs, alpha.shape[1]).count
    out = device.types[n.outputs[0]].shape
    positions = int(np.prod(out[2:])) if "conv" in n.attrs else int(np.prod(out[1:-1]))
    count = int(np.prod(tiles[:3]))
    rows, cols = tiles[1], tiles[2]
    rings_used = groups * m * channels
    timing, energy = profile["timing"], profile["energy"]
    passes = positions * count
    rng = range_info.get(n.inputs[0], {})
    return {
        "name": n.name, "kind": "conv" if "conv" in n.attrs else "dense", "placement": "optical",
        "matrix": [groups * m, groups * channels], "tiles": count, "rings_used": rings_used,
        "ring_count": ring_count, "positions": positions, "passes": passes,
        "alpha": [float(alpha.min()), float(alpha.max())] if alpha.size else [0.0, 0.0],
        "shift": n.attrs["shift"], "range_source": rng.get("source"), "clipped_fraction": rng.get("clipped"),
        "latency_us": round(count * timing["reprogram_us"] + passes / (timing["clock_ghz"] * 1e3), 6),
        "energy_nj": round((positions * rings_used * energy["mac_pj"]
                            + positions * groups * rows * cols * tiles[4] * energy["dac_pj"]
                            + positions * groups * rows * cols * tiles[3] * energy["adc_pj"]) / 1e3
                           + count * energy["reprogram_nj"], 6),
    }


def _mesh_report(device: Graph, profile, range_info: dict, facts: dict) -> dict:
    """The report of a program for MZI meshes (architecture mzi): per Mesh layer its matrix, tiles
    (settings of the chip's mesh pair), MZIs set, phase statistics and, compiled for a chip, the
    MZIs that cannot be set exactly, the meshes' fidelity before and after the local correction
    and the tiles' detected error before and after error-aware programming (``_mesh_layer``)."""
    from .devices.mzi_mesh import mzi_count
    n_ports = profile["mesh"]["ports"]
    found = _layers_and_ops(device, "Mesh", lambda n: _mesh_layer(n, device, profile, range_info, facts))
    report = {"profile": profile.name, "architecture": "mzi", "ports": n_ports, "mzi_count": 2 * mzi_count(n_ports),
              **found, "mzis": sum(layer["mzis"] for layer in found["layers"])}
    chip_layers = [layer["chip"] for layer in found["layers"] if "chip" in layer]
    if chip_layers:
        report["chip"] = {"unreachable_mzis": sum(c["unreachable_mzis"] for c in chip_layers),
                          "fidelity_before": round(float(np.mean([c["fidelity_before"] for c in chip_layers])), 9),
                          "fidelity_after": round(float(np.mean([c["fidelity_after"] for c in chip_layers])), 9),
                          "tile_error_before": round(float(np.mean([c["tile_error_before"] for c in chip_layers])), 9),
                          "tile_error_after": round(float(np.mean([c["tile_error_after"] for c in chip_layers])), 9),
                          "refine_steps": chip_layers[0]["refine_steps"]}
    return report


def _mesh_layer(n, device: Graph, profile, range_info: dict, facts: dict) -> dict:
    """One Mesh layer of the report; the estimates count N^2 MACs, N DAC and N ADC conversions per
    tile pass."""
    from .devices.mzi_mesh import decode, mzi_count
    n_ports, timing, energy = profile["mesh"]["ports"], profile["timing"], profile["energy"]
    named = mesh_inputs(n.inputs)
    phases = device.consts[named["phases"]]
    groups, m = device.consts[named["bias"]].shape
    alpha = device.consts[named["alpha"]]
    count = int(np.prod(phases.shape[:3]))
    out = device.types[n.outputs[0]].shape
    positions = int(np.prod(out[2:])) if "conv" in n.attrs else int(np.prod(out[1:-1]))
    passes = positions * count
    theta = decode(phases[..., 0], n.attrs["phase_bits"])
    extreme = np.sin(theta / 2.0) ** 2
    rng = range_info.get(n.inputs[0], {})
    layer = {
        "name": n.name, "op": "Mesh", "kind": "conv" if "conv" in n.attrs else "dense", "placement": "optical",
        "matrix": [groups * m, groups * alpha.shape[1]], "tiles": count, "ports": n_ports,
        "mzis": 2 * count * mzi_count(n_ports), "positions": positions, "passes": passes,
        "alpha": [float(alpha.min()), float(alpha.max())] if alpha.size else [0.0, 0.0],
        "range_source": rng.get("source"), "clipped_fraction": rng.get("clipped"),
        "phases": {"theta_mean": round(float(theta.mean()), 6) if theta.size else 0.0,
                   "theta_std": round(float(theta.std()), 6) if theta.size else 0.0,
                   "near_bar_or_cross": round(float(np.mean((extreme < 0.01) | (extreme > 0.99))), 6)
                   if theta.size else 0.0},
        "latency_us": round(count * timing["reprogram_us"] + passes / (timing["clock_ghz"] * 1e3), 6),
        "energy_nj": round(passes * (n_ports * n_ports * energy["mac_pj"] + n_ports * energy["dac_pj"]
                                     + n_ports * energy["adc_pj"]) / 1e3 + count * energy["reprogram_nj"], 6),
    }
    found = facts.get(n.name, {})
    if "fidelity_after" in found:
        layer["chip"] = {"unreachable_mzis": sum(found["unreachable"]),
                         "fidelity_before": round(float(np.mean(found["fidelity_before"])), 9),
                         "fidelity_after": round(float(np.mean(found["fidelity_after"])), 9),
                         "worst_fidelity_after": round(float(np.min(found["fidelity_after"])), 9),
                         "tile_error_before": round(float(np.mean(found["tile_error_before"])), 9),
                         "tile_error_after": round(float(np.mean(found["tile_error_after"])), 9),
                         "worst_tile_error_after": round(float(np.max(found["tile_error_after"])), 9),
                         "refine_steps": found["refine_steps"]}
    return layer


def error_samples(report: dict, profile) -> int:
    """How many calibration samples the per-layer SQNR runs on: as many as keep the tile reads
    within ERROR_READS, at least one and at most ERROR_SAMPLES (one sample of an ImageNet network
    has hundreds of millions of reads, and of values enough)."""
    outputs = profile["bank"]["banks"] if "bank" in profile else profile["mesh"]["ports"]  # reads per pass
    reads = sum(layer["passes"] for layer in report["layers"]) * outputs  # per sample
    return min(ERROR_SAMPLES, max(1, ERROR_READS // max(1, reads)))


def error_layers(g: Graph) -> list[str]:
    """The values of the device graph ``g`` whose SQNR the report gives: every Bank's output, except
    the inputs of photonic activations (a device value that is no layer output of the model)."""
    photonic_inputs = {n.inputs[0] for n in g.nodes if n.op == "PhotonicSigmoid"}
    return [n.outputs[0] for n in g.nodes if n.op in ("Bank", "Mesh") and n.outputs[0] not in photonic_inputs]


def model_values(source: Graph, feeds: dict, names) -> dict:
    """The model's own values named in ``names`` on ``feeds``: the interpreter on ``source``, the
    imported graph. A model exported with a fixed batch (``meta["dynamic_batch"]`` false, as
    PyTorch's dynamo exporter writes by default) runs that many samples at a time: its reshapes
    are written for that batch."""
    wanted = set(names)
    if source.meta.get("dynamic_batch", True) or not source.inputs:
        values = {}
        interp.run(source, feeds, watch=lambda name, value: values.__setitem__(name, value) if name in wanted else None)
        return values
    parts: dict[str, list] = {name: [] for name in wanted}
    for batch, count in fixed_batches(feeds, source.types[source.inputs[0]].shape[0]):
        interp.run(source, batch, watch=lambda name, value: parts[name].append(value[:count]) if name in wanted else None)
    return {name: np.concatenate(chunks) for name, chunks in parts.items() if chunks}


def add_quantisation_error(program: Program, reference: dict, device: dict) -> None:
    """Each layer's SQNR (dB) on the first ``error_samples`` calibration samples: ``device``, the
    noiseless device's values of ``error_layers`` on them (every tile read simulated), against
    ``reference``, the model's own (``model_values``)."""
    report = program.manifest["report"]
    names = list(device)
    by_output = {i["outputs"][0]: i["name"] for i in program.instructions if i["op"] in ("Bank", "Mesh")}
    sqnr = {}
    for name in names:
        if name in reference:
            ref = np.asarray(reference[name], np.float64)
            noise = float(np.sum((device[name] - ref) ** 2))
            sqnr[by_output[name]] = round(10 * np.log10(float(np.sum(ref ** 2)) / noise), 2) if noise > 0 else None
    for layer in report["layers"]:
        layer["sqnr_db"] = sqnr.get(layer["name"])
