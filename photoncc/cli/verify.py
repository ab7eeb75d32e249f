"""``photoncc verify``: a program (or a model compiled in memory) against the original model."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from .. import text
from ..errors import UserError
from ..files import output_path, write_files
from ..sim import DEFAULT_NOISE_MODEL, NOISE_MODELS
from . import common
from .app import cli


@cli.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path),
              help="The original ONNX model [default: the one recorded in the program].")
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="Profile to compile for when TARGET is an ONNX model.")
@click.option("--inputs", type=click.Path(path_type=Path),
              help="Samples (.npz) to compare on [default: the calibration samples kept in the program; for a "
                   "program compiled without calibration data, seeded samples drawn inside the recorded input "
                   "ranges].")
@click.option("--calibration", type=click.Path(path_type=Path),
              help="When TARGET is an ONNX model: calibration data [default: the --inputs].")
@click.option("--input-range", "input_range", metavar="LO,HI",
              help="When TARGET is an ONNX model: declared range of its inputs.")
@click.option("--samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="Without --inputs: how many of the kept calibration samples to compare on, or how many "
                   "to draw.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed for drawn inputs and device noise.")
@click.option("--noiseless", is_flag=True, help="Judge a noisy profile's program at the quantised tier (no noise).")
@click.option("--trials", type=click.IntRange(min=1), help="Noisy tier: seeded runs [default: profile].")
@click.option("--noise-model", type=click.Choice(NOISE_MODELS), default=DEFAULT_NOISE_MODEL, show_default=True,
              help=common.NOISE_MODEL_HELP)
@click.option("--rtol", type=click.FloatRange(min=0), help="Max error relative to each output's range [default: profile].")
@click.option("--top1", type=click.FloatRange(0, 1), help="Min top-1 agreement on classifier outputs [default: profile].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the report as JSON.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), help="Write the report as JUnit XML.")
@common.DEVICE_OPTION
@click.option("--chip", "chip_path", type=click.Path(path_type=Path),
              help="Run on this chip's static errors (.npz from `photoncc chip` or `calibrate`) instead of drawing "
                   "them from each trial's seed; an ONNX TARGET is compiled for it.")
def verify(target, model, profile_spec, inputs, calibration, input_range, samples, seed, noiseless, trials,
           noise_model, rtol, top1, json_path, junit_path, device, chip_path):
    """Check that TARGET's device outputs match the original model's (run by onnxruntime).

    TARGET is a program (.pcc) or an ONNX model (compiled in memory for -p). The tier follows the
    profile: exact (float), quantised (quantised; or any profile with --noiseless) or noisy
    (--trials seeded runs, a statistical verdict). Exit 0 when every output is within the
    thresholds, 1 when not, 2 when an input is unusable.
    """
    from ..profile import Profile
    from ..sim.backend import backend
    from ..verify import draw_inputs, junit_xml, kept_samples, report_json, thresholds, verify as run_verify
    backend(device)  # a missing CuPy or GPU is said before anything runs
    given, outputs = {"TARGET": target, "--model": model, "--inputs": inputs, "--calibration": calibration,
                      "-p": common.profile_file(profile_spec), "--chip": chip_path}, {}
    for path, option in ((json_path, "--json"), (junit_path, "--junit")):
        if path:
            output_path(path, option, given, outputs)
    progress = common.Progress("verify")
    if target.suffix == ".onnx":
        chip = common.chip(chip_path, common.profile(profile_spec))
        program, model, feeds, labels = _compiled_target(target, model, profile_spec, inputs, calibration,
                                                         input_range, progress, chip)
        program_path = f"{target} compiled in memory for {profile_spec}"
    else:
        program = common.load_program(target)
        chip = common.chip(chip_path, program.manifest["profile"])
        model = _source_model(target, model, program)
        program_path = str(target)
        feeds, labels = common.feeds_for_program(program, inputs) if inputs else (None, None)
    note = f"{inputs}"
    if feeds is None:
        feeds = kept_samples(program, samples)
        if feeds is not None:
            note = f"{len(next(iter(feeds.values())))} calibration samples kept in the program"
            common.say(f"photoncc: no --inputs given: comparing on the {note}")
        else:
            if any(np.isnan(s["lo"]).any() for s in program.manifest["inputs"]):
                raise UserError(f"{target}: the program records no input ranges (compiled without calibration "
                                "data or --input-range); pass --inputs DATA.npz")
            feeds = draw_inputs(program, samples, seed)
            note = f"{samples} samples drawn uniformly inside the recorded input ranges (seed {seed})"
            common.say(f"photoncc: no --inputs given: comparing on {note} (the program keeps no calibration samples: "
                 "compiled without calibration data)")
    profile = Profile(program.manifest["profile"])
    tier = profile.tier(noiseless)
    limits = thresholds(profile, tier, program, rtol, top1)
    if trials is not None:
        limits["trials"] = trials
    with progress:
        report = run_verify(program, str(model), feeds, labels, tier=tier, limits=limits, seed=seed,
                            inputs_note=note, program_path=program_path, progress=progress, noise_model=noise_model,
                            device=device, **({} if chip is None else {"chip": chip}))
    files = {json_path: report_json(report).encode(), junit_path: junit_xml(report).encode()}
    write_files({path: data for path, data in files.items() if path})  # before the verdict is printed
    for line in text.verify_lines(report):
        click.echo(line)
    sys.exit(0 if report["passed"] else 1)


def _compiled_target(target: Path, model, profile_spec, inputs, calibration, input_range, progress, chip=None):
    """verify of an ONNX model: (the program compiled in memory, the model, feeds, labels). The
    model is read once: its graph gives the inputs' specs, then is handed to the compile."""
    from ..compiler import compile_model, input_specs, load_calibration
    from ..data import load_npz, match_inputs
    from ..importer import import_model
    from ..ir import Handover
    if model is not None and Path(model).resolve() != target.resolve():
        raise UserError(f"--model {model}: TARGET {target} is an ONNX model, compiled in memory and compared "
                        "with itself; --model names the source model of a program (.pcc) TARGET")
    graph = Handover(import_model(target))  # compile_model frees its weights as it goes
    feeds = labels = None
    if inputs:
        feeds, labels = match_inputs(inputs, load_npz(inputs), input_specs(graph.peek()))
    cal = load_calibration(calibration, graph.peek()) if calibration else feeds
    with progress:
        program = compile_model(graph, common.profile(profile_spec), cal, common.input_range(input_range), progress=progress,
                                **({} if chip is None else {"chip": chip}))
    return program, target, feeds, labels


def _source_model(target: Path, model, program):
    """The model a program (.pcc) is verified against: ``--model``, else the one it records, as given to
    compile (relative to the folder compile ran in) or next to the program."""
    recorded = program.manifest["source"].get("source")
    if model is None and recorded:
        candidates = [Path(recorded), target.parent / Path(recorded).name]
        model = next((c for c in candidates if c.is_file()), Path(recorded))
    if model is None:
        raise UserError(f"{target}: the program records no source model; pass --model MODEL.onnx")
    if not Path(model).exists():
        raise UserError(f"{model}: the source model recorded in {target} is not there; pass --model MODEL.onnx")
    return model
