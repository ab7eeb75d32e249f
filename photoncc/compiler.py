"""The compiler: the pipeline of passes, in order, and what it checks between them.

    model.onnx --import--> Graph --PIPELINE--> device Graph --emit--> Program (.pcc)

After every pass the IR invariants are checked (a failure is a compiler bug: traceback) and so is
the set of ops allowed at that stage (a failure is the user's model: one error listing EVERY
offending node with its op, the reason and a hint).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import ir, ops
from .data import load_npz, match_inputs
from .emit import emit
from .errors import UnsupportedModel, UserError
from .importer import import_model
from .ir import Graph, UnsupportedNode
from .passes.canonicalize import canonicalize
from .passes.fold_affine import fold_affine
from .passes.fold_constants import fold_constants
from .passes.lower_linear import lower_linear
from .passes.map_activations import map_activations
from .passes.tile_banks import tile_banks
from .passes.quantise_banks import quantise_banks, set_adc_ranges
from .passes.to_nonnegative import to_nonnegative
from .passes.to_signed import to_signed
from .profile import Profile
from .progress import stage
from .ranges import adc_ranges, measure_ranges
from .report import add_quantisation_error, compile_report, error_layers, error_samples, model_values

PROGRAM_OPS = frozenset(ops.kernels())  # what a program may hold besides the banks: the ops with a kernel


@dataclass
class Context:
    profile: Profile
    calibration: dict | None = None  # input name -> samples
    input_range: tuple[float, float] | None = None
    headroom: float | None = None  # None: the profile's calibration.headroom
    percentile: float | None = None  # None: the profile's calibration.percentile
    range_info: dict = field(default_factory=dict)
    # the graph before to_banks (its Linear layers compute the model's own values): kept for the ADC
    # calibration only, so that its weights are freed once nothing needs them
    layers: Graph | None = None
    progress: Callable | None = None  # progress(done, total, stage) of the long passes (photoncc/progress.py)

    @property
    def range_headroom(self) -> float:
        return self.profile["calibration"]["headroom"] if self.headroom is None else self.headroom


def _to_banks(g: Graph, ctx: Context) -> Graph:
    """Measure the layers' input ranges, then the bank form the profile's architecture needs."""
    percentile = ctx.profile["calibration"]["percentile"] if ctx.percentile is None else ctx.percentile
    ctx.layers = g if ctx.profile["precision"]["output_bits"] else None  # read by adc_ranges alone
    ranges, ctx.range_info = measure_ranges(g, ctx.calibration, ctx.input_range, ctx.range_headroom, percentile,
                                            stage(ctx.progress, "input ranges"))
    form = stage(ctx.progress, "bank form")
    if ctx.profile["architecture"] == "balanced":
        return to_signed(g, ranges, tuple(ctx.profile["bank"]["weight_range"]), form)
    return to_nonnegative(g, ranges, form)


def _adc_ranges(g: Graph, ctx: Context) -> Graph:
    """Each photodetector's ADC range, for a profile with ADCs (after quantise_banks: on the codes)."""
    if not ctx.profile["precision"]["output_bits"]:
        return g
    ranges = adc_ranges(g, ctx.layers, ctx.calibration, ctx.range_headroom, ctx.profile, ctx.progress)
    ctx.layers = None  # its weights are not needed after the ADC calibration
    return set_adc_ranges(g, ranges)


# name, pass, ops allowed after it (besides the electronic ones)
PIPELINE: tuple[tuple[str, Callable[[Graph, Context], Graph], frozenset], ...] = (
    ("fold_constants", lambda g, ctx: fold_constants(g), None),
    ("canonicalize", lambda g, ctx: canonicalize(g), frozenset({"Gemm", "MatMul", "Conv"})),
    ("lower_linear", lambda g, ctx: lower_linear(g), frozenset({"Linear"})),
    ("fold_affine", lambda g, ctx: fold_affine(g), frozenset({"Linear"})),
    ("map_activations", lambda g, ctx: map_activations(g, ctx.profile["activation"]), frozenset({"Linear"})),
    ("to_banks", _to_banks, frozenset({"Bank"})),
    ("tile_banks", lambda g, ctx: tile_banks(g, ctx.profile.banks, ctx.profile.rings, stage(ctx.progress, "tiling")),
     frozenset({"Bank"})),
    ("quantise_banks", lambda g, ctx: quantise_banks(g, ctx.profile, stage(ctx.progress, "quantising weights")),
     frozenset({"Bank"})),
    ("adc_ranges", _adc_ranges, frozenset({"Bank"})),  # a pass of its own: the float weights are gone by then
)
CHECK_UNTIL = "fold_affine"  # ``photoncc check``: everything that needs no calibration data


def run_pipeline(g: Graph, ctx: Context, until: str | None = None,
                 on_stage: Callable[[str, Graph], None] | None = None) -> Graph:
    """Run the passes in order. The model's problems found by the passes that need no data (up to
    CHECK_UNTIL) are gathered and reported together, so one error lists every offending node."""
    if on_stage:
        on_stage("import", g)
    found: dict[str, UnsupportedNode] = {}
    for name, step, allowed in PIPELINE:
        g = step(g, ctx)
        ir.check(g)
        if allowed is not None:
            for problem in stage_problems(g, allowed):
                found.setdefault(problem.node, problem)
        if on_stage and not found:
            on_stage(name, g)
        if name == until or (found and name == CHECK_UNTIL):
            break
    if found:
        raise UnsupportedModel(g.meta.get("source", "<model>"), list(found.values()))
    return g


