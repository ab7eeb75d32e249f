"""Nothing lost, nothing silent: the regressions of the bugs a new user hit (issue 16, items 1-9).

Each test fails on the code before its fix: a static-batch model compiled for a quantised profile,
NaN in data, the statistical noise model overflowing, a model that computes NaN itself, output
files that cannot be written or that are one of the inputs, the files' mode, a program verified
against another model, and the smaller items (dtypes, inspect's and verify's lines).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from helpers import DATA, make_model, run_cli, save, vinfo
from models import ONNX_DATA
from photoncc import text
from photoncc.program import Program
from photoncc.reference import run_onnxruntime
from photoncc.verify import compare, report_json

DIGITS = DATA / "digits_mlp.onnx"


def static_batch_cnn(batch: int = 1) -> onnx.ModelProto:
    """Conv -> Relu -> Reshape to [batch, -1] -> Gemm, with the batch fixed (what PyTorch's dynamo
    exporter writes without dynamic_shapes): the Reshape's target names the batch."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "s"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "g"], ["y"], transB=1, name="fc")]
    inits = [("w", rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)),
             ("g", rng.normal(0, 0.1, (10, 4 * 8 * 8)).astype(np.float32)),
             ("s", np.array([batch, 256], np.int64))]
    return make_model(nodes, [vinfo("x", [batch, 3, 8, 8])], [vinfo("y", [batch, 10])], inits)


def images(count: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, 1, (count, 3, 8, 8)) * scale).astype(np.float32)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ 1. static batch, quantised

@pytest.mark.parametrize("profile", ["mrr-incoherent-8b", "harsh-4b"])
def test_static_batch_model_compiles_for_a_quantised_profile(capsys, tmp_path, profile):
    model = save(static_batch_cnn(), tmp_path)
    np.savez(tmp_path / "cal.npz", x=images(8))
    code, _, err = run_cli(capsys, "compile", model, "-p", profile, "--calibration", tmp_path / "cal.npz",
                           "-o", tmp_path / "p.pcc")
    assert code == 0, err
    layers = Program.read(tmp_path / "p.pcc").manifest["report"]["layers"]
    assert [layer["sqnr_db"] is not None for layer in layers] == [True, True]  # the SQNR reference ran
    code, out, err = run_cli(capsys, "verify", model, "-p", profile, "--inputs", tmp_path / "cal.npz")
    assert code in (0, 1) and "internal error" not in err, err
    assert "per layer" in out


def test_fixed_batch_reference_runs_any_number_of_samples(tmp_path):
    """onnxruntime runs a fixed-batch model a batch at a time, the last one filled up."""
    model = save(static_batch_cnn(batch=2), tmp_path)
    x = images(5)
    out, _ = run_onnxruntime(model, {"x": x})
    one_by_one = np.concatenate([run_onnxruntime(model, {"x": x[i:i + 2]})[0]["y"] for i in (0, 2)]
                                + [run_onnxruntime(model, {"x": x[[4, 4]]})[0]["y"][:1]])
    assert out["y"].shape == (5, 10)
    np.testing.assert_array_equal(out["y"], one_by_one)


# ------------------------------------------------------------------ 2. NaN in data

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_calibration_data_is_refused(capsys, tmp_path, bad):
    model = save(static_batch_cnn(), tmp_path)
    x = images(8)
    x[6, 2, 1, 1] = bad
    np.savez(tmp_path / "cal.npz", x=x)
    code, _, err = run_cli(capsys, "compile", model, "--calibration", tmp_path / "cal.npz", "-o", tmp_path / "p.pcc")
    assert code == 2
    assert err.startswith("photoncc: error: ") and err.count("\n") == 1
    assert "cal.npz: array 'x' holds" in err and "at sample 6" in err and "finite" in err
    assert not (tmp_path / "p.pcc").exists()


def test_a_nan_late_in_streamed_inputs_stops_simulate_before_any_output(capsys, tmp_path):
    model = save(static_batch_cnn(), tmp_path)
    np.savez(tmp_path / "cal.npz", x=images(8))
    assert run_cli(capsys, "compile", model, "--calibration", tmp_path / "cal.npz", "-o", tmp_path / "p.pcc")[0] == 0
    x = images(200)
    x[150, 0, 0, 0] = np.nan
    np.savez(tmp_path / "in.npz", x=x)
    code, _, err = run_cli(capsys, "simulate", tmp_path / "p.pcc", "--inputs", tmp_path / "in.npz",
                           "-o", tmp_path / "out.npz", "--batch-size", "64")
    assert code == 2 and "holds nan at sample 150" in err, err
    assert not (tmp_path / "out.npz").exists()


