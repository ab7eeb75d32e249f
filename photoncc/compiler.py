"""The compiler: the pipeline of passes, in order, and what it checks between them.

    model.onnx --import--> Graph --PIPELINE--> device Graph --emit--> Program (.pcc)

After every pass the IR invariants are checked (a failure is a compiler bug: traceback) and so is
the set of ops allowed at that stage (a failure is the user's model: one error listing EVERY
offending node with its op, the reason and a hint).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import ir, ops
from .data import load_npz, match_inputs
from .emit import emit, keep_samples
from .errors import UnsupportedModel, UserError
from .importer import import_model
from .ir import Graph, Handover, UnsupportedNode
from .passes.adc_ranges import adc_ranges
from .passes.canonicalize import canonicalize
from .passes.context import Context
from .passes.fold_affine import fold_affine
from .passes.fold_constants import fold_constants
from .passes.lower_linear import lower_linear
from .passes.lower_ml import lower_ml
from .passes.lower_recurrent import lower_recurrent
from .passes.map_activations import map_activations
from .passes.quantise_banks import quantise_banks
from .passes.tile_banks import tile_banks
from .passes.to_banks import to_banks
from .profile import Profile
from .report import add_quantisation_error, compile_report, error_layers, error_samples, model_values
from .sim import Simulator

PROGRAM_OPS = frozenset(ops.kernels())  # what a program may hold besides the banks: the ops with a kernel


# name, pass, ops allowed after it (besides the electronic ones)
PIPELINE: tuple[tuple[str, Callable[[Graph, Context], Graph], frozenset], ...] = (
    ("fold_constants", fold_constants, None),
    ("lower_ml", lower_ml, None),  # classic-ML linear models -> Gemm and electronic ops (checked after canonicalize)
    ("lower_recurrent", lower_recurrent, None),  # RNN/GRU/LSTM unrolled, batch first (checked after canonicalize)
    ("canonicalize", canonicalize, frozenset({"Gemm", "MatMul", "Conv", "ConvTranspose"})),
    ("lower_linear", lower_linear, frozenset({"Linear"})),
    ("fold_affine", fold_affine, frozenset({"Linear"})),
    ("map_activations", map_activations, frozenset({"Linear"})),
    ("to_banks", to_banks, frozenset({"Bank", "Mesh"})),
    ("tile_banks", tile_banks, frozenset({"Bank", "Mesh"})),
    ("quantise_banks", quantise_banks, frozenset({"Bank", "Mesh"})),
    ("adc_ranges", adc_ranges, frozenset({"Bank", "Mesh"})),  # a pass of its own: the float weights are gone by then
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


def compile_model(model: str | Path | Graph | Handover, profile: Profile, calibration: dict | str | Path | None = None,
                  input_range: tuple[float, float] | None = None, dump_ir: str | Path | None = None,
                  headroom: float | None = None, percentile: float | None = None, progress=None, chip=None,
                  refine_steps: int = 0):
    """Compile an ONNX file, or the Graph ``import_model`` read from one, for ``profile``; returns
    the Program (see program.py). A Graph handed over (``ir.Handover``, as ``cli.verify`` does) is
    the compile's to consume: the passes free its weights as they replace them.
    ``progress(done, total, stage)`` reports the long stages (photoncc/progress.py). ``chip``: a
    chip's measured static errors (``photoncc.chip.Chip``, read for ``profile``): the program is
    set for that chip (error-aware programming) and records which chip it is for; on MZI meshes,
    ``refine_steps`` steps of global refinement follow the local correction (``devices.refine``)."""
    imported = model if isinstance(model, Handover) else \
        Handover(model if isinstance(model, Graph) else import_model(model))
    del model
    g = imported.peek()
    if isinstance(calibration, (str, Path)):
        calibration = load_calibration(calibration, g)
    inputs = {name: g.types[name] for name in g.inputs}
    ranges = _input_ranges(inputs, calibration, input_range)
    sqnr = calibration is not None and (profile.quantised or profile.noisy)
    source = g if sqnr else None  # the imported graph: the model's own values, for the report's SQNR
    del g  # the pipeline alone holds the imported graph, so weights it replaces are freed (memory)
    ctx = Context(profile, calibration, input_range, headroom, percentile, progress=progress, chip=chip,
                  refine_steps=refine_steps)
    dump = _dumper(Path(dump_ir)) if dump_ir else None
    device = run_pipeline(imported.take(), ctx, on_stage=dump)
    report = compile_report(device, ctx.profile, ctx.range_info, ctx.mesh_facts)
    # the known-answer inputs are the samples the report's SQNR runs on: one simulation serves both
    kat = _kat_feeds(inputs, calibration, ranges, error_samples(report, profile) if sqnr else 1)
    layers = error_layers(device) if sqnr else ()
    reference = model_values(source, kat, layers) if sqnr else None
    del source  # the imported graph's weights are not held while the device is loaded and run
    program, values = emit(device, dict(profile), ranges, kat, report, keep=layers, progress=progress)
    keep_samples(program, {name: np.asarray(calibration[name]).astype(t.dtype, copy=False) for name, t in inputs.items()}
                 if calibration else None)  # verify's default inputs: representative data
    if chip is not None:
        from .chip import summary
        program.manifest["chip"] = summary(chip)
    if sqnr:
        if chip is not None:  # a program for one chip is judged on that chip, not the ideal one of the KAT
            values = Simulator(program, noiseless=True, chip=chip).run(kat, keep=list(layers))
        add_quantisation_error(program, reference, {name: values[name] for name in layers if name in values})
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
            if not data.size:
                raise UserError(f"the calibration data of input {name!r} holds no values")
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
