"""The ``photoncc`` command line (contract: docs/cli.md). The only module that prints.

Exit codes: 0 success; 1 ``verify`` ran and the outputs are not equivalent; 2 unusable input (one
line ``photoncc: error: ...`` on stderr, or a list for unsupported nodes; no traceback unless
``--debug``); 3 an internal error (a bug in photoncc).
"""
from __future__ import annotations

import io
import json
import sys
import time
import traceback
import warnings
from pathlib import Path

import click
import numpy as np

from . import __version__, text
from .errors import UserError
from .files import output_path, write_files
from .sim import DEFAULT_NOISE_MODEL, DEVICES, NOISE_MODELS

DEVICE_OPTION = click.option(
    "--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
    help='Where the per-read tile reads run: the CPU\'s cores, or an NVIDIA GPU (CuPy: pip install "photoncc[gpu]").')
DEBUG_FLAG = "--debug"
NOISE_MODEL_HELP = ("Noisy profiles: statistical (the default) draws one Gaussian per output with the variance its "
                    "tile reads add up to, for every layer whose detector noise dithers its ADC (validated against "
                    "per-read: docs/accuracy.md); per-read simulates every tile read (RIN, detector noise, ADC "
                    "rounding and saturation), as the device does, for sign-off. Layers the statistical model does "
                    "not cover run per read either way.")


# ---------------------------------------------------------------------- helpers

def _profile(spec):
    from .profile import load_profile
    return load_profile(spec)


def _input_range(text: str | None):
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--input-range {text!r}: expected LO,HI (two numbers, e.g. 0,1)") from None
    if not lo <= hi:
        raise UserError(f"--input-range {text!r}: LO must not exceed HI")
    return lo, hi


def _profile_file(spec: str):
    """A ``-p`` argument that names a file (not a built-in profile), else None."""
    return Path(spec) if spec and Path(spec).is_file() else None


def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _say(message: str) -> None:
    click.echo(message, err=True)


def _warn_layers(fractions: dict, what: str, short: str) -> None:
    for line in text.worst_layers(fractions, what, short):
        _say(f"photoncc: warning: {line}" + ("; compile with calibration data that covers your inputs"
                                             if line.startswith("layer ") else ""))


class Progress:
    """A progress bar on stderr, shown only on a terminal and only once the work has run 2 s.

    Called as ``progress(done, total)`` or, for work in stages, ``progress(done, total, stage)``
    (photoncc/progress.py): each stage gets its own line, ended when its ``done`` reaches
    ``total`` or the next stage begins. Use it as a context manager, which ends an open line when
    the work stops (an error message then starts on a line of its own)."""
    DELAY, WIDTH, REDRAW = 2.0, 30, 0.1  # seconds before the first bar, bar width, seconds between redraws

    def __init__(self, what: str):
        self.what, self.start, self.drawn, self.open = what, time.monotonic(), 0.0, None

    def __call__(self, done: float, total: int, stage: str = "") -> None:
        now = time.monotonic()
        finished = done >= total
        if not sys.stderr.isatty() or now - self.start < self.DELAY or (
                stage == self.open and not finished and now - self.drawn < self.REDRAW):
            return
        if self.open is not None and stage != self.open:
            sys.stderr.write("\n")
        filled = int(self.WIDTH * min(done, total) / max(total, 1))
        label = f"{self.what}: {stage}" if stage else self.what
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {int(done)}/{total}"
                         + ("\n" if finished else ""))
        sys.stderr.flush()
        self.drawn, self.open = now, None if finished else stage

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.open is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.open = None


def _chip(path, profile):
    """The chip file given with --chip, read and checked against ``profile`` (None without one)."""
    if path is None:
        return None
    from .chip import read
    return read(path, profile)


def _load_program(path):
    from .program import Program
    return Program.read(path)


def _feeds_for_program(program, path, stream: bool = False):
    """The program's inputs from an .npz; with ``stream`` read batch by batch as they are used."""
    from .data import load_npz, match_inputs
    specs = {s["name"]: (tuple(s["shape"]), s["dtype"]) for s in program.manifest["inputs"]}
    return match_inputs(path, load_npz(path, headers_only=stream), specs)


