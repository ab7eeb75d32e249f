"""Shared helpers of the end-to-end tests: compile, simulate, run onnxruntime, compare.

Correctness is checked by execution: a model is compiled for the ``ideal`` profile with its own
feeds as calibration data (so nothing is clipped), the program runs in the device simulator and
onnxruntime runs the original file on the same feeds. Every float output must agree to ``RTOL`` of
its range (max |dev - ref| / (max(ref) - min(ref))), every integer output exactly.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from photoncc.cli import main
from photoncc.compiler import compile_model
from photoncc.profile import load_profile
from photoncc.reference import run_onnxruntime
from photoncc.sim import Simulator

DATA = Path(__file__).parent / "data"
RTOL = 1e-4


def run_cli(capsys, *argv):
    """Run the ``photoncc`` command line in-process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@functools.lru_cache(maxsize=None)
def ideal():
    return load_profile("ideal")


# ------------------------------------------------------------------------------ comparing

def relative_error(ref: np.ndarray, dev: np.ndarray) -> float:
    """max |dev - ref| / (max(ref) - min(ref)); the range falls back to max |ref|, then 1."""
    ref64, dev64 = np.asarray(ref, np.float64), np.asarray(dev, np.float64)
    if not ref64.size:
        return 0.0
    if not np.isfinite(dev64).all():
        return float("inf")
    scale = float(np.ptp(ref64)) or float(np.abs(ref64).max()) or 1.0
    return float(np.abs(dev64 - ref64).max()) / scale


def assert_outputs_match(ref: dict, dev: dict, rtol: float = RTOL, what: str = "") -> dict:
    """Every output of ``ref`` is in ``dev`` with the same shape; floats within ``rtol`` of their
    range, integers (and booleans) equal. Returns the relative error per float output."""
    assert set(dev) == set(ref), f"{what}: outputs {sorted(dev)} differ from the model's {sorted(ref)}"
    errors = {}
    for name, r in ref.items():
        d = np.asarray(dev[name])
        r = np.asarray(r)
        assert d.shape == r.shape, f"{what}: output {name!r} has shape {d.shape}, the model's {r.shape}"
        if r.dtype.kind == "f":
            assert d.dtype.kind == "f", f"{what}: output {name!r} is {d.dtype}, the model's {r.dtype}"
            err = relative_error(r, d)
            errors[name] = err
            assert err <= rtol, f"{what}: output {name!r} differs by {err:.3g} of its range (allowed {rtol})"
        else:
            assert d.dtype == r.dtype, f"{what}: output {name!r} is {d.dtype}, the model's {r.dtype}"
            assert np.array_equal(d, r), (f"{what}: integer output {name!r} differs at "
                                          f"{int(np.count_nonzero(d != r))} of {r.size} places")
    return errors


def simulate(program, feeds: dict, batch_size: int | None = None) -> dict:
    sim = Simulator(program)
    return sim.run_batches(feeds) if batch_size is None else sim.run_batches(feeds, batch_size=batch_size)


def compile_and_compare(path, feeds: dict, profile=None, rtol: float = RTOL, batch_size: int | None = None):
    """Compile ``path`` (calibrated on ``feeds``), simulate and compare with onnxruntime.

    Returns (program, device outputs, reference outputs)."""
    program = compile_model(str(path), profile or ideal(), calibration=feeds)
    dev = simulate(program, feeds, batch_size)
    ref, _ = run_onnxruntime(str(path), feeds)
    assert_outputs_match(ref, dev, rtol, what=Path(str(path)).name)
    return program, dev, ref


# ------------------------------------------------------------------------------ models

def data_inputs(model: onnx.ModelProto) -> list[str]:
    """The graph inputs that are not initializers (IR < 4 files list initializers as inputs too)."""
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def read_pb(path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(Path(path).read_bytes())
    return numpy_helper.to_array(tensor)


def vinfo(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, inits=(), opset: int = 17, ir_version: int | None = None,
               extra_opsets=()) -> onnx.ModelProto:
    """A checked model; ``inits`` is a sequence of (name, array); an output given as a bare name gets
    the type onnx's shape inference finds for it."""
    typed = [o for o in outputs if not isinstance(o, str)]
    graph = helper.make_graph(nodes, "g", inputs, typed,
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="photoncc-tests")
    model.ir_version = ir_version if ir_version is not None else min(onnx.IR_VERSION, _ir_for(opset))
    if len(typed) != len(outputs):
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
        known = {v.name: v for v in list(inferred.value_info) + list(inferred.output)}
        del model.graph.output[:]
        for o in outputs:
            model.graph.output.append(known[o] if isinstance(o, str) else o)
    onnx.checker.check_model(model)
    return model


def _ir_for(opset: int) -> int:
    """The IR version onnx released with ``opset`` (onnxruntime refuses newer IR than it knows)."""
    for ir_version, first in ((10, 21), (9, 19), (8, 14), (7, 12), (6, 11), (5, 10), (4, 9)):
        if opset >= first:
            return ir_version
    return 3


def save(model: onnx.ModelProto, folder, name: str = "model.onnx") -> Path:
    path = Path(folder) / name
    onnx.save(model, str(path))
    return path


def bank_instructions(program) -> list[dict]:
    return [inst for inst in program.instructions if inst["op"] == "Bank"]


def ops_of(program) -> list[str]:
    return [inst["op"] for inst in program.instructions]
