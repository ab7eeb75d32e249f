"""The ``photoncc`` command line end to end on the small exporter fixtures (tests/data/FIXTURES.md).

Commands run in-process through ``photoncc.cli.main(argv)`` (it returns the exit code; output is
captured with capsys), a few through ``python -m photoncc`` and one through the installed
``photoncc`` console script. Exit codes: 0 ok, 1 verify found the outputs not equivalent, 2 unusable
input.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from onnx import numpy_helper

from photoncc import __version__
from helpers import run_cli
from photoncc.cli import main
from photoncc.program import Program
from photoncc.sim import Simulator

DATA = Path(__file__).parent / "data"
CNN = "torch_legacy_cnn"
COMMANDS = ("compile", "simulate", "verify", "inspect", "check", "profiles", "ops")


# ---------------------------------------------------------------------------------- helpers

def copy_fixture(name: str, folder: Path) -> Path:
    """Copy ``name``.onnx (+ .onnx.data) and ``name``.npz into ``folder``; returns the model path."""
    for suffix in (".onnx", ".onnx.data", ".npz"):
        if (DATA / f"{name}{suffix}").exists():
            shutil.copy(DATA / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder / f"{name}.onnx"


def ort_run(model: Path, feeds: dict) -> dict:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def assert_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("photoncc: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """torch_legacy_cnn compiled once (default output path, --report, --dump-ir)."""
    folder = tmp_path_factory.mktemp("cnn")
    model = copy_fixture(CNN, folder)
    code = main(["compile", str(model), "--calibration", str(folder / f"{CNN}.npz"),
                 "--report", str(folder / "report.json"), "--dump-ir", str(folder / "ir")])
    assert code == 0
    return {"folder": folder, "model": model, "npz": folder / f"{CNN}.npz", "program": folder / f"{CNN}.pcc",
            "report": json.loads((folder / "report.json").read_text()), "ir": folder / "ir"}


@pytest.fixture(scope="module")
def wrong_program(cnn):
    """The cnn program with the last layer's ring transmissions halved (still in [0, 1]), changed
    consistently through the public API: its known-answer output is the simulator's output of the
    changed program, so the program is well-formed but no longer computes the model."""
    program = Program.read(cnn["program"])
    bank = [i for i in program.instructions if i["op"] == "Bank"][-1]
    t_name = bank["inputs"][1]
    assert t_name == f"{bank['name']}.T"
    changed = program.with_tensor(t_name, program.tensors[t_name] * np.float32(0.5))
    kat = changed.manifest["kat"]
    kat_in = {name: changed.tensors[ref] for name, ref in kat["inputs"].items()}
    got = Simulator(changed).run(kat_in)
    for name, ref in kat["outputs"].items():
        changed = changed.with_tensor(ref, got[name].astype(changed.tensors[ref].dtype))
    path = cnn["folder"] / "wrong.pcc"
    changed.write(path)
    return path


# ---------------------------------------------------------------------------------- basics

def test_group_help_lists_commands_and_exit_codes(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert "Usage: photoncc" in out
    for command in COMMANDS:
        assert command in out
    text = " ".join(out.split())  # click wraps the text to the terminal width
    assert "Exit codes: 0 success, 1 verify found the outputs not equivalent, 2 unusable input" in text


@pytest.mark.parametrize("command, phrase", [
    ("compile", "Compile MODEL"), ("simulate", "device simulator"), ("verify", "original model"),
    ("inspect", "placement"), ("check", "cannot run"), ("profiles", "hardware profiles"),
    ("ops", "ONNX operators"),
])
def test_command_help(capsys, command, phrase):
    code, out, err = run_cli(capsys, command, "--help")
    assert code == 0, err
    assert f"Usage: photoncc {command}" in out
    assert phrase in out


def test_help_documents_the_contract_options(capsys):
    _, out, _ = run_cli(capsys, "compile", "--help")
    for option in ("--profile", "--output", "--calibration", "--report", "--dump-ir", "--input-range"):
        assert option in out
    _, out, _ = run_cli(capsys, "verify", "--help")
    for option in ("--model", "--inputs", "--seed", "--json", "--junit", "--rtol", "--top1"):
        assert option in out


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"photoncc, version {__version__}"


def test_python_dash_m_version():
    done = subprocess.run([sys.executable, "-m", "photoncc", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert __version__ in done.stdout


def test_installed_console_script(tmp_path):
    exe = shutil.which("photoncc")
    assert exe, "the photoncc console script is not on PATH (pip install -e .)"
    model = copy_fixture("skl2onnx_mlp_zipmap", tmp_path)
    done = subprocess.run([exe, "check", str(model)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("photoncc: error: ")
    assert "ZipMap" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([exe, "check", str(DATA / f"{CNN}.onnx")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "every node is supported" in done.stdout


def test_ops_lists_conv_and_gemm_as_optical(capsys):
    code, out, _ = run_cli(capsys, "ops")
    assert code == 0
    mapping = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    assert mapping["Conv"] == "optical"
    assert mapping["Gemm"] == "optical"
    assert mapping["MatMul"] == "optical"
    assert mapping["Relu"] == "electronic"


def test_profiles_lists_ideal(capsys):
    code, out, _ = run_cli(capsys, "profiles")
    assert code == 0
    assert "ideal" in [line.split()[0] for line in out.splitlines() if line.strip()]


def test_profiles_prints_ideal_as_yaml(capsys):
    code, out, _ = run_cli(capsys, "profiles", "ideal")
    assert code == 0
    profile = yaml.safe_load(out)
    assert profile["name"] == "ideal"
    assert profile["architecture"] == "incoherent"
    assert profile["bank"]["banks"] > 0 and profile["bank"]["rings"] > 0


@pytest.mark.parametrize("argv", [("profiles", "idael"), ("check", DATA / f"{CNN}.onnx", "-p", "idael")])
def test_unknown_profile_suggests_a_near_name(capsys, argv):
    code, out, err = run_cli(capsys, *argv)
    assert_error(code, err, "'idael'", "did you mean 'ideal'")
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------- compile

def test_compile_writes_program_next_to_model_by_default(cnn):
    assert cnn["program"].is_file()
    program = Program.read(cnn["program"])
    assert program.manifest["profile"]["name"] == "ideal"
    assert [o["name"] for o in program.manifest["outputs"]] == ["logits"]


def test_compile_output_option(capsys, tmp_path):
    model = copy_fixture(CNN, tmp_path)
    out_path = tmp_path / "elsewhere.pcc"
    code, _, err = run_cli(capsys, "compile", model, "--calibration", tmp_path / f"{CNN}.npz", "-o", out_path)
    assert code == 0, err
    assert out_path.is_file()
    assert not (tmp_path / f"{CNN}.pcc").exists()
    assert f"-> {out_path}" in err
    assert Program.read(out_path).manifest["source"]["sha256"]


def test_compile_report(cnn):
    report = cnn["report"]
    profile = Program.read(cnn["program"]).manifest["profile"]
    ring_count = profile["bank"]["banks"] * profile["bank"]["rings"]
    assert report["profile"] == "ideal"
    assert report["ring_count"] == ring_count
    assert report["optical_layers"] == len(report["layers"]) == 5
    assert {"/conv1/Conv", "/fc/Gemm"} <= {layer["name"] for layer in report["layers"]}
    for layer in report["layers"]:
        assert layer["tiles"] >= 1
        assert layer["ring_count"] == ring_count
        assert 0 < layer["rings_used"] <= layer["tiles"] * layer["ring_count"]
        assert layer["placement"] == "optical"
    assert report["tiles"] == sum(layer["tiles"] for layer in report["layers"])
    # a tiled layer: some layer needs more than one bank of the profile
    assert any(layer["tiles"] > 1 for layer in report["layers"])


def test_dump_ir_writes_one_text_file_per_stage(cnn):
    from photoncc.compiler import PIPELINE
    stages = ["import"] + [name for name, _, _ in PIPELINE]
    files = sorted(p.name for p in cnn["ir"].iterdir())
    assert files == [f"{i:02d}_{name}.txt" for i, name in enumerate(stages)]
    for path in cnn["ir"].iterdir():
        assert path.read_text().strip()
    assert "Bank" in (cnn["ir"] / files[-1]).read_text()


def test_inspect_shows_every_optical_layer(capsys, cnn):
    code, out, err = run_cli(capsys, "inspect", cnn["program"])
    assert code == 0, err
    assert "ideal" in out and "image" in out and "logits" in out
    lines = out.splitlines()
    for layer in cnn["report"]["layers"]:
        rows = [line for line in lines if line.split() and line.split()[0] == layer["name"]]
        assert len(rows) == 1, layer["name"]
        assert rows[0].split()[-1] == "optical"


def test_inspect_json_is_the_compile_report(capsys, cnn):
    code, out, _ = run_cli(capsys, "inspect", cnn["program"], "--json")
    assert code == 0
    assert json.loads(out) == cnn["report"]


def test_check_good_model(capsys):
    code, out, err = run_cli(capsys, "check", DATA / f"{CNN}.onnx")
    assert code == 0, err
    assert "every node is supported" in out and "5 optical layer(s)" in out


def test_check_zipmap_lists_the_node_with_a_hint(capsys):
    code, _, err = run_cli(capsys, "check", DATA / "skl2onnx_mlp_zipmap.onnx")
    assert code == 2
    assert err.startswith("photoncc: error: ") and "Traceback" not in err
    assert "skl2onnx_mlp_zipmap.onnx" in err and "1 unsupported node(s)" in err
    assert "ZipMap" in err and "'zipmap': False" in err


def test_check_logreg_maps_the_linear_classifier_and_shows_the_split(capsys):
    """skl2onnx's LinearClassifier (its Gemm a bank) and Normalizer (electronic) are supported."""
    code, out, err = run_cli(capsys, "check", DATA / "skl2onnx_logreg.onnx")
    assert code == 0, err
    lines = out.splitlines()
    assert "every node is supported: 1 optical layer(s)" in lines[0]
    assert lines[1] == "  MACs per sample: 100.0% optical (640 of 640); none electronic"
    assert lines[2].startswith("  electronic ops: ") and "Normalizer x1" in lines[2] and "ArgMax x1" in lines[2]