# ---------------------------------------------------------------------- commands

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="photoncc")
@click.option(DEBUG_FLAG, is_flag=True, help="Show Python tracebacks for errors.")
def cli(debug):
    """Compile ONNX neural networks for photonic accelerators, simulate the device, verify the result.

    \b
    Typical use:
      photoncc compile model.onnx -p ideal --calibration calib.npz   # -> model.pcc
      photoncc verify model.pcc --inputs test.npz                    # exit 0 = equivalent
      photoncc simulate model.pcc --inputs test.npz -o out.npz
      photoncc inspect model.pcc

    Exit codes: 0 success, 1 verify found the outputs not equivalent, 2 unusable input,
    3 internal error (a bug in photoncc).
    """


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="Built-in profile name (see `photoncc profiles`) or a YAML file.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Program file to write [default: MODEL with .pcc].")
@click.option("--calibration", type=click.Path(path_type=Path),
              help="Samples (.npz, like verify's inputs) to measure the layers' input ranges on.")
@click.option("--input-range", "input_range", metavar="LO,HI",
              help="Declared range of the model's inputs, used where no calibration data is given.")
@click.option("--headroom", type=click.FloatRange(min=0),
              help="Widen calibrated ranges by this fraction of their width on each side "
                   "[default: the profile's calibration.headroom].")
@click.option("--percentile", type=click.FloatRange(50, 100),
              help="Calibrated ranges span this percentile of the data (100 = min..max) "
                   "[default: the profile's calibration.percentile].")
@click.option("--report", type=click.Path(path_type=Path), help="Also write the compile report (JSON).")
@click.option("--dump-ir", type=click.Path(path_type=Path), help="Write the IR after every pass to this folder.")
@click.option("--chip", "chip_path", type=click.Path(path_type=Path),
              help="A chip's static errors (.npz from `photoncc chip` or `photoncc calibrate`): program for that chip (error-aware programming).")
def compile(model, profile_spec, output, calibration, input_range, headroom, percentile, report, dump_ir, chip_path):
    """Compile MODEL (.onnx) into a device program (.pcc) for a hardware profile.

    Every layer's input range must be known: from the model (Sigmoid, Tanh, Clip...), from
    --input-range for the model inputs, or measured on --calibration data. Unsupported nodes are
    all listed at once (as `photoncc check` does).
    """
    from .compiler import compile_model
    inputs, outputs = {"MODEL": model, "--calibration": calibration, "-p": _profile_file(profile_spec),
                       "--chip": chip_path}, {}
    output = output_path(output or model.with_suffix(".pcc"), "-o", inputs, outputs)
    if report:
        output_path(report, "--report", inputs, outputs)
    profile = _profile(profile_spec)
    chip = _chip(chip_path, profile)
    with Progress("compile") as progress:
        program = compile_model(model, profile, calibration, _input_range(input_range), dump_ir,
                                headroom, percentile, progress, chip=chip)
    files = {output: program.write_to}
    if report:
        files[report] = (json.dumps(program.manifest["report"], indent=1, sort_keys=True) + "\n").encode()
    write_files(files)
    r = program.manifest["report"]
    _say(f"photoncc: compiled {model} for {r['profile']}: {r['optical_layers']} optical layer(s) in "
         f"{r['tiles']} tile(s), {sum(r['electronic_ops'].values())} electronic op(s) -> {output}")
    if "chip" in r:
        _say(f"photoncc: for chip {chip_path}: mesh fidelity {r['chip']['fidelity_before']:.6g} as compiled for an "
             f"ideal chip, {r['chip']['fidelity_after']:.6g} programmed for this one; {r['chip']['unreachable_mzis']} "
             "MZI(s) cannot be set exactly")


@cli.command()
@click.argument("program_path", metavar="PROGRAM", type=click.Path(path_type=Path))
@click.option("--inputs", required=True, type=click.Path(path_type=Path),
              help="Input samples (.npz): one array per model input, keyed by its name, batch first.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Outputs file (.npz) [default: PROGRAM with .outputs.npz].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the device noise.")