def stage_problems(g: Graph, allowed: frozenset) -> list[UnsupportedNode]:
    problems = []
    for n in g.nodes:
        if "unsupported" in n.attrs:
            reason, hint = n.attrs["unsupported"]
            problems.append(UnsupportedNode(n.name, n.op, reason, hint))
        elif n.op not in PROGRAM_OPS and n.op not in allowed:
            problems.append(UnsupportedNode(n.name, n.op, "computes shapes or settings from data values",
                                            "photoncc needs static shapes; export with constant shapes"))
    return problems


def check_model(model_path: str | Path, profile: Profile) -> Graph:
    """Import and lower as far as possible without data; raises UnsupportedModel listing every problem."""
    return run_pipeline(import_model(model_path), Context(profile), until=CHECK_UNTIL)


def input_specs(g: Graph) -> dict:
    return {i: (g.types[i].shape[1:], g.types[i].dtype) for i in g.inputs}


def load_calibration(path, g: Graph) -> dict:
    feeds, _ = match_inputs(path, load_npz(path), input_specs(g))
    return feeds


def compile_model(model: str | Path | Graph, profile: Profile, calibration: dict | str | Path | None = None,
                  input_range: tuple[float, float] | None = None, dump_ir: str | Path | None = None,
                  headroom: float | None = None, percentile: float | None = None, progress=None):
    """Compile an ONNX file, or the Graph ``import_model`` read from one, for ``profile``; returns
    the Program (see program.py). A Graph is the compile's to consume: the passes free its weights
    as they replace them, unless the caller still holds it (``cli.verify`` hands it over).
    ``progress(done, total, stage)`` reports the long stages (photoncc/progress.py)."""
    g = model if isinstance(model, Graph) else import_model(model)
    del model
    if isinstance(calibration, (str, Path)):
        calibration = load_calibration(calibration, g)
    inputs = {name: g.types[name] for name in g.inputs}
    ranges = _input_ranges(inputs, calibration, input_range)
    sqnr = calibration is not None and (profile.quantised or profile.noisy)
    source = g if sqnr else None  # the imported graph: the model's own values, for the report's SQNR
    ctx = Context(profile, calibration, input_range, headroom, percentile, progress=progress)
    dump = _dumper(Path(dump_ir)) if dump_ir else None
    handed = [g]
    del g  # the pipeline alone holds the imported graph, so weights it replaces are freed (memory)
    device = run_pipeline(handed.pop(), ctx, on_stage=dump)
    report = compile_report(device, ctx.profile, ctx.range_info)
    # the known-answer inputs are the samples the report's SQNR runs on: one simulation serves both
    kat = _kat_feeds(inputs, calibration, ranges, error_samples(report, profile) if sqnr else 1)
    layers = error_layers(device) if sqnr else ()
    reference = model_values(source, kat, layers) if sqnr else None
    del source  # the imported graph's weights are not held while the device is loaded and run
    program, values = emit(device, dict(profile), ranges, kat, report, keep=layers, progress=progress)
    if sqnr:
        add_quantisation_error(program, reference, values)
    return program


def _dumper(folder: Path):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--dump-ir {folder}: cannot create the folder: {e.strerror or e}") from e
    counter = iter(range(100))

    def dump(name: str, g: Graph):
        (folder / f"{next(counter):02d}_{name}.txt").write_text(ir.to_text(g))
    return dump


def _input_ranges(inputs: dict, calibration, input_range) -> dict:
    """Per model input (``inputs``: name -> its type), per channel (axis 1; the only axis for 2-D
    inputs) [lo, hi] it was compiled for."""
    ranges = {}
    for name, t in inputs.items():
        shape = t.shape
        channels = shape[1] if len(shape) > 1 else 1
        if calibration is not None:
            data = np.asarray(calibration[name], np.float64)
            data = np.moveaxis(data, 1, -1).reshape(-1, channels) if data.ndim > 1 else data.reshape(-1, 1)
            ranges[name] = (data.min(axis=0), data.max(axis=0))
        elif input_range is not None:
            ranges[name] = (np.full(channels, input_range[0]), np.full(channels, input_range[1]))
        else:
            ranges[name] = (np.full(channels, np.nan), np.full(channels, np.nan))
    return ranges


def _kat_feeds(inputs: dict, calibration, ranges, samples: int) -> dict:
    """The known-answer test's inputs: the first ``samples`` calibration samples, or without
    calibration data one sample drawn (seed 0) inside the input ranges ([0, 1] where unknown)."""
    if calibration is not None:
        return {k: v[:samples] for k, v in calibration.items()}
    rng = np.random.default_rng(0)
    feeds = {}
    for name, t in inputs.items():
        lo, hi = ranges[name]
        if np.isnan(lo).any():
            lo, hi = np.zeros_like(lo), np.ones_like(hi)
        shape = (1,) + t.shape[1:]
        channel = (1, -1) + (1,) * (len(shape) - 2) if len(shape) > 1 else (1,)
        feeds[name] = rng.uniform(lo.reshape(channel), hi.reshape(channel), shape).astype(t.dtype)
    return feeds