def test_compile_zipmap_fails_with_the_same_list_and_writes_nothing(capsys, tmp_path):
    model = copy_fixture("skl2onnx_mlp_zipmap", tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    _, _, check_err = run_cli(capsys, "check", model)
    code, _, err = run_cli(capsys, "compile", model, "--calibration", tmp_path / "skl2onnx_mlp_zipmap.npz")
    assert code == 2
    assert err == check_err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not model.with_suffix(".pcc").exists()


# ---------------------------------------------------------------------------------- simulate

def test_simulate_matches_onnxruntime(capsys, cnn, tmp_path):
    out_path = tmp_path / "out.npz"
    code, _, err = run_cli(capsys, "simulate", cnn["program"], "--inputs", cnn["npz"], "-o", out_path)
    assert code == 0, err
    assert "simulated 8 sample(s)" in err
    with np.load(out_path) as f:
        outputs = dict(f)
    feeds = dict(np.load(cnn["npz"]))
    ref = ort_run(cnn["model"], feeds)
    assert sorted(outputs) == sorted(ref) == ["logits"]
    for name, want in ref.items():
        got = outputs[name]
        assert got.dtype == want.dtype == np.float32
        assert got.shape == want.shape == (8, 10)
        assert np.abs(got.astype(np.float64) - want).max() <= 1e-4 * np.ptp(want)


def test_simulate_warns_of_clipped_inputs_with_a_nonzero_share(capsys, cnn, tmp_path):
    """One input value far outside the calibrated range, among many: the warning names the layer
    and shows its small share with significant digits (never a rounded "0.00%")."""
    feeds = {name: np.repeat(value, 20, axis=0) for name, value in np.load(cnn["npz"]).items()}
    name, x = next(iter(feeds.items()))
    x.flat[0] = 100 * np.abs(x).max() + 100
    np.savez(tmp_path / "far.npz", **feeds)
    code, _, err = run_cli(capsys, "simulate", cnn["program"], "--inputs", tmp_path / "far.npz", "-o", tmp_path / "o.npz")
    assert code == 0, err
    shares = [float(line.split(": ")[3].split("%")[0]) for line in err.splitlines() if "were outside" in line]
    assert shares and min(shares) > 0
    assert any(abs(s - 100 / x.size) <= 0.01 * 100 / x.size for s in shares)  # the first layer: 1 value of all


def test_simulate_names_the_five_worst_layers_and_counts_the_rest(capsys, tmp_path):
    """8 Gemm layers, each on its own model input, and inputs of which layer i gets (i + 1) x 5 %
    far above its calibrated range: the warnings name the 5 layers with the largest shares, worst
    first, and one more line counts the other 3 with the range of their shares, so that a deep
    network's simulate does not print a line per layer."""
    from helpers import make_model, save, vinfo
    from onnx import helper as oh

    rng = np.random.default_rng(4)
    nodes = [oh.make_node("Gemm", [f"x{i}", f"w{i}"], [f"y{i}"], name=f"fc{i}", transB=1) for i in range(8)]
    nodes.append(oh.make_node("Sum", [f"y{i}" for i in range(8)], ["y"], name="sum"))
    inits = [(f"w{i}", rng.normal(0, 0.5, (4, 20)).astype(np.float32)) for i in range(8)]
    model = save(make_model(nodes, [vinfo(f"x{i}", [None, 20]) for i in range(8)], [vinfo("y", [None, 4])], inits),
                 tmp_path)
    np.savez(tmp_path / "cal.npz", **{f"x{i}": rng.uniform(0, 1, (16, 20)).astype(np.float32) for i in range(8)})
    far = {f"x{i}": rng.uniform(0, 1, (40, 20)).astype(np.float32) for i in range(8)}
    for i in range(8):
        far[f"x{i}"].flat[:40 * (i + 1)] = 5.0  # (i + 1) x 5 % of layer i's inputs
    np.savez(tmp_path / "far.npz", **far)
    assert run_cli(capsys, "compile", model, "--calibration", tmp_path / "cal.npz", "-o", tmp_path / "m.pcc")[0] == 0
    code, _, err = run_cli(capsys, "simulate", tmp_path / "m.pcc", "--inputs", tmp_path / "far.npz",
                           "-o", tmp_path / "o.npz")
    assert code == 0, err
    named = [line for line in err.splitlines() if "of its inputs were outside" in line]
    assert [line.split("'")[1] for line in named] == ["fc7", "fc6", "fc5", "fc4", "fc3"], err
    assert [float(line.split(": ")[3].split("%")[0]) for line in named] == [40, 35, 30, 25, 20], err
    assert "photoncc: warning: 3 more layer(s) with clipped inputs: 5% to 15% each" in err.splitlines(), err


def test_simulate_default_output_path(capsys, cnn):
    default = cnn["program"].with_suffix(".outputs.npz")
    default.unlink(missing_ok=True)
    code, _, err = run_cli(capsys, "simulate", cnn["program"], "--inputs", cnn["npz"])
    assert code == 0, err
    assert default.is_file()
    assert str(default) in err
    with np.load(default) as f:
        assert f["logits"].shape == (8, 10)


def test_simulate_batch_size_does_not_change_outputs(capsys, cnn, tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert run_cli(capsys, "simulate", cnn["program"], "--inputs", cnn["npz"], "-o", a)[0] == 0
    assert run_cli(capsys, "simulate", cnn["program"], "--inputs", cnn["npz"], "-o", b, "--batch-size", "3")[0] == 0
    with np.load(a) as fa, np.load(b) as fb:
        assert fa["logits"].shape == fb["logits"].shape == (8, 10)
        scale = np.ptp(fa["logits"])
        np.testing.assert_allclose(fb["logits"], fa["logits"], rtol=0, atol=1e-6 * scale)


def simulate_fixture(capsys, folder: Path, name: str, output: str):
    """Compile fixture ``name`` (calibrated on its own samples) and simulate it with the CLI; returns
    output ``output`` from the device and from onnxruntime."""
    model = copy_fixture(name, folder)
    npz = folder / f"{name}.npz"
    assert run_cli(capsys, "compile", model, "--calibration", npz)[0] == 0
    code, _, err = run_cli(capsys, "simulate", model.with_suffix(".pcc"), "--inputs", npz, "-o", folder / "o.npz")
    assert code == 0, err
    with np.load(folder / "o.npz") as f:
        return f[output], ort_run(model, dict(np.load(npz)))[output]


def test_simulate_mlp_tanh(capsys, tmp_path):
    got, ref = simulate_fixture(capsys, tmp_path, "torch_legacy_mlp_tanh", "scores")
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert np.abs(got.astype(np.float64) - ref).max() <= 1e-4 * np.ptp(ref)


def test_simulate_external_data_model(capsys, tmp_path):
    got, ref = simulate_fixture(capsys, tmp_path, "torch_dynamo_mlp", "probs")
    assert np.abs(got.astype(np.float64) - ref).max() <= 1e-4 * np.ptp(ref)


# ---------------------------------------------------------------------------------- verify

def test_verify_program_with_inputs_passes(capsys, cnn, tmp_path):
    report_path, junit_path = tmp_path / "v.json", tmp_path / "v.xml"
    code, out, err = run_cli(capsys, "verify", cnn["program"], "--inputs", cnn["npz"], "--json", report_path,
                         "--junit", junit_path)
    assert code == 0, out + err
    assert "PASS" in out and "ok   logits" in out
    report = json.loads(report_path.read_text())
    assert report["tier"] == "exact"
    assert report["passed"] is True
    assert report["seed"] == 0
    assert report["thresholds"]["rtol"] == pytest.approx(1e-4) and report["thresholds"]["top1"] == 1.0
    assert report["inputs"]["samples"] == 8
    [output] = report["outputs"]
    assert output["name"] == "logits" and output["passed"] is True
    assert 0 <= output["relative_error"] <= 1e-4
    assert output["top1_agreement"] == 1.0
    suite = ET.parse(junit_path).getroot()
    assert suite.tag == "testsuite"
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    [case] = suite.findall("testcase")
    assert case.get("name") == "logits" and case.find("failure") is None


def test_verify_seed_is_reported(capsys, cnn, tmp_path):
    code, _, _ = run_cli(capsys, "verify", cnn["program"], "--inputs", cnn["npz"], "--seed", "7",
                     "--json", tmp_path / "v.json")
    assert code == 0
    assert json.loads((tmp_path / "v.json").read_text())["seed"] == 7


def test_verify_without_inputs_runs_the_kept_calibration_samples_and_says_so(capsys, tmp_path):
    model = copy_fixture("skl2onnx_mlp", tmp_path)
    assert run_cli(capsys, "compile", model, "--calibration", tmp_path / "skl2onnx_mlp.npz")[0] == 0
    kept = Program.read(model.with_suffix(".pcc"))
    assert kept.manifest["samples"]["count"] == 32 and kept.manifest["samples"]["source"] == "calibration"
    code, out, err = run_cli(capsys, "verify", model.with_suffix(".pcc"), "--samples", "5", "--seed", "3",
                         "--json", tmp_path / "v.json")
    assert code == 0, out + err
    assert "no --inputs given" in err and "the 5 calibration samples kept in the program" in err
    assert "5 samples" in out
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["inputs"]["samples"] == 5 and report["inputs"]["source"] == "5 calibration samples kept in the program"
    np.testing.assert_array_equal(kept.tensors["samples/input"][:5],
                                  np.load(tmp_path / "skl2onnx_mlp.npz")["input"][np.linspace(0, 31, 32).round()
                                                                                 .astype(int)][:5])
    assert report["seed"] == 3


def test_verify_without_inputs_draws_seeded_samples_for_a_program_without_calibration_data(capsys, tmp_path):
    model = tmp_path / "digits_sigmoid_mlp.onnx"  # every range known without data: Sigmoid, Tanh, the inputs'
    shutil.copy(DATA / model.name, model)
    assert run_cli(capsys, "compile", model, "--input-range", "0,16")[0] == 0
    assert "samples" not in Program.read(model.with_suffix(".pcc")).manifest
    code, out, err = run_cli(capsys, "verify", model.with_suffix(".pcc"), "--samples", "5", "--seed", "3",
                             "--json", tmp_path / "v.json")
    assert code == 0, out + err
    assert "no --inputs given" in err and "5 samples drawn" in err and "seed 3" in err
    assert "keeps no calibration samples" in err
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["inputs"]["samples"] == 5 and "drawn" in report["inputs"]["source"]


def test_verify_onnx_target_compiles_in_memory(capsys, tmp_path):
    model = copy_fixture(CNN, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli(capsys, "verify", model, "--inputs", tmp_path / f"{CNN}.npz")
    assert code == 0, out + err
    assert "compiled in memory" in out and "PASS" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_verify_reports_label_accuracy(capsys, tmp_path):
    model = copy_fixture("skl2onnx_mlp", tmp_path)
    npz = tmp_path / "skl2onnx_mlp.npz"
    assert "label" in np.load(npz).files
    code, out, err = run_cli(capsys, "verify", model, "--inputs", npz, "--json", tmp_path / "v.json")
    assert code == 0, out + err
    assert "accuracy on labels" in out
    accuracy = json.loads((tmp_path / "v.json").read_text())["accuracy"]
    assert accuracy["output"] == "probabilities"
    assert accuracy["model"] == pytest.approx(31 / 32)  # FIXTURES.md: sample 15 is misclassified
    assert accuracy["device"] == pytest.approx(31 / 32)


def test_verify_fails_on_a_program_with_changed_weights(capsys, wrong_program, cnn, tmp_path):
    report_path, junit_path = tmp_path / "v.json", tmp_path / "v.xml"
    code, out, err = run_cli(capsys, "verify", wrong_program, "--model", cnn["model"], "--inputs", cnn["npz"],
                         "--json", report_path, "--junit", junit_path)
    assert code == 1, out + err
    assert "FAIL" in out and "photoncc: error" not in err
    report = json.loads(report_path.read_text())
    assert report["passed"] is False
    assert report["outputs"][0]["relative_error"] > 1e-4
    suite = ET.parse(junit_path).getroot()
    assert suite.get("failures") == "1"
    assert suite.find("testcase/failure") is not None


def test_verify_thresholds_override(capsys, wrong_program, cnn):
    # a huge --rtol and no top-1 requirement let the wrong program pass ...
    code, out, _ = run_cli(capsys, "verify", wrong_program, "--model", cnn["model"], "--inputs", cnn["npz"],
                       "--rtol", "1e9", "--top1", "0")
    assert code == 0, out
    assert "relative error <= 1e+09" in out
    # ... a huge --rtol alone is not enough when top-1 agreement is lost, and --top1 alone neither
    code, out, _ = run_cli(capsys, "verify", wrong_program, "--model", cnn["model"], "--inputs", cnn["npz"],
                       "--top1", "0")
    assert code == 1, out


def test_verify_rtol_below_the_error_fails_a_passing_program(capsys, cnn, tmp_path):
    run_cli(capsys, "verify", cnn["program"], "--inputs", cnn["npz"], "--json", tmp_path / "v.json")
    error = json.loads((tmp_path / "v.json").read_text())["outputs"][0]["relative_error"]
    if error == 0:
        pytest.skip("the device reproduced the model exactly: no rtol below the error")
    code, out, _ = run_cli(capsys, "verify", cnn["program"], "--inputs", cnn["npz"], "--rtol", repr(error / 2))
    assert code == 1, out
    assert "FAIL logits" in out


def test_verify_against_a_different_model_fails(capsys, cnn, tmp_path):
    model = onnx.load(str(cnn["model"]))
    for init in model.graph.initializer:
        if init.name == "fc.weight":
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.5), init.name))
            break
    else:
        pytest.fail("fc.weight not found in the fixture")
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    code, out, err = run_cli(capsys, "verify", cnn["program"], "--model", other, "--inputs", cnn["npz"])
    assert code == 1, out + err
    assert "FAIL" in out and "other.onnx" in out


