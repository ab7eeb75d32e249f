"""bench/run.py's verdicts: the issue states its targets for whole processes, as a user runs them,
with in-process figures beside them; the verdict follows the whole-process ratio and the in-process
one is printed next to it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: no launcher process is started
    return module


def timed(seconds: float, process: float) -> dict:
    return {"median": seconds, "process": {"median": process}}


def resnet(ideal: tuple[float, float], compile_: tuple[float, float]) -> dict:
    """A ResNet-18 result: onnxruntime 1.0 s in-process, 2.0 s whole; quantize_static 1.0 / 2.0 s."""
    return {"model": "resnet18", "ort": timed(1.0, 2.0),
            "sim_ideal": timed(*ideal), "sim_noisy": {"na": "no noisy profile"}, "sim_stat": {"na": "no noisy profile"},
            "compile_ideal": {"median": compile_[0]},
            "quantize": {"median": 1.0, "process": {"median": 2.0}, "compile_process": {"median": compile_[1]}}}


@pytest.mark.parametrize("ideal, compile_, verdicts", [
    ((3.0, 3.8), (1.2, 1.9), ["**met**", "**met**"]),          # whole process within, in-process over
    ((1.5, 4.4), (0.9, 2.2), ["**not met**", "**not met**"]),  # whole process over, in-process within
])
def test_target_verdicts_follow_the_whole_process_ratio_with_the_in_process_one_beside(bench, ideal, compile_, verdicts):
    lines = bench.targets({"models": [resnet(ideal, compile_)], "noisy": None})
    simulate = next(line for line in lines if line.startswith("simulate, ideal profile"))
    compile_line = next(line for line in lines if line.startswith("compile resnet18"))
    assert [simulate.split(": ")[2].split(";")[0], compile_line.split(": ")[2].split(";")[0]] == verdicts
    assert f"whole process {ideal[1]:.3f} s vs 2.000 s ({ideal[1] / 2:.1f}x)" in simulate
    in_process = "within" if ideal[0] <= 2 else "over"
    assert f"in-process beside it: {ideal[0]:.3f} s vs 1.000 s ({ideal[0]:.1f}x, {in_process} 2x)" in simulate
    assert f"({compile_[0]:.2f}x, {'within' if compile_[0] <= 1 else 'over'} 1x)" in compile_line


def test_photoncc_is_compiled_to_bytecode_before_the_measurements(bench, monkeypatch, tmp_path):
    """As pip compiles an installed package: every module of photoncc gets its bytecode file."""
    import importlib.util as util
    import shutil
    import sys

    import photoncc
    copy = tmp_path / "photoncc"
    shutil.copytree(Path(photoncc.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(photoncc, "__file__", str(copy / "__init__.py"))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    bench.compile_bytecode()
    modules = sorted(copy.rglob("*.py"))
    assert modules and all(Path(util.cache_from_source(str(m))).is_file() for m in modules)
