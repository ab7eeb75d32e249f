"""emit: the device graph (after tile_banks) -> a Program (program.py).

Every node becomes one instruction ``{op, name, inputs, outputs, attrs, placement}``: ``Bank`` runs
on the photonic banks (placement "optical"), every other op on the electronic side after the ADC.
Constants become program tensors. The manifest also records the source model, the profile, the
input specs with the ranges the program was calibrated for, the compile report, and a known-answer
test: input samples (the first calibration samples) and the outputs the (noiseless) device
computes for them at compile time,
which the simulator re-checks on every load: a program that no longer computes what was compiled
(edited weights, a changed simulator) is caught before it runs. Where the statistical noise model
covers layers of the profile, the output of that model's noiseless form is recorded too, so that a
statistical run checks the form it runs without reading every tile. Besides the outputs, the test
records the values of the final optical layers (``final_banks``): a classifier's softmax saturates on
a sample it is sure of, which hides from its output a change to every weight of the network.
"""
from __future__ import annotations

import numpy as np

from . import __version__
from .ir import Graph
from .program import OPTICAL_OPS, Program, bank_channels, bank_inputs, mesh_inputs
from .progress import stage
from .report import is_optical
from .sim import KAT_LAYERS, Simulator, statistical_covers

KAT_RTOL = 1e-5


def bank_summary(attrs: dict, tiles_shape, gain_shape, lo_shape) -> dict:
    """A bank instruction's shape, for the program's readers: its groups, matrix rows, channels
    (``program.bank_channels``: 2K + 1 on an incoherent bank, K + 1 on a balanced one), tiles and
    the rings its matrices use."""
    groups, r, q, banks, rings = tiles_shape
    m, channels = gain_shape[1], bank_channels(attrs, lo_shape[1]).count
    return {"groups": groups, "rows": m, "channels": channels, "tile_grid": [groups, r, q],
            "tiles": groups * r * q, "rings_used": groups * m * channels}


def mesh_summary(attrs: dict, phases_shape, bias_shape, lo_shape) -> dict:
    """A Mesh instruction's shape, for the program's readers: its groups, matrix rows and columns,
    tiles (each one setting of the chip's mesh pair) and the MZIs they set."""
    groups, r, q = phases_shape[:3]
    mzis = phases_shape[4]
    return {"groups": groups, "rows": bias_shape[1], "columns": lo_shape[1], "ports": attrs["ports"],
            "tile_grid": [groups, r, q], "tiles": groups * r * q, "mzis": 2 * mzis * groups * r * q}