@click.option("--noiseless", is_flag=True, help="Switch the profile's noise off (with --noise-model statistical: "
              "that model without its noise, so the ADC layers it covers are not rounded either).")
@click.option("--noise-model", type=click.Choice(NOISE_MODELS), default=DEFAULT_NOISE_MODEL, show_default=True,
              help=NOISE_MODEL_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Samples simulated at once.")
@DEVICE_OPTION
@click.option("--chip", "chip_path", type=click.Path(path_type=Path),
              help="Run on this chip's static errors (.npz from `photoncc chip` or `calibrate`) instead of drawing "
                   "them from the seed.")
def simulate(program_path, inputs, output, seed, noiseless, noise_model, batch_size, device, chip_path):
    """Run PROGRAM on the device simulator and write its outputs (.npz, keyed by output name)."""
    from .sim import Simulator
    from .sim.backend import backend
    output = output_path(output or program_path.with_suffix(".outputs.npz"), "-o",
                         {"PROGRAM": program_path, "--inputs": inputs, "--chip": chip_path}, {})
    backend(device)  # a missing CuPy or GPU is said before anything is read
    program = _load_program(program_path)
    chip = _chip(chip_path, program.manifest["profile"])
    feeds, _ = _feeds_for_program(program, inputs, stream=True)
    simulator = Simulator(program, seed=seed, noiseless=noiseless, noise_model=noise_model, check=str(program_path),
                          device=device, **({} if chip is None else {"chip": chip}))
    with Progress("simulate") as progress:
        outputs = simulator.run_batches(feeds, batch_size, progress)
    write_files({output: _npz_bytes(outputs)})
    if simulator.per_read:
        _say(f"photoncc: note: the statistical noise model does not cover {len(simulator.per_read)} layer(s) (no ADC, "
             f"or detector noise below half a code), simulated per read: {', '.join(simulator.per_read[:5])}"
             + (", ..." if len(simulator.per_read) > 5 else ""))
    for name, value in outputs.items():
        bad = int(np.count_nonzero(~np.isfinite(value))) if value.dtype.kind == "f" else 0
        if bad:
            _say(f"photoncc: warning: output {name!r}: {bad} of {value.size} values are NaN or infinite")
    _warn_layers(simulator.clipped_fraction(), "inputs were outside the calibrated range and clipped", "clipped inputs")
    _warn_layers(simulator.adc_saturated_fraction(), "ADC reads were outside their calibrated ranges and saturated",
                 "saturated ADC reads")
    count = len(next(iter(feeds.values())))
    _say(f"photoncc: simulated {count} sample(s) -> {output}")


@cli.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path),
              help="The original ONNX model [default: the one recorded in the program].")
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="Profile to compile for when TARGET is an ONNX model.")
@click.option("--inputs", type=click.Path(path_type=Path),
              help="Samples (.npz) to compare on [default: seeded samples drawn inside the recorded input ranges].")
@click.option("--calibration", type=click.Path(path_type=Path),
              help="When TARGET is an ONNX model: calibration data [default: the --inputs].")
@click.option("--input-range", "input_range", metavar="LO,HI",
              help="When TARGET is an ONNX model: declared range of its inputs.")