# ------------------------------------------------------------------ 3. the statistical model's overflow

def test_statistical_noise_model_stays_finite_on_large_activations(capsys, tmp_path):
    """A conv whose inputs are about 1e19: the sum of their squares over the feature map overflows
    float32, which made every output NaN (exit 0) before the moments fell back to float64."""
    model = save(static_batch_cnn(), tmp_path)
    np.savez(tmp_path / "cal.npz", x=images(8, scale=3e19))
    np.savez(tmp_path / "in.npz", x=images(4, seed=1, scale=3e19))
    assert run_cli(capsys, "compile", model, "-p", "mrr-incoherent-8b", "--calibration", tmp_path / "cal.npz",
                   "-o", tmp_path / "p.pcc")[0] == 0
    for noise_model in ("statistical", "per-read"):
        code, _, err = run_cli(capsys, "simulate", tmp_path / "p.pcc", "--inputs", tmp_path / "in.npz",
                               "-o", tmp_path / f"{noise_model}.npz", "--noise-model", noise_model)
        assert code == 0, err
        with np.load(tmp_path / f"{noise_model}.npz") as out:
            assert np.isfinite(out["y"]).all(), noise_model
        assert "NaN or infinite" not in err


def test_simulate_warns_of_non_finite_outputs(capsys, tmp_path):
    """A model that computes NaN itself (sqrt of a negative) gets a warning naming the output."""
    model = save(make_model([helper.make_node("Sqrt", ["x"], ["y"])], [vinfo("x", [1, 4])], [vinfo("y", [1, 4])]),
                 tmp_path)
    np.savez(tmp_path / "in.npz", x=np.array([[1, -1, 4, -4]] * 3, np.float32))
    assert run_cli(capsys, "compile", model, "--calibration", tmp_path / "in.npz", "-o", tmp_path / "p.pcc")[0] == 0
    code, _, err = run_cli(capsys, "simulate", tmp_path / "p.pcc", "--inputs", tmp_path / "in.npz",
                           "-o", tmp_path / "o.npz")
    assert code == 0
    assert "warning: output 'y': 6 of 12 values are NaN or infinite" in err


# ------------------------------------------------------------------ 4. a model that computes NaN itself

def test_verify_of_a_model_whose_outputs_hold_nan_passes_with_valid_json(capsys, tmp_path):
    folder = Path(ONNX_DATA) / "pytorch-operator" / "test_operator_sqrt"
    x = numpy_helper.to_array(onnx.load_tensor(str(folder / "test_data_set_0" / "input_0.pb")))
    assert (x < 0).any()  # the model's own output holds NaN
    np.savez(tmp_path / "in.npz", **{"0": x})
    model = folder / "model.onnx"
    assert run_cli(capsys, "compile", model, "--calibration", tmp_path / "in.npz", "-o", tmp_path / "p.pcc")[0] == 0
    code, out, err = run_cli(capsys, "verify", tmp_path / "p.pcc", "--model", model, "--inputs", tmp_path / "in.npz",
                             "--json", tmp_path / "r.json")
    assert code == 0, out + err
    assert "program was changed" not in out
    text = (tmp_path / "r.json").read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not strict JSON"))
    assert report["outputs"][0]["nonfinite_mismatch"] == 0 and report["passed"]


def test_compare_counts_nan_where_the_model_has_a_number():
    ref = np.array([[1.0, np.nan, np.inf, 4.0]], np.float32)
    assert compare(ref, ref.copy())["nonfinite_mismatch"] == 0
    dev = np.array([[np.nan, np.nan, np.inf, 4.5]], np.float32)
    metrics = compare(ref, dev)
    assert metrics["nonfinite_mismatch"] == 1
    assert metrics["max_abs_error"] == 0.5 and metrics["output_range"] == 3.0  # over the finite places
    assert compare(ref, np.array([[1.0, np.nan, -np.inf, 4.0]], np.float32))["nonfinite_mismatch"] == 1


