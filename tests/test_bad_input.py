"""Unusable input: every case exits 2 with ONE line ``photoncc: error: ...`` on stderr that names the
file, key, node or option at fault, no traceback (unless --debug), and leaves no output file behind.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli
from photoncc.cli import main

DATA = Path(__file__).parent / "data"
CNN = "torch_legacy_cnn"


def listing(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` (hidden temporary files included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(capsys, folder: Path, *argv, needles=(), one_line=True) -> str:
    """Run ``argv``; assert exit 2, the one-line error naming every needle, no traceback, and that
    nothing was added to ``folder``. Returns stderr."""
    before = listing(folder)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("photoncc: error: "), err
    assert "Traceback" not in err and "Traceback" not in out
    if one_line:
        assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert listing(folder) == before, "an output file was left behind"
    return err


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with the cnn fixture and its compiled program."""
    folder = tmp_path_factory.mktemp("bad")
    for suffix in (".onnx", ".npz"):
        shutil.copy(DATA / f"{CNN}{suffix}", folder / f"{CNN}{suffix}")
    assert main(["compile", str(folder / f"{CNN}.onnx"), "--calibration", str(folder / f"{CNN}.npz")]) == 0
    return folder


@pytest.fixture
def scratch(tmp_path, work):
    """A fresh folder with the cnn model, its data and its program."""
    for name in (f"{CNN}.onnx", f"{CNN}.npz", f"{CNN}.pcc"):
        shutil.copy(work / name, tmp_path / name)
    return tmp_path


# ---------------------------------------------------------------------------------- models

def test_missing_model(capsys, tmp_path):
    for command in ("compile", "check"):
        refused(capsys, tmp_path, command, tmp_path / "nope.onnx", needles=("nope.onnx", "no such file"))


def test_directory_as_model(capsys, tmp_path):
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    refused(capsys, tmp_path, "compile", folder, needles=("model.onnx", "is a directory"))
    refused(capsys, tmp_path, "check", folder, needles=("model.onnx", "is a directory"))
    refused(capsys, tmp_path, "verify", folder, "--input-range", "0,1", needles=("model.onnx", "is a directory"))


def test_text_file_renamed_onnx(capsys, tmp_path):
    fake = tmp_path / "notes.onnx"
    fake.write_text("these are my notes, not a neural network\n")
    refused(capsys, tmp_path, "compile", fake, "--input-range", "0,1", needles=("notes.onnx", "not an ONNX model"))
    refused(capsys, tmp_path, "check", fake, needles=("notes.onnx", "not an ONNX model"))


