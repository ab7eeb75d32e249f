"""photoncc sweep (photoncc/sweep.py, cli.sweep, photoncc/plot.py): the issue's grid on the digits
CNN (bench/sweep.py builds it) gives the same CSV with one worker, two worker processes and a Dask
cluster; a run killed half-way resumes with the missing points only; the plot is drawn; bad
``--vary`` options are one-line errors before anything runs; a failed point is a row with its
error and the sweep goes on."""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import run_cli
from photoncc import plot, sweep
from photoncc.sweep import points
from photoncc.cli import main
from photoncc.errors import UserError
from photoncc.profile import SCHEMA, load_profile

DATA = Path(__file__).parent / "data"
MLP, CALIBRATION, TEST = DATA / "digits_mlp.onnx", DATA / "digits_calibration.npz", DATA / "digits_test.npz"
BENCH = Path(__file__).resolve().parent.parent / "bench" / "sweep.py"
GRID = ["--vary", "precision.weight_bits=3,4,5,6,8", "--vary", "noise.detector_sigma=0.001,0.004,0.016"]
POINTS = 15


def sweep_args(model, output, *more) -> list[str]:
    """The issue's sweep: mrr-incoherent-8b, the 5 x 3 grid, 3 seeds."""
    return [str(a) for a in ("sweep", model, "-p", "mrr-incoherent-8b", "--calibration", CALIBRATION, "--inputs",
                             TEST, *GRID, "--seeds", 3, "-o", output, *more)]


def without_seconds(path: Path) -> str:
    """The CSV's text with the ``seconds`` column (wall time, the only one that varies) removed."""
    rows = list(csv.reader(io.StringIO(path.read_text())))
    drop = rows[0].index("seconds")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([c for i, c in enumerate(row) if i != drop] for row in rows)
    return buffer.getvalue()