def test_verify_fails_with_exit_1_when_only_the_weights_were_changed(capsys, cnn, tmp_path):
    program = Program.read(cnn["program"])
    bank = [i for i in program.instructions if i["op"] == "Bank"][-1]
    t_name = f"{bank['name']}.T"
    program.with_tensor(t_name, program.tensors[t_name] * np.float32(0.5)).write(tmp_path / "half.pcc")
    code, out, err = run_cli(capsys, "verify", tmp_path / "half.pcc", "--model", cnn["model"], "--inputs", cnn["npz"])
    assert code == 1, out + err


def test_verify_finds_the_recorded_model_from_another_folder(capsys, tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    copy_fixture(CNN, tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "compile", f"models/{CNN}.onnx", "--calibration", f"models/{CNN}.npz")[0] == 0
    assert Program.read(f"models/{CNN}.pcc").manifest["source"]["source"] == f"models/{CNN}.onnx"
    monkeypatch.chdir(tmp_path / "models")
    code, out, err = run_cli(capsys, "verify", f"{CNN}.pcc", "--inputs", f"{CNN}.npz")
    assert code == 0, out + err
    assert "PASS" in out


def test_ops_lists_exactly_the_operators_the_importer_accepts(capsys):
    """Every registered ONNX operator is listed with its placement, and each is accepted by the
    importer in a one-node model (Constant: read by the importer itself); the IR's own ops are
    neither listed nor accepted."""
    from photoncc import ops
    from photoncc.importer import _unsupported
    code, out, _ = run_cli(capsys, "ops")
    listed = {line.split()[0]: line.split()[1] for line in out.splitlines()}
    assert listed == {o.name: o.placement for o in ops.REGISTRY.values() if o.onnx_op}
    for name, found in ops.REGISTRY.items():
        node = onnx.helper.make_node(name, ["x"], ["y"], domain=found.domain)
        refused = _unsupported(node, "n")
        assert (refused is None) == (found.onnx_op and name != "Constant"), (name, refused)


def test_verify_onnx_target_reads_the_model_once(capsys, tmp_path, monkeypatch):
    """verify of an ONNX model imports it once: the graph read for the input specs is compiled."""
    from photoncc import compiler, importer
    model = copy_fixture(CNN, tmp_path)
    reads, real = [], importer.import_model
    for module in (compiler, importer):
        monkeypatch.setattr(module, "import_model", lambda path: reads.append(path) or real(path))
    code, out, err = run_cli(capsys, "verify", model, "--inputs", tmp_path / f"{CNN}.npz")
    assert code == 0, out + err
    assert reads == [Path(model)]


def test_pyproject_ships_every_package():
    """A non-editable install (CI's) gets only the packages pyproject lists: every folder of
    photoncc with an __init__.py must be among them."""
    import re
    root = Path(__file__).resolve().parent.parent
    listed = set(re.search(r"^packages = \[(.*)\]$", (root / "pyproject.toml").read_text(), re.M).group(1)
                 .replace('"', "").replace(" ", "").split(","))
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "photoncc").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