def test_report_json_is_strict():
    text = report_json({"a": float("inf"), "b": [float("nan"), 1.0], "c": {"d": -float("inf")}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"a": None, "b": [None, 1.0], "c": {"d": None}}


# ------------------------------------------------------------------ 5. outputs that cannot be written

@pytest.fixture
def compiled(capsys, tmp_path):
    model = save(static_batch_cnn(), tmp_path)
    np.savez(tmp_path / "cal.npz", x=images(8))
    assert run_cli(capsys, "compile", model, "--calibration", tmp_path / "cal.npz", "-o", tmp_path / "p.pcc")[0] == 0
    return tmp_path


def failing_rename(fail_for: str):
    """os.replace that fails (EACCES) for a target named ``fail_for``, as a read-only folder does."""
    real = os.replace

    def replace(source, target):
        if Path(target).name == fail_for:
            raise PermissionError(13, "Permission denied", str(target))
        return real(source, target)
    return replace


@pytest.mark.parametrize("fails", ["rename", "create"])
def test_compile_writes_program_and_report_together_or_neither(capsys, compiled, monkeypatch, fails):
    out, reports = compiled / "out", compiled / "reports"
    out.mkdir()
    reports.mkdir()
    if fails == "rename":
        monkeypatch.setattr(os, "replace", failing_rename("r.json"))
    else:  # the report's folder refuses new files, as a read-only folder does
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if Path(dir) == reports:
                raise PermissionError(13, "Permission denied")
            return real(*args, dir=dir, **kwargs)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    code, _, err = run_cli(capsys, "compile", compiled / "model.onnx", "--calibration", compiled / "cal.npz",
                           "-o", out / "p.pcc", "--report", reports / "r.json")
    assert code == 2, err
    assert err.startswith("photoncc: error: ") and "r.json: cannot write: Permission denied" in err
    assert listing(out) == [] and listing(reports) == []  # neither the program nor a temporary file


def test_verify_that_cannot_write_its_report_prints_no_verdict(capsys, compiled, monkeypatch):
    monkeypatch.setattr(os, "replace", failing_rename("r.json"))
    code, out, err = run_cli(capsys, "verify", compiled / "p.pcc", "--inputs", compiled / "cal.npz",
                             "--json", compiled / "r.json", "--junit", compiled / "r.xml")
    assert code == 2 and "r.json: cannot write" in err
    assert "PASS" not in out and "FAIL" not in out
    assert not (compiled / "r.json").exists() and not (compiled / "r.xml").exists()


def test_a_temporary_file_that_cannot_be_created_is_a_clear_error(capsys, compiled, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    code, _, err = run_cli(capsys, "simulate", compiled / "p.pcc", "--inputs", compiled / "cal.npz",
                           "-o", compiled / "o.npz")
    assert code == 2 and "o.npz: cannot write: Permission denied" in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused_before_compiling(capsys, compiled):
    folder = compiled / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, _, err = run_cli(capsys, "compile", compiled / "model.onnx", "--calibration", compiled / "cal.npz",
                               "-o", folder / "p.pcc")
    finally:
        folder.chmod(0o755)
    assert code == 2 and "is not writable" in err
    assert listing(folder) == []


# ------------------------------------------------------------------ 6. a program verified against another model

def test_verify_against_a_model_with_other_inputs_names_both(capsys, compiled):
    other = make_model([helper.make_node("Relu", ["input"], ["y"])], [vinfo("input", [1, 3, 8, 8])],
                       [vinfo("y", [1, 3, 8, 8])])
    save(other, compiled, "other.onnx")
    code, _, err = run_cli(capsys, "verify", compiled / "p.pcc", "--model", compiled / "other.onnx",
                           "--inputs", compiled / "cal.npz")
    assert code == 2, err
    assert "other.onnx: the model's inputs ['input'] are not the program's ['x']" in err


# ------------------------------------------------------------------ 7. an output that is one of the inputs

@pytest.mark.parametrize("argv, victim", [
    (("compile", "{d}/model.onnx", "--calibration", "{d}/cal.npz", "-o", "{d}/model.onnx"), "model.onnx"),
    (("compile", "{d}/model.onnx", "--calibration", "{d}/cal.npz", "--report", "{d}/cal.npz"), "cal.npz"),
    (("verify", "{d}/model.onnx", "--inputs", "{d}/cal.npz", "--json", "{d}/model.onnx"), "model.onnx"),
    (("verify", "{d}/p.pcc", "--inputs", "{d}/cal.npz", "--junit", "{d}/p.pcc"), "p.pcc"),
    (("simulate", "{d}/p.pcc", "--inputs", "{d}/cal.npz", "-o", "{d}/cal.npz"), "cal.npz"),
    (("simulate", "{d}/p.pcc", "--inputs", "{d}/cal.npz", "-o", "{d}/./p.pcc"), "p.pcc"),
])
def test_an_output_that_is_an_input_is_refused_before_writing(capsys, compiled, argv, victim):
    before = (compiled / victim).read_bytes()
    code, _, err = run_cli(capsys, *[a.format(d=compiled) for a in argv])
    assert code == 2 and "writing it would destroy that file" in err, err
    assert (compiled / victim).read_bytes() == before


def test_two_outputs_of_one_command_must_differ(capsys, compiled):
    code, _, err = run_cli(capsys, "verify", compiled / "p.pcc", "--inputs", compiled / "cal.npz",
                           "--json", compiled / "r.txt", "--junit", compiled / "r.txt")
    assert code == 2 and "--junit" in err and "is also the output given to --json" in err, err


# ------------------------------------------------------------------ 8. file modes and concurrent writers

@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_get_the_mode_of_the_umask(capsys, compiled, mask, mode):
    old = os.umask(mask)
    try:
        assert run_cli(capsys, "compile", compiled / "model.onnx", "--calibration", compiled / "cal.npz",
                       "-o", compiled / "m.pcc", "--report", compiled / "m.json")[0] == 0
        assert run_cli(capsys, "simulate", compiled / "m.pcc", "--inputs", compiled / "cal.npz",
                       "-o", compiled / "o.npz")[0] == 0
    finally:
        os.umask(old)
    for name in ("m.pcc", "m.json", "o.npz"):
        assert (compiled / name).stat().st_mode & 0o777 == mode, name


def test_two_compiles_writing_one_path_at_once_leave_one_complete_program(compiled):
    command = [sys.executable, "-m", "photoncc", "compile", str(compiled / "model.onnx"),
               "--calibration", str(compiled / "cal.npz"), "-o", str(compiled / "same.pcc")]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE) for _ in range(2)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    Program.read(compiled / "same.pcc")  # complete: every checksum holds
    assert [p for p in listing(compiled) if p.endswith(".tmp")] == []


# ------------------------------------------------------------------ 9. dtypes, inspect and verify lines

def test_one_dtype_rule_integer_and_float64_data_feed_a_float_input(capsys, compiled):
    x = np.round(images(6) * 4)
    outputs = {}
    for dtype in (np.float32, np.float64, np.int16, np.uint8):
        data = np.abs(x) if dtype == np.uint8 else x
        np.savez(compiled / "d.npz", x=data.astype(dtype))
        code, _, err = run_cli(capsys, "simulate", compiled / "p.pcc", "--inputs", compiled / "d.npz",
                               "-o", compiled / f"{np.dtype(dtype).name}.npz")
        assert code == 0, err
        with np.load(compiled / f"{np.dtype(dtype).name}.npz") as f:
            outputs[np.dtype(dtype).name] = f["y"]
    np.testing.assert_array_equal(outputs["float64"], outputs["float32"])
    np.testing.assert_array_equal(outputs["int16"], outputs["float32"])


def test_integer_input_takes_integers_that_fit_and_refuses_floats(capsys, tmp_path):
    table = np.random.default_rng(0).normal(0, 1, (10, 8)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
             helper.make_node("Reshape", ["e", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)]
    model = make_model(nodes, [vinfo("ids", ["N", 4], TensorProto.INT64)], [vinfo("y", ["N", 3])],
                       [("table", table), ("shape", np.array([0, 32], np.int64)),
                        ("w", np.random.default_rng(1).normal(0, 1, (3, 32)).astype(np.float32))])
    path = save(model, tmp_path)
    ids = np.random.default_rng(2).integers(0, 10, (6, 4))
    for name, data, code_wanted in (("int32", ids.astype(np.int32), 0), ("float", ids.astype(np.float32), 2),
                                    ("huge", ids.astype(np.uint64) + np.uint64(2 ** 63), 2)):
        np.savez(tmp_path / f"{name}.npz", ids=data)
        code, _, err = run_cli(capsys, "compile", path, "--calibration", tmp_path / f"{name}.npz",
                               "-o", tmp_path / f"{name}.pcc")
        assert code == code_wanted, (name, err)
    assert "cannot feed the model's int64 input" in run_cli(capsys, "compile", path, "--calibration",
                                                            tmp_path / "float.npz")[2]
    assert "outside the model's int64 input" in run_cli(capsys, "compile", path, "--calibration",
                                                        tmp_path / "huge.npz")[2]


def test_inspect_writes_rank_one_types_without_a_dangling_comma_and_no_identity(capsys, tmp_path):
    """An exported model's final Identity is folded away (`ops` says Identity is removed)."""
    nodes = [helper.make_node("Gemm", ["x", "w"], ["logits"], transB=1),
             helper.make_node("Identity", ["logits"], ["scores"]),
             helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0)]
    model = make_model(nodes, [vinfo("x", ["N", 4])], [vinfo("scores", ["N", 3]), vinfo("label", ["N"], TensorProto.INT64)],
                       [("w", np.eye(3, 4, dtype=np.float32))])
    path = save(model, tmp_path)
    np.savez(tmp_path / "cal.npz", x=np.random.default_rng(0).normal(0, 1, (5, 4)).astype(np.float32))
    assert run_cli(capsys, "compile", path, "--calibration", tmp_path / "cal.npz", "-o", tmp_path / "p.pcc")[0] == 0
    program = Program.read(tmp_path / "p.pcc")
    assert "Identity" not in [i["op"] for i in program.instructions]
    code, out, _ = run_cli(capsys, "inspect", tmp_path / "p.pcc")
    assert "output label: int64[N]\n" in out and "[N,]" not in out and "Identity" not in out
    assert run_cli(capsys, "verify", tmp_path / "p.pcc", "--inputs", tmp_path / "cal.npz")[0] == 0


def synthetic_report(layers: int) -> dict:
    """A verify report with ``layers`` clipped and measured layers named features.0, features.1, ..."""
    names = [f"features.{i}" for i in range(layers)]
    return {"program": "p.pcc", "model": "m.onnx", "tier": "exact", "profile": "ideal", "inputs": {"samples": 4},
            "noise_model": None,
            "reference": "onnxruntime", "thresholds": {"rtol": 1e-4, "top1": 1.0}, "trials": 1,
            "outputs": [], "known_answer_test": "passed", "accuracy": None, "passed": True,
            "layers": [{"name": n, "exact": False, "sqnr_db": 40.0 - (i % 7), "relative_error": 0.0}
                       for i, n in enumerate(names)],
            "clipped_fraction": {n: 0.01 * (1 + i % 3) for i, n in enumerate(names)},
            "adc_saturated_fraction": None}


def test_verify_names_the_five_worst_clipped_layers_in_natural_order():
    out = "\n".join(text.verify_lines(synthetic_report(156)))
    clipped = [line for line in out.splitlines() if line.startswith("  clipped:")]
    assert len(clipped) == 6 and clipped[-1] == "  clipped: 151 more layer(s) with clipped inputs: 1% to 3% each"
    named = [line.split("'")[1] for line in clipped[:5]]
    assert named == ["features.2", "features.5", "features.8", "features.11", "features.14"]  # 3 %, numbers by value
    assert max(len(line) for line in out.splitlines()) < 300


def test_inspect_lines_stay_short_on_a_deep_network(capsys, tmp_path):
    nodes, inits, value = [], [], "x"
    for i in range(40):
        nodes += [helper.make_node("Gemm", [value, f"w{i}"], [f"z{i}"], transB=1, name=f"fc{i}"),
                  helper.make_node("Relu", [f"z{i}"], [f"a{i}"], name=f"relu{i}")]
        inits.append((f"w{i}", np.eye(4, dtype=np.float32)))
        value = f"a{i}"
    path = save(make_model(nodes, [vinfo("x", ["N", 4])], [vinfo(value, ["N", 4])], inits), tmp_path)
    np.savez(tmp_path / "cal.npz", x=np.abs(np.random.default_rng(0).normal(0, 1, (5, 4))).astype(np.float32))
    assert run_cli(capsys, "compile", path, "--calibration", tmp_path / "cal.npz", "-o", tmp_path / "p.pcc")[0] == 0
    out = run_cli(capsys, "inspect", tmp_path / "p.pcc")[1]
    assert "activations: Relu (electronic): 40 layers" in out
    assert max(len(line) for line in out.splitlines()) < 200