def emit(g: Graph, profile: dict, input_ranges: dict, kat_feeds: dict, report: dict,
         keep=(), progress=None) -> tuple[Program, dict]:
    """The program, and the values named in ``keep`` that its known-answer run (per-read model,
    noiseless) computed on ``kat_feeds`` (the compile report's SQNR reads them: one simulation of
    every tile read, not two). ``progress(done, total, stage)``: loading the device and running
    the known-answer test, for each noise model the program records (photoncc/progress.py)."""
    instructions = []
    for n in g.nodes:
        inst = {"op": n.op, "name": n.name, "inputs": list(n.inputs), "outputs": list(n.outputs),
                "attrs": dict(n.attrs), "placement": "optical" if is_optical(n.op) else "electronic"}
        if n.op == "Bank":
            named = bank_inputs(n.inputs)
            inst["bank"] = bank_summary(n.attrs, *(g.consts[named[key]].shape for key in ("tiles", "gain", "lo")))
        elif n.op == "Mesh":
            named = mesh_inputs(n.inputs)
            inst["mesh"] = mesh_summary(n.attrs, *(g.consts[named[key]].shape for key in ("phases", "bias", "lo")))
        instructions.append(inst)
    manifest = {
        "photoncc": __version__,
        "source": {k: g.meta.get(k) for k in ("source", "sha256", "opset", "producer")},
        "profile": dict(profile),
        "batch": None if g.meta.get("dynamic_batch", True) else g.types[g.inputs[0]].shape[0],
        "inputs": [{"name": i, "shape": list(g.types[i].shape[1:]), "dtype": g.types[i].dtype,
                    "lo": [float(v) for v in input_ranges[i][0]],
                    "hi": [float(v) for v in input_ranges[i][1]]} for i in g.inputs],
        "outputs": [{"name": o, "shape": list(g.types[o].shape[1:]), "dtype": g.types[o].dtype}
                    for o in g.outputs],
        "instructions": instructions,
        "report": report,
    }
    tensors = dict(g.consts)
    kat = {"inputs": {}, "outputs": {}, "rtol": KAT_RTOL}
    for name, value in kat_feeds.items():
        tensors[f"kat/inputs/{name}"] = np.asarray(value)
        kat["inputs"][name] = f"kat/inputs/{name}"
    program = Program({**manifest, "kat": kat}, tensors)
    forms = [("per-read", "outputs")]
    if any(i["op"] == "Bank" and statistical_covers(i["attrs"], profile) for i in instructions):
        forms.append(("statistical", "statistical"))  # otherwise the per-read test serves both models
    layers = final_banks(instructions, g.outputs)
    kept = {}
    for model, key in forms:
        named = "" if model == "per-read" else f" ({model} model)"
        device = Simulator(program, noiseless=True, noise_model=model,
                           progress=stage(progress, "loading the device" + named))
        values = device.run(kat_feeds, keep=list(dict.fromkeys(layers + list(keep if model == "per-read" else ()))),
                            progress=stage(progress, "known-answer test" + named))
        for group, names in ((key, g.outputs), (KAT_LAYERS[key], layers)):
            if names:
                kat[group] = {name: f"kat/{group}/{name}" for name in names}
                tensors.update({f"kat/{group}/{name}": np.asarray(values[name]) for name in names})
        if model == "per-read":
            kept = {name: values[name] for name in keep}
        del device, values  # before the next model's device is loaded
    return Program({**manifest, "kat": kat}, tensors), kept


KEEP_SAMPLES = 32  # calibration samples a program keeps for verify's default inputs,
KEEP_BYTES = 8 << 20  # at most this many bytes of them (at least one sample)


def keep_samples(program: Program, calibration: dict | None) -> None:
    """Keep up to KEEP_SAMPLES calibration samples (and within KEEP_BYTES; at least one), spread
    evenly over the calibration set, in ``program`` (tensors ``samples/<input name>``, manifest
    section ``samples``): ``verify`` without ``--inputs`` runs them, representative data where
    uniform draws inside the input ranges drive a CNN's inner layers far outside theirs. Without
    calibration data the program keeps none."""
    if not calibration:
        return
    count = len(next(iter(calibration.values())))
    per_sample = sum(np.asarray(v[:1]).nbytes for v in calibration.values())
    keep = max(1, min(KEEP_SAMPLES, count, KEEP_BYTES // max(1, per_sample)))
    indices = np.unique(np.linspace(0, count - 1, keep).round().astype(np.int64))
    section = {"count": int(len(indices)), "source": "calibration", "of": int(count), "inputs": {}}
    for name, value in calibration.items():
        program.tensors[f"samples/{name}"] = np.ascontiguousarray(np.asarray(value)[indices])
        section["inputs"][name] = f"samples/{name}"
    program.manifest["samples"] = section


def final_banks(instructions: list, outputs) -> list[str]:
    """The values of the Bank instructions that reach a program output through electronic ops only
    (the last optical layers), except those that are outputs themselves; in program order."""
    producer = {name: inst for inst in instructions for name in inst["outputs"] if name}
    found, stack, seen = set(), list(outputs), set()
    while stack:
        inst = producer.get(stack.pop())
        if inst is None or inst["name"] in seen:
            continue
        seen.add(inst["name"])
        if inst["op"] in OPTICAL_OPS:
            found.add(inst["outputs"][0])
        else:
            stack.extend(name for name in inst["inputs"] if name)
    return [i["outputs"][0] for i in instructions if i["outputs"][0] in found - set(outputs)]