def complete_rows(path: Path) -> list[str]:
    """The complete lines of a CSV (a killed run may leave a partial last one), header first."""
    return [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("bench_sweep", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.digits_cnn(tmp_path_factory.mktemp("cnn") / "digits_cnn.onnx")


@pytest.fixture(scope="module")
def reference(cnn, tmp_path_factory) -> dict:
    """The issue's sweep run in this process (one worker), with its JSON and plot."""
    folder = tmp_path_factory.mktemp("reference")
    paths = {"csv": folder / "cnn.csv", "json": folder / "cnn.json", "png": folder / "cnn.png"}
    assert main(sweep_args(cnn, paths["csv"], "--workers", 1, "--json", paths["json"], "--plot", paths["png"])) == 0
    return paths


def test_the_grid_gives_one_row_per_point_in_grid_order(reference):
    rows = list(csv.DictReader(io.StringIO(reference["csv"].read_text())))
    assert [(r["precision.weight_bits"], r["noise.detector_sigma"]) for r in rows] == [
        (bits, sigma) for bits in ("3", "4", "5", "6", "8") for sigma in ("0.001", "0.004", "0.016")]
    columns = [c + "probabilities" if c == sweep.RELATIVE_ERROR else c for c in sweep.COLUMNS]
    assert list(rows[0]) == ["precision.weight_bits", "noise.detector_sigma", *columns]
    assert len({r["sweep"] for r in rows}) == 1 and not any(r["error"] for r in rows)
    for r in rows:
        assert r["tier"] == "noisy" and r["trials"] == "3" and r["passed"] in ("true", "false")
        for metric in ("device_accuracy", "top1_agreement"):
            low, mean, high = (float(r[f"{metric}{end}"]) for end in ("_min", "", "_max"))
            assert 0 < low <= mean <= high <= 1
        assert float(r["model_accuracy"]) == pytest.approx(0.943333, abs=0.01)  # the CNN, onnxruntime
        assert int(r["tiles"]) > 0 and float(r["latency_us"]) > 0 and float(r["energy_nj"]) > 0
        assert r["worst_layer"] and float(r["worst_sqnr_db"]) < 40 and float(r["seconds"]) > 0
    accuracy = {(r["precision.weight_bits"], r["noise.detector_sigma"]): float(r["device_accuracy"]) for r in rows}
    assert accuracy["8", "0.001"] > accuracy["3", "0.016"] + 0.03  # fewer bits and more noise cost accuracy
    document = json.loads(reference["json"].read_text())
    assert document["vary"] == {"precision.weight_bits": [3, 4, 5, 6, 8], "noise.detector_sigma": [0.001, 0.004, 0.016]}
    assert document["columns"] == list(rows[0]) and len(document["points"]) == POINTS
    first = document["points"][0]
    assert first["precision.weight_bits"] == 3 and first["trials"] == 3 and isinstance(first["passed"], bool)
    assert first["device_accuracy"] == float(rows[0]["device_accuracy"]) and first["error"] is None


def test_two_worker_processes_give_the_same_csv(cnn, reference, tmp_path, capsys):
    code, _, err = run_cli(capsys, *sweep_args(cnn, tmp_path / "two.csv", "--workers", 2))
    assert code == 0, err
    assert without_seconds(tmp_path / "two.csv") == without_seconds(reference["csv"])


def test_a_dask_cluster_gives_the_same_csv(cnn, reference, tmp_path, capsys):
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        code, _, err = run_cli(capsys, *sweep_args(cnn, tmp_path / "dask.csv", "--scheduler",
                                                   cluster.scheduler_address))
    assert code == 0, err
    assert f"{POINTS} run" in err
    assert without_seconds(tmp_path / "dask.csv") == without_seconds(reference["csv"])


def test_a_run_killed_half_way_resumes_with_the_missing_points_only(cnn, reference, tmp_path, capsys):
    """SIGKILL (no clean-up) once 3 rows are written: the CSV holds complete rows, the orphaned
    workers exit and remove their copy of the model, and the same command runs the other points
    only and writes the CSV an uninterrupted run writes."""
    output, scratch = tmp_path / "killed.csv", tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "photoncc", *sweep_args(cnn, output, "--workers", 2)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.monotonic() + 120
    while not (output.is_file() and len(complete_rows(output)) >= 4) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = complete_rows(output)[1:]
    assert 3 <= len(kept) < POINTS, "the sweep was not killed half-way"
    while list(scratch.glob("photoncc-sweep-*")) and time.monotonic() < deadline:  # the workers' model copies
        time.sleep(0.05)
    assert not list(scratch.glob("photoncc-sweep-*"))
    code, _, err = run_cli(capsys, *sweep_args(cnn, output, "--workers", 2))
    assert code == 0, err
    assert f"{POINTS - len(kept)} run, {len(kept)} already in {output}" in err
    assert without_seconds(output) == without_seconds(reference["csv"])
    assert set(kept) <= set(complete_rows(output))  # the rows of the killed run are kept as they were


def test_resume_drops_a_partial_line_and_reports_progress_from_the_rows_kept(tmp_path, monkeypatch):
    """The library: a CSV cut after 2 of 4 rows in the middle of a third; ``run`` compiles the
    other 2 points only, and its progress starts at the 2 kept."""
    profile = load_profile("mrr-incoherent-8b")
    plan = sweep.plan(MLP, profile, CALIBRATION, TEST, ["precision.weight_bits=4,8", "noise.detector_sigma=0,0.01"])
    whole = sweep.run(plan, tmp_path / "whole.csv", workers=1)
    cut = tmp_path / "cut.csv"
    cut.write_bytes(sweep.csv_bytes(plan, whole.rows[:2]) + b"8,0.0,noi")
    compiled, calls = [], []
    real = points.compile_model
    monkeypatch.setattr(points, "compile_model", lambda *a, **k: compiled.append(a[1]) or real(*a, **k))
    outcome = sweep.run(plan, cut, workers=1, progress=lambda done, total: calls.append((done, total)))
    assert (outcome.resumed, outcome.ran, len(compiled)) == (2, 2, 2)
    assert [p["precision"]["weight_bits"] for p in compiled] == [8, 8]
    assert calls == [(2, 4), (3, 4), (4, 4)]
    assert [row[:-3] + row[-2:] for row in outcome.rows] == [row[:-3] + row[-2:] for row in whole.rows]
    assert sweep.csv_bytes(plan, outcome.rows).decode().count("\n") == 5


@pytest.mark.parametrize("existing", ["a,b\n1,2\n", "other sweep"])
def test_an_existing_file_of_another_sweep_is_refused_and_left_alone(reference, tmp_path, capsys, existing):
    output = tmp_path / "results.csv"
    if existing == "other sweep":  # the same columns, run with other seeds
        existing = reference["csv"].read_text()
    output.write_text(existing)
    code, _, err = run_cli(capsys, "sweep", MLP, "-p", "mrr-incoherent-8b", "--calibration", CALIBRATION,
                           "--inputs", TEST, *GRID, "--seeds", 2, "-o", output)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"photoncc: error: -o {output}: ")
    assert ("another sweep" in err) if "sweep" in existing else ("not this sweep's CSV (column 1 is 'a'" in err)
    assert output.read_text() == existing


@pytest.mark.parametrize("vary, message", [
    ("noise.rin_sgma=0.01,0.02", "--vary 'noise.rin_sgma=0.01,0.02': unknown profile key 'noise.rin_sgma'; "
                                 "did you mean 'noise.rin_sigma'?"),
    ("noise.phase_sigma=0.01", "noise.phase_sigma applies only to architecture 'mzi', not to 'incoherent'"),
    ("weight_bits=4", "unknown profile key 'weight_bits'; did you mean 'precision.weight_bits'?"),
    ("precision.weight_bits=0,4", "--vary 'precision.weight_bits=0,4': precision.weight_bits: 0 is not "
                                  + SCHEMA["precision"]["weight_bits"](0)[1]),
    ("noise.detector_sigma=-1", "noise.detector_sigma: -1 is not " + SCHEMA["noise"]["detector_sigma"](-1)[1]),
    ("noise=0.1", "'noise' is a section of the profile, not a key (its keys: noise.weight_sigma"),
    ("precision.weight_bits", "expected KEY=V1,V2,..."),
    ("precision.weight_bits=4,8,4", "value 4 is given twice"),
    ("precision.weight_bits=4,,8", "an empty value"),
    ("extends=ideal", "'extends' cannot be varied"),
    ("architecture=balanced", "--vary point precision.input_bits=8, architecture=balanced: bank.weight_range is "
                              "required for architecture 'balanced'"),
])
def test_a_bad_vary_is_one_line_naming_it_before_anything_runs(tmp_path, capsys, monkeypatch, vary, message):
    monkeypatch.setattr(points, "check_model", lambda *a: pytest.fail("the model was read"))
    output = tmp_path / "out.csv"
    code, _, err = run_cli(capsys, "sweep", MLP, "-p", "mrr-incoherent-8b", "--calibration", CALIBRATION,
                           "--inputs", TEST, "--vary", "precision.input_bits=8", "--vary", vary, "-o", output)
    assert code == 2 and err.count("\n") == 1 and err.startswith("photoncc: error: "), err
    assert message in err
    assert not output.exists()


def test_a_key_varied_twice_is_refused():
    with pytest.raises(UserError, match="'precision.weight_bits' is varied twice"):
        sweep.parse_vary(["precision.weight_bits=4", "precision.weight_bits=8"])


def test_values_are_read_as_yaml_with_exponents_as_numbers():
    axes = sweep.parse_vary(["precision.weight_bits=null,8", "noise.detector_sigma=1e-3,0.0040",
                             "bank.weight_range=[-1, 1],[-0.5,0.5]"])
    assert [axis.values for axis in axes] == [(None, 8), (0.001, 0.004), ([-1, 1], [-0.5, 0.5])]
    assert [axis.texts for axis in axes] == [("null", "8"), ("0.001", "0.004"), ("[-1, 1]", "[-0.5, 0.5]")]


def test_a_failed_point_is_a_row_with_its_error_and_the_sweep_goes_on(tmp_path, capsys, monkeypatch):
    real = points.compile_model

    def compile_model(model, profile, **kwargs):
        bits = profile["precision"]["weight_bits"]
        if bits == 3:  # a UserError naming the worker's copy of the model: the row names the model as given
            raise UserError(f"{model}: layer 'fc': cannot be loaded\n  second line")
        if bits == 4:
            raise ValueError("a bug")
        return real(model, profile, **kwargs)

    monkeypatch.setattr(points, "compile_model", compile_model)
    output = tmp_path / "failed.csv"
    code, _, err = run_cli(capsys, "sweep", MLP, "-p", "mrr-incoherent-8b", "--calibration", CALIBRATION,
                           "--inputs", TEST, "--vary", "precision.weight_bits=3,4,8", "--workers", 1, "-o", output)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [r["error"] for r in rows] == [f"{MLP}: layer 'fc': cannot be loaded; second line",
                                          "internal error: ValueError: a bug", ""]
    assert [r["tier"] for r in rows] == ["noisy"] * 3
    assert rows[0]["device_accuracy"] == rows[1]["tiles"] == "" and float(rows[2]["device_accuracy"]) > 0.9
    assert f"photoncc: warning: point precision.weight_bits=3 failed: {MLP}: layer 'fc'" in err
    assert "3 run, 2 failed" in err


def test_the_plot_is_a_png_of_its_size_and_not_blank(reference):
    from matplotlib.image import imread
    data = reference["png"].read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) < 60_000
    pixels = imread(reference["png"])
    width, height = plot.size(2)
    assert pixels.shape[:2] == (height, width)
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05 and (rgb.mean(axis=-1) < 0.9).mean() > 0.02  # lines, text and bands drawn