@click.option("--samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="How many samples to draw when no --inputs are given.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed for drawn inputs and device noise.")
@click.option("--noiseless", is_flag=True, help="Judge a noisy profile's program at the quantised tier (no noise).")
@click.option("--trials", type=click.IntRange(min=1), help="Noisy tier: seeded runs [default: profile].")
@click.option("--noise-model", type=click.Choice(NOISE_MODELS), default=DEFAULT_NOISE_MODEL, show_default=True,
              help=NOISE_MODEL_HELP)
@click.option("--rtol", type=click.FloatRange(min=0), help="Max error relative to each output's range [default: profile].")
@click.option("--top1", type=click.FloatRange(0, 1), help="Min top-1 agreement on classifier outputs [default: profile].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the report as JSON.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), help="Write the report as JUnit XML.")
@DEVICE_OPTION
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
    from .profile import Profile
    from .sim.backend import backend
    from .verify import draw_inputs, junit_xml, report_json, thresholds, verify as run_verify
    backend(device)  # a missing CuPy or GPU is said before anything runs
    given, outputs = {"TARGET": target, "--model": model, "--inputs": inputs, "--calibration": calibration,
                      "-p": _profile_file(profile_spec), "--chip": chip_path}, {}
    for path, option in ((json_path, "--json"), (junit_path, "--junit")):
        if path:
            output_path(path, option, given, outputs)
    progress = Progress("verify")
    if target.suffix == ".onnx":
        chip = _chip(chip_path, _profile(profile_spec))
        program, model, feeds, labels = _compiled_target(target, model, profile_spec, inputs, calibration,
                                                         input_range, progress, chip)
        program_path = f"{target} compiled in memory for {profile_spec}"
    else:
        program = _load_program(target)
        chip = _chip(chip_path, program.manifest["profile"])
        model = _source_model(target, model, program)
        program_path = str(target)
        feeds, labels = _feeds_for_program(program, inputs) if inputs else (None, None)
    note = f"{inputs}"
    if feeds is None:
        if any(np.isnan(s["lo"]).any() for s in program.manifest["inputs"]):
            raise UserError(f"{target}: the program records no input ranges (compiled without calibration "
                            "data or --input-range); pass --inputs DATA.npz")
        feeds = draw_inputs(program, samples, seed)
        note = f"{samples} samples drawn uniformly inside the recorded input ranges (seed {seed})"
        _say(f"photoncc: no --inputs given: comparing on {note}")
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
    from .compiler import compile_model, input_specs, load_calibration
    from .data import load_npz, match_inputs
    from .importer import import_model
    from .ir import Handover
    if model is not None and Path(model).resolve() != target.resolve():
        raise UserError(f"--model {model}: TARGET {target} is an ONNX model, compiled in memory and compared "
                        "with itself; --model names the source model of a program (.pcc) TARGET")
    graph = Handover(import_model(target))  # compile_model frees its weights as it goes
    feeds = labels = None
    if inputs:
        feeds, labels = match_inputs(inputs, load_npz(inputs), input_specs(graph.peek()))
    cal = load_calibration(calibration, graph.peek()) if calibration else feeds
    with progress:
        program = compile_model(graph, _profile(profile_spec), cal, _input_range(input_range), progress=progress,
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


@cli.command()
@click.argument("program_path", metavar="PROGRAM", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the compile report as JSON.")
def inspect(program_path, as_json):
    """Show what PROGRAM does on the device: per layer its tiles, rings used, alpha/shift, placement."""
    program = _load_program(program_path)
    if as_json:
        click.echo(json.dumps(program.manifest["report"], indent=1, sort_keys=True))
        return
    for line in text.inspect_lines(program, program_path):
        click.echo(line)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="Built-in profile name or a YAML file.")
def check(model, profile_spec):
    """List every node of MODEL the profile cannot run, with the reason and a hint (exit 2 if any)."""
    from .compiler import check_model
    g = check_model(model, _profile(profile_spec))
    optical = sum(n.op == "Linear" for n in g.nodes)
    click.echo(f"{model}: every node is supported: {optical} optical layer(s), "
               f"{len(g.nodes) - optical} electronic op(s) after folding")


@cli.command()
@click.argument("name", required=False)
def profiles(name):
    """List the built-in hardware profiles, or print one (NAME) as YAML."""
    from .profile import BUILTIN_DIR, builtin_names, load_profile
    if name:
        load_profile(name)
        if name not in builtin_names():
            raise UserError(f"profile {name!r}: not a built-in profile (built-in: {', '.join(builtin_names())})")
        click.echo((BUILTIN_DIR / f"{name}.yaml").read_text(), nl=False)
        return
    for profile_name in builtin_names():
        click.echo(f"{profile_name:<20} {load_profile(profile_name).get('description', '')}")


@cli.command()
def ops():
    """The supported ONNX operators and how each is mapped onto the device.

    \b
    optical     a matrix product on the photonic banks (or a photonic activation)
    folded      into the neighbouring bank at compile time when it follows one; else electronic
    electronic  runs on the electronic side, after the ADC
    layout      data movement on the electronic side (no arithmetic)
    compile     evaluated at compile time (shape sub-graphs, constants); must not depend on data
    removed     vanishes in inference
    """
    from . import ops as registry
    for found in registry.table():
        click.echo(f"{found.name:<22} {found.placement:<12} {found.note}".rstrip())


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="Base profile (built-in name or YAML file); --vary overrides its keys.")
@click.option("--calibration", required=True, type=click.Path(path_type=Path),
              help="Samples (.npz) every point is calibrated on.")
@click.option("--inputs", required=True, type=click.Path(path_type=Path),
              help="Samples (.npz) every point is verified on; with a 'label' array, accuracies too.")
@click.option("--vary", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="A dotted profile key and its values (e.g. precision.weight_bits=4,6,8); repeat it: the "
                   "grid is the product of the lists.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Noisy points: seeded runs per point (seeds 0 to N-1).")
@click.option("--noise-model", type=click.Choice(NOISE_MODELS), default=DEFAULT_NOISE_MODEL, show_default=True,
              help=NOISE_MODEL_HELP)
@click.option("--workers", type=click.IntRange(min=1),
              help="Local worker processes [default: the number of cores].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the points on this Dask scheduler (tcp://HOST:8786) instead; needs photoncc[distributed].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Results (.csv), one row per point; a run with the same file resumes it.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the results as JSON.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help="Also draw accuracy against each varied key (.png); needs photoncc[plot].")
@DEVICE_OPTION
def sweep(model, profile_spec, calibration, inputs, vary, seeds, noise_model, workers, scheduler, output,
          json_path, plot_path, device):
    """Compile and verify MODEL for every point of a grid of profile values (design-space sweep).

    Each point is the profile with the --vary keys set to one combination of their values; it is
    compiled (calibrated on --calibration), verified on --inputs and gives one CSV row: accuracy,
    agreement, errors, worst layer SQNR, tiles, latency, energy. A failed point gets its error in
    the row and the sweep goes on. Points run in parallel, locally or on a Dask cluster.
    """
    from . import sweep as engine
    from .plot import require
    if workers is not None and scheduler is not None:
        raise UserError("--workers and --scheduler: give one of them (local processes, or a Dask cluster)")
    given, taken = {"MODEL": model, "--calibration": calibration, "--inputs": inputs,
                    "-p": _profile_file(profile_spec)}, {}
    for path, option in ((output, "-o"), (json_path, "--json"), (plot_path, "--plot")):
        if path:
            output_path(path, option, given, taken)
    if plot_path:
        require()
    if scheduler:
        engine.require_distributed(scheduler)
    if device != "cpu" and scheduler is None:
        from .sim.backend import backend
        backend(device)  # a missing CuPy or GPU is said before anything runs (a cluster's workers check their own)
    plan = engine.plan(model, _profile(profile_spec), calibration, inputs, vary, seeds, noise_model, device)
    with Progress("sweep") as progress:
        outcome = engine.run(plan, output, workers=workers, scheduler=scheduler, progress=progress)
    files = {output: engine.csv_bytes(plan, outcome.rows)}
    if json_path:
        files[json_path] = engine.json_bytes(plan, outcome.rows)
    if plot_path:
        files[plot_path] = engine.plot_png(plan, outcome.rows)
    write_files(files)
    for index, error in outcome.failed[:text.WARN_LAYERS]:
        point = ", ".join(f"{k}={t}" for k, t in zip(plan.header, plan.texts(index)))
        _say(f"photoncc: warning: point {point} failed: {error}")
    if len(outcome.failed) > text.WARN_LAYERS:
        _say(f"photoncc: warning: {len(outcome.failed) - text.WARN_LAYERS} more point(s) failed (see the error column)")
    resumed = f", {outcome.resumed} already in {output}" if outcome.resumed else ""
    dropped = f"; {outcome.dropped} row(s) of points outside this grid dropped" if outcome.dropped else ""
    _say(f"photoncc: swept {len(outcome.rows)} point(s) of {model} on {plan.profile_name}: {outcome.ran} run"
         f"{resumed}, {len(outcome.failed)} failed{dropped} -> {output}")


@cli.command("chip")
@click.argument("profile_spec", metavar="PROFILE")
@click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), required=True, help="Seed of the draw.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Chip file to write (.npz).")
def chip_command(profile_spec, seed, output):
    """Draw one chip of PROFILE: every static error (MZI phase offsets, splitter imbalance, loss; a ring
    bank's programming offsets and crosstalk), as if measured on a fabricated device.

    compile/simulate/verify --chip CHIP.npz program for it or run on it; without --chip, simulate and
    verify draw the same chip from their --seed (architecture mzi).
    """
    from .chip import draw
    output = output_path(output, "-o", {"PROFILE": _profile_file(profile_spec)}, {})
    profile = _profile(profile_spec)
    drawn = draw(profile, seed)
    write_files({output: drawn.to_bytes()})
    _say(f"photoncc: drew a chip of {profile.name} (seed {seed}): {drawn.describe()} -> {output}")


@cli.command()
@click.argument("profile_spec", metavar="PROFILE")
@click.option("--device", "device_path", required=True, type=click.Path(path_type=Path),
              help="The device to measure: a chip file standing in for a physical device (the simulator loaded "
                   "with it, reached only through the measurement interface).")
@click.option("--probes", type=click.IntRange(3, 64), default=6, show_default=True,
              help="Random settings of each mesh measured (each: N attenuator states x N unit fields).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the probe settings and of the device's read noise.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Estimate to write (.npz).")
def calibrate(profile_spec, device_path, probes, seed, output):
    """Estimate a chip's static errors from measurements alone (architecture mzi).

    Probe settings are programmed on the device and its outputs read (read noise on); the errors are
    fitted to the measurements, never read from the device. The estimate is a chip file:
    compile --chip ESTIMATE.npz programs for it.
    """
    from .calibrate import calibrate as estimate
    from .chip import read
    from .sim.measure import SimulatedDevice
    output = output_path(output, "-o", {"PROFILE": _profile_file(profile_spec), "--device": device_path}, {})
    profile = _profile(profile_spec)
    device = SimulatedDevice(profile, read(device_path, profile, "--device"), seed) if profile["architecture"] == "mzi" \
        else None
    if device is None:
        raise UserError(f"calibrate: profile {profile.name!r} is not an MZI-mesh profile (architecture "
                        f"{profile['architecture']!r}); calibration estimates the static errors of MZI meshes")
    with Progress("calibrate") as progress:
        found = estimate(profile, device, probes, seed, progress)
    write_files({output: found.to_bytes()})
    _say(f"photoncc: calibrated a chip of {profile.name} from {device.vectors} input vectors sent "
         f"({device.reads} detector reads, {2 * probes - 1} settings): {found.describe()} -> {output}")


from .cli_finetune import finetune as _finetune  # noqa: E402  (it reads this module's helpers)

cli.add_command(_finetune)


# ---------------------------------------------------------------------- entry point

def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    if debug:  # a group option, but accepted anywhere on the line (`photoncc compile m.onnx --debug`)
        argv = [DEBUG_FLAG] + [a for a in argv if a != DEBUG_FLAG]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():  # the program speaks for itself: its own
            warnings.simplefilter("ignore", RuntimeWarning)         # warnings, not NumPy's
            cli.main(args=argv, prog_name="photoncc", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        _say("photoncc: aborted")
        return 2
    except click.UsageError as e:
        if debug:
            traceback.print_exc()
        command = f" {e.ctx.command_path.split(' ', 1)[1]}" if e.ctx and " " in e.ctx.command_path else ""
        _say(f"photoncc: error: {e.format_message()} (see `photoncc{command} --help`)")
        return 2
    except UserError as e:
        if debug:
            traceback.print_exc()
        _say(f"photoncc: error: {e}")
        return 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    except Exception as e:  # a bug in photoncc, not in the user's input: exit 3, never 1 or 2
        if debug:
            traceback.print_exc()
        _say(f"photoncc: internal error (a bug in photoncc; please report it, run with --debug for the "
             f"traceback): {type(e).__name__}: {e}")
        return 3
    return 0