def test_truncated_onnx(capsys, tmp_path):
    data = (DATA / f"{CNN}.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[:len(data) // 2])
    refused(capsys, tmp_path, "compile", cut, "--input-range", "0,1", needles=("cut.onnx", "truncated"))
    refused(capsys, tmp_path, "check", cut, needles=("cut.onnx", "truncated"))


def test_external_data_file_missing(capsys, tmp_path):
    model = tmp_path / "torch_dynamo_mlp.onnx"
    shutil.copy(DATA / "torch_dynamo_mlp.onnx", model)  # without torch_dynamo_mlp.onnx.data
    refused(capsys, tmp_path, "compile", model, "--input-range", "0,1",
            needles=("torch_dynamo_mlp.onnx.data", "not found", "net.0.weight"))
    refused(capsys, tmp_path, "check", model, needles=("torch_dynamo_mlp.onnx.data",))


def test_unsupported_nodes_are_listed_together(capsys, tmp_path):
    from onnx import helper
    from helpers import make_model, save, vinfo
    for name in ("skl2onnx_mlp_zipmap",):
        for suffix in (".onnx", ".npz"):
            shutil.copy(DATA / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    # two operators of a domain photoncc does not know (skl2onnx's LinearClassifier and Normalizer,
    # which this test used before, now compile)
    nodes = [helper.make_node("Whiten", ["input"], ["a"], domain="com.example", name="whiten"),
             helper.make_node("Calibrate", ["a"], ["y"], domain="com.example", name="calibrate")]
    save(make_model(nodes, [vinfo("input", ["N", 4])], [vinfo("y", ["N", 4])], extra_opsets=[("com.example", 1)]),
         tmp_path, "custom.onnx")
    np.savez(tmp_path / "custom.npz", input=np.ones((2, 4), np.float32))
    err = refused(capsys, tmp_path, "compile", tmp_path / "custom.onnx", "--calibration",
                  tmp_path / "custom.npz", one_line=False,
                  needles=("custom.onnx", "2 unsupported node(s)", "Whiten", "Calibrate"))
    # a list: a header line, then one indented line per node
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("  node ") for line in lines[1:])
    err = refused(capsys, tmp_path, "verify", tmp_path / "skl2onnx_mlp_zipmap.onnx", "--inputs",
                  tmp_path / "skl2onnx_mlp_zipmap.npz", one_line=False, needles=("ZipMap", "zipmap"))
    assert len(err.strip().splitlines()) == 2


def test_relu_network_without_calibration(capsys, tmp_path):
    for suffix in (".onnx", ".onnx.data"):
        shutil.copy(DATA / f"torch_dynamo_mlp{suffix}", tmp_path / f"torch_dynamo_mlp{suffix}")
    err = refused(capsys, tmp_path, "compile", tmp_path / "torch_dynamo_mlp.onnx",
                  needles=("--calibration", "input range", "node_linear"))
    assert "--input-range" in err


# ---------------------------------------------------------------------------------- options

@pytest.mark.parametrize("argv, needles", [
    (("--input-range", "1"), ("--input-range", "'1'", "LO,HI")),
    (("--input-range", "2,1"), ("--input-range", "'2,1'", "LO must not exceed HI")),
    (("--input-range", "a,b"), ("--input-range", "'a,b'")),
    (("-p", "nonexistent"), ("'nonexistent'", "not a built-in profile", "ideal")),
    (("--frobnicate",), ("--frobnicate", "photoncc compile --help")),
    (("--headroom", "-1"), ("--headroom",)),
])
def test_bad_compile_options(capsys, scratch, argv, needles):
    refused(capsys, scratch, "compile", scratch / f"{CNN}.onnx", "-o", scratch / "out.pcc", *argv, needles=needles)


@pytest.mark.parametrize("argv, needles", [
    (("--batch-size", "0"), ("--batch-size", "0")),
    (("--seed", "many"), ("--seed", "many")),
    (("--frobnicate",), ("--frobnicate",)),
])
def test_bad_simulate_options(capsys, scratch, argv, needles):
    refused(capsys, scratch, "simulate", scratch / f"{CNN}.pcc", "--inputs", scratch / f"{CNN}.npz",
            "-o", scratch / "out.npz", *argv, needles=needles)


@pytest.mark.parametrize("argv, needles", [
    (("--rtol", "-1"), ("--rtol",)),
    (("--top1", "2"), ("--top1",)),
    (("--samples", "0"), ("--samples",)),
])
def test_bad_verify_options(capsys, scratch, argv, needles):
    refused(capsys, scratch, "verify", scratch / f"{CNN}.pcc", "--json", scratch / "v.json", *argv, needles=needles)


def test_missing_required_option(capsys, scratch):
    refused(capsys, scratch, "simulate", scratch / f"{CNN}.pcc", needles=("--inputs",))


def test_unknown_command(capsys, tmp_path):
    refused(capsys, tmp_path, "compiel", needles=("compiel",))


@pytest.mark.parametrize("command", ["compile", "simulate", "verify-json", "verify-junit", "compile-report"])
def test_output_into_a_missing_folder(capsys, scratch, command):
    missing = scratch / "no" / "such" / "folder"
    argv = {
        "compile": ("compile", scratch / f"{CNN}.onnx", "--calibration", scratch / f"{CNN}.npz",
                    "-o", missing / "a.pcc"),
        "compile-report": ("compile", scratch / f"{CNN}.onnx", "--calibration", scratch / f"{CNN}.npz",
                           "-o", scratch / "a.pcc", "--report", missing / "r.json"),
        "simulate": ("simulate", scratch / f"{CNN}.pcc", "--inputs", scratch / f"{CNN}.npz", "-o", missing / "o.npz"),
        "verify-json": ("verify", scratch / f"{CNN}.pcc", "--inputs", scratch / f"{CNN}.npz",
                        "--json", missing / "v.json"),
        "verify-junit": ("verify", scratch / f"{CNN}.pcc", "--inputs", scratch / f"{CNN}.npz",
                         "--junit", missing / "v.xml"),
    }[command]
    refused(capsys, scratch, *argv, needles=(str(missing), "does not exist"))


def test_output_is_a_directory(capsys, scratch):
    (scratch / "out.pcc").mkdir()
    refused(capsys, scratch, "compile", scratch / f"{CNN}.onnx", "--calibration", scratch / f"{CNN}.npz",
            "-o", scratch / "out.pcc", needles=("out.pcc", "is a directory"))


# ---------------------------------------------------------------------------------- data files

def _image():
    with np.load(DATA / f"{CNN}.npz") as f:
        return f["image"]


@pytest.mark.parametrize("case, needles", [
    ("wrong_key", ("bad.npz", "'image'", "'picture'", "'other'")),
    ("extra_key", ("bad.npz", "'extra'", "matches no model input")),
    ("wrong_shape", ("bad.npz", "'image'", "[8, 3, 8, 16]", "[N, 3, 16, 16]")),
    ("no_batch_axis", ("bad.npz", "'image'", "[N, 3, 16, 16]")),
    ("complex_dtype", ("bad.npz", "'image'", "complex64", "float32")),
    ("nan_value", ("bad.npz", "'image'", "nan at sample 3", "finite")),
    ("inf_value", ("bad.npz", "'image'", "-inf at sample 5", "finite")),
    ("object_array", ("bad.npz", "'image'", "never unpickles")),
    ("huge_header", ("bad.npz", "'image'", "[1000000000000, 3, 16, 16]", "truncated or corrupted")),
    ("short_member", ("bad.npz", "'image'", "[8, 3, 16, 16]", "truncated or corrupted")),
    ("twice", ("bad.npz", "'image'", "stored twice")),
    ("not_npy_member", ("bad.npz", "'notes.txt'", "not a NumPy array")),
    ("empty_batch", ("bad.npz", "'image'", "no samples")),
    ("float_labels", ("bad.npz", "'label'", "integer class ids")),
    ("no_arrays", ("bad.npz", "no arrays")),
    ("not_npz", ("bad.npz", "not an .npz file")),
    ("npy", ("bad.npz", "single .npy array")),
    ("missing", ("bad.npz", "no such file")),
    ("directory", ("bad.npz", "not a file")),
])
def test_bad_inputs_file(capsys, scratch, case, needles):
    x = _image()
    bad = scratch / "bad.npz"
    if case == "wrong_key":
        np.savez(bad, picture=x, other=x)
    elif case == "extra_key":
        np.savez(bad, image=x, extra=x)
    elif case == "wrong_shape":
        np.savez(bad, image=x[:, :, :8])
    elif case == "no_batch_axis":
        np.savez(bad, image=x[0])
    elif case == "complex_dtype":
        np.savez(bad, image=x.astype(np.complex64))
    elif case in ("nan_value", "inf_value"):
        x = x.copy()
        x[3 if case == "nan_value" else 5, 1, 2, 3] = np.nan if case == "nan_value" else -np.inf
        np.savez(bad, image=x)
    elif case == "object_array":
        np.savez(bad, image=np.array([x[0], "a", None], dtype=object))  # pickled by np.savez
    elif case in ("huge_header", "short_member"):  # a header that declares more than the member holds
        header = io.BytesIO()
        shape = (10 ** 12,) + x.shape[1:] if case == "huge_header" else x.shape
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("image.npy", header.getvalue() + x[:2].tobytes())
    elif case == "twice":
        np.savez(bad, image=x)
        with zipfile.ZipFile(bad, "a") as archive, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it writes
            archive.writestr("image.npy", archive.read("image.npy"))
    elif case == "not_npy_member":
        np.savez(bad, image=x)
        with zipfile.ZipFile(bad, "a") as archive:
            archive.writestr("notes.txt", "calibration set")
    elif case == "empty_batch":
        np.savez(bad, image=x[:0])
    elif case == "float_labels":
        np.savez(bad, image=x, label=np.zeros(len(x), np.float32))
    elif case == "no_arrays":
        np.savez(bad)
    elif case == "not_npz":
        bad.write_text("image = [1, 2, 3]\n")
    elif case == "npy":
        with open(bad, "wb") as f:
            np.save(f, x)
    elif case == "directory":
        bad.mkdir()
    refused(capsys, scratch, "simulate", scratch / f"{CNN}.pcc", "--inputs", bad, "-o", scratch / "out.npz",
            needles=needles)
    refused(capsys, scratch, "verify", scratch / f"{CNN}.pcc", "--inputs", bad, "--json", scratch / "v.json",
            needles=needles)
    refused(capsys, scratch, "compile", scratch / f"{CNN}.onnx", "--calibration", bad, "-o",
            scratch / "out.pcc", needles=needles)


def test_single_input_model_accepts_any_key(capsys, scratch):
    np.savez(scratch / "any.npz", whatever=_image())
    code, _, err = run_cli(capsys, "simulate", scratch / f"{CNN}.pcc", "--inputs", scratch / "any.npz",
                       "-o", scratch / "out.npz")
    assert code == 0, err
    assert (scratch / "out.npz").is_file()


# ---------------------------------------------------------------------------------- profiles

@pytest.mark.parametrize("text, needles", [
    ("extends: ideal\nname: p\nbank: {bankz: 4}\n", ("'bank.bankz'", "did you mean 'bank.banks'")),
    ("extends: ideal\nname: p\nbanks: 4\n", ("'banks'", "did you mean 'bank'")),
    ("extends: ideal\nname: p\nbank: {banks: -1}\n", ("bank.banks", "-1", "an integer from 1 to 4096")),
    ("extends: ideal\nname: p\nbank: {banks: four}\n", ("bank.banks", "'four'", "an integer from 1 to 4096")),
    ("extends: ideal\nname: p\nverify: {top1: 2}\n", ("verify.top1", "[0, 1]")),
    ("extends: ideal\nname: p\nbank: 16\n", ("bank", "mapping")),
    ("extends: ideal\nname: [p\nbank: {banks: 4\n", ("not valid YAML", "line")),
    ("extends: idael\nname: p\n", ("extends", "'idael'", "not a built-in profile")),
    ("name: p\narchitecture: incoherent\n", ("missing required key",)),
    ("- just\n- a list\n", ("YAML mapping",)),
])
def test_bad_profile_yaml(capsys, scratch, text, needles):
    profile = scratch / "myprofile.yaml"
    profile.write_text(text)
    refused(capsys, scratch, "compile", scratch / f"{CNN}.onnx", "--calibration", scratch / f"{CNN}.npz",
            "-p", profile, "-o", scratch / "out.pcc", needles=("myprofile.yaml",) + needles)
    refused(capsys, scratch, "check", scratch / f"{CNN}.onnx", "-p", profile, needles=("myprofile.yaml",) + needles)


def test_good_profile_yaml_is_used(capsys, scratch):
    profile = scratch / "small.yaml"
    profile.write_text("extends: ideal\nname: small\nbank: {banks: 4, rings: 8}\n")
    code, _, err = run_cli(capsys, "compile", scratch / f"{CNN}.onnx", "--calibration", scratch / f"{CNN}.npz",
                       "-p", profile, "-o", scratch / "small.pcc", "--report", scratch / "r.json")
    assert code == 0, err
    assert "for small" in err
    import json
    report = json.loads((scratch / "r.json").read_text())
    assert report["profile"] == "small" and report["ring_count"] == 32


# ---------------------------------------------------------------------------------- --debug

@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(capsys, scratch, where):
    argv = ["compile", scratch / f"{CNN}.onnx", "--input-range", "2,1", "-o", scratch / "out.pcc"]
    argv = ["--debug"] + argv if where == "before" else argv + ["--debug"]
    before = listing(scratch)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert "UserError" in err
    assert err.strip().splitlines()[-1] == "photoncc: error: --input-range '2,1': LO must not exceed HI"
    assert listing(scratch) == before


def test_no_traceback_from_a_real_process(tmp_path):
    """The same checks as a user sees them: a separate process, its real stderr."""
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(np.random.default_rng(0).bytes(64))
    done = subprocess.run([sys.executable, "-m", "photoncc", "compile", str(fake), "--input-range", "0,1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("photoncc: error: ") and "fake.onnx" in lines[0]
    assert listing(tmp_path) == ["fake.onnx"]
    done = subprocess.run([sys.executable, "-m", "photoncc", "--debug", "compile", str(fake), "--input-range",
                           "0,1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("photoncc: error: ")


def test_verify_refuses_model_option_for_an_onnx_target(capsys, scratch):
    other = scratch / "other.onnx"
    shutil.copy(scratch / f"{CNN}.onnx", other)
    refused(capsys, scratch, "verify", scratch / f"{CNN}.onnx", "--model", other, "--inputs", scratch / f"{CNN}.npz",
            "--json", scratch / "v.json", needles=("--model", "other.onnx", "TARGET"))


def test_streamed_arrays_read_the_same_rows_as_a_full_load(tmp_path):
    """simulate reads its inputs batch by batch (memory flat in the number of samples)."""
    from photoncc.data import load_npz
    rng = np.random.default_rng(5)
    data = rng.standard_normal((300, 3, 4, 4))
    for name, save in (("stored.npz", np.savez), ("compressed.npz", np.savez_compressed)):
        path = tmp_path / name
        save(path, image=data, label=np.arange(300))
        streamed = load_npz(path, headers_only=True)
        assert streamed["image"].shape == data.shape and len(streamed["image"]) == 300
        pieces = [streamed["image"][i:i + 64] for i in range(0, 300, 64)]
        np.testing.assert_array_equal(np.concatenate(pieces), data)
        np.testing.assert_array_equal(streamed["image"][10:12], data[10:12])  # going back re-reads
        assert streamed["image"].astype(np.float32)[0:5].dtype == np.float32


def test_a_batch_the_fixed_batch_model_cannot_take_is_a_clear_error(tmp_path, capsys):
    """The pytorch-converted PoissonNLLLoss test has a fixed batch of 10 and a (10, 10) constant."""
    import os
    import onnx
    from onnx import numpy_helper
    from photoncc.cli import main
    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "pytorch-converted",
                          "test_PoissonNLLLLoss_no_reduce")
    x = numpy_helper.to_array(onnx.load_tensor(os.path.join(folder, "test_data_set_0", "input_0.pb")))
    np.savez(tmp_path / "all.npz", **{"0": x})
    np.savez(tmp_path / "five.npz", **{"0": x[:5]})
    program = tmp_path / "p.pcc"
    assert main(["compile", os.path.join(folder, "model.onnx"), "--calibration", str(tmp_path / "all.npz"),
                 "-o", str(program)]) == 0
    assert main(["simulate", str(program), "--inputs", str(tmp_path / "five.npz"), "-o", str(tmp_path / "o.npz")]) == 2
    assert not (tmp_path / "o.npz").exists()
    error = capsys.readouterr().err
    assert "instruction 'Mul_2' (Mul) cannot run on 5 sample(s)" in error
    assert "fixed batch of 10: simulate in batches of 10 (--batch-size 10)" in error
    assert main(["simulate", str(program), "--inputs", str(tmp_path / "all.npz"), "-o", str(tmp_path / "o.npz")]) == 0