@pytest.mark.parametrize("option, modules, message", [
    ("--plot", ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"),
     'photoncc: error: --plot needs matplotlib: pip install "photoncc[plot]"'),
    ("--scheduler", ("distributed",),
     "photoncc: error: --scheduler needs Dask's distributed scheduler: pip install \"photoncc[distributed]\""),
])
def test_a_missing_extra_is_one_line_before_anything_runs(tmp_path, capsys, monkeypatch, option, modules, message):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    value = tmp_path / "p.png" if option == "--plot" else "tcp://127.0.0.1:8786"
    code, _, err = run_cli(capsys, "sweep", MLP, "--calibration", CALIBRATION, "--inputs", TEST,
                           "--vary", "precision.weight_bits=4", "-o", tmp_path / "o.csv", option, value)
    assert (code, err) == (2, message + "\n")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("more, message", [
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "--workers and --scheduler: give one of them"),
    (["--scheduler", "nohost"], "--scheduler nohost: not a Dask scheduler address (missing port number"),
])
def test_where_to_run_is_checked_before_anything_runs(tmp_path, capsys, more, message):
    code, _, err = run_cli(capsys, "sweep", MLP, "--calibration", CALIBRATION, "--inputs", TEST,
                           "--vary", "precision.weight_bits=4", "-o", tmp_path / "o.csv", *more)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o.csv").exists()
