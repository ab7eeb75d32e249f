"""Regression tests for the bugs the border fuzz campaign found (issue "Nothing lost, nothing silent").

The fuzzers (tests/fuzz/, bench/fuzz.py, docs/fuzzing.md) found 12 distinct bugs and one minor
one at the command line's four borders (models, profiles, data files and programs) in their first
campaign, and 9 more in the 10 000-case campaign after it (the last section). Each test
below builds the smallest input that showed one of them and runs the in-process command line: the
command now refuses it with exit 2 and exactly one ``photoncc: error: ...`` line that says what is
wrong (no traceback, no NumPy warning), and leaves no output file behind.
"""
from __future__ import annotations

import copy
import hashlib
import io
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from helpers import make_model, run_cli, save, vinfo
from photoncc import cli
from photoncc.cli import common
from photoncc.program import Program

ERROR = "photoncc: error: "
RNG = np.random.default_rng(0)


def weights(*shape) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(capsys, folder: Path, *argv, phrase: str) -> str:
    """Run ``photoncc argv``: exit 2, one error line holding ``phrase``, nothing new in ``folder``.
    Returns the error line."""
    before = listing(folder)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), err[:2000]
    assert phrase in lines[0], (phrase, lines[0])
    assert "Traceback" not in out + err
    assert listing(folder) == before, "a file was left behind"
    return lines[0]


def unchecked_model(folder: Path, nodes, inputs, outputs, inits, name="m.onnx") -> Path:
    """A model written as it is, without onnx.checker (the fuzzers' mutated models pass the
    checker: it does not look at what these tests break)."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def gemm(folder: Path, width: int = 4, inits=None, elem=TensorProto.FLOAT) -> Path:
    """x (N, width) @ W (4, 3) -> y (N, 3)."""
    inits = inits if inits is not None else [numpy_helper.from_array(weights(4, 3), "W")]
    names = ["x"] + [t.name for t in inits]
    return unchecked_model(folder, [helper.make_node("Gemm", names, ["y"])], [vinfo("x", ["N", width], elem)],
                           [vinfo("y", ["N", 3])], inits)


def mlp(folder: Path, inits: dict) -> Path:
    """Gemm, Relu, Gemm, Softmax over four features (checked by onnx.checker)."""
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("Gemm", ["a", "W2", "b2"], ["z"]), helper.make_node("Softmax", ["z"], ["y"], axis=1)]
    return save(make_model(nodes, [vinfo("x", ["N", 4])], [vinfo("y", ["N", 3])], list(inits.items())), folder)


def mlp_weights() -> dict:
    return {"W1": weights(4, 5), "b1": weights(5), "W2": weights(5, 3), "b2": weights(3)}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    """The MLP, calibration data for it, and its programs for ideal and mrr-incoherent-8b."""
    folder = tmp_path_factory.mktemp("regressions")
    path = mlp(folder, mlp_weights())
    np.savez(folder / "x.npz", x=weights(16, 4))
    found = {"model": path, "data": folder / "x.npz"}
    for profile in ("ideal", "mrr-incoherent-8b"):
        found[profile] = folder / f"{profile}.pcc"
        assert cli.main(["compile", str(path), "-p", profile, "--calibration", str(folder / "x.npz"),
                         "-o", str(found[profile])]) == 0
    return found


# ---------------------------------------------------------------------- model border

@pytest.mark.parametrize("broken, phrase", [
    ("float_data", "initializer 'b' cannot be read"),   # dims [2], three values
    ("data_type", "initializer 'b' cannot be read"),    # data_type 99, no such type
])
def test_initializer_that_does_not_decode_is_refused(capsys, tmp_path, broken, phrase):
    if broken == "float_data":
        b = TensorProto(name="b", data_type=TensorProto.FLOAT, dims=[2], float_data=[0.0, 0.0, 0.0])
    else:
        b = numpy_helper.from_array(weights(3), "b")
        b.data_type = 99
    path = gemm(tmp_path, inits=[numpy_helper.from_array(weights(4, 3), "W"), b])
    refused(capsys, tmp_path, "check", path, phrase=phrase)


def test_input_of_an_element_type_photoncc_cannot_feed_is_refused(capsys, tmp_path):
    path = gemm(tmp_path, elem=TensorProto.FLOAT8E4M3FN)
    refused(capsys, tmp_path, "check", path, phrase="input 'x' has element type FLOAT8E4M3FN")


@pytest.mark.parametrize("case, phrase", [
    ("gemm-width", "node 'Gemm_0' (Gemm) cannot run on"),
    ("softmax-axis", "node 'Softmax_1' (Softmax) cannot run on"),
    ("conv-channels", "node 'Conv_0' (Conv) cannot run on"),
])
def test_node_that_cannot_run_on_the_declared_shapes_is_named(capsys, tmp_path, case, phrase):
    if case == "gemm-width":       # five features, W has four rows
        path = gemm(tmp_path, width=5)
    elif case == "softmax-axis":   # axis 5 of a rank-2 value
        path = unchecked_model(tmp_path, [helper.make_node("Gemm", ["x", "W"], ["h"]),
                                          helper.make_node("Softmax", ["h"], ["y"], axis=5)],
                               [vinfo("x", ["N", 4])], [vinfo("y", ["N", 3])],
                               [numpy_helper.from_array(weights(4, 3), "W")])
    else:                          # three input channels, a kernel for one
        path = unchecked_model(tmp_path, [helper.make_node("Conv", ["x", "K"], ["y"])],
                               [vinfo("x", ["N", 3, 4, 4])], [vinfo("y", ["N", 2, 2, 2])],
                               [numpy_helper.from_array(weights(2, 1, 3, 3), "K")])
    line = refused(capsys, tmp_path, "check", path, phrase=phrase)
    assert "of the shapes the model declares" in line


def external_weights(folder: Path, file: str, location: str, offset: str) -> TensorProto:
    """Gemm's W (4 x 3) written to ``folder/file``, its external-data entries as given."""
    tensor = numpy_helper.from_array(weights(4, 3), "W")
    (folder / file).write_bytes(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", "48")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def test_external_data_offset_that_is_not_a_number_is_refused(capsys, tmp_path):
    path = gemm(tmp_path, inits=[external_weights(tmp_path, "w.bin", "w.bin", "")])
    refused(capsys, tmp_path, "check", path, phrase="external data of tensor 'W' is malformed")


def test_non_finite_weights_are_refused(capsys, tmp_path):
    """A -inf bias before Tanh: onnxruntime gives finite outputs, the device only NaN."""
    b1 = np.zeros(3, np.float32)
    b1[0] = -np.inf
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("Gemm", ["t", "W2"], ["y"])]
    path = save(make_model(nodes, [vinfo("x", ["N", 4])], [vinfo("y", ["N", 2])],
                           [("W1", weights(4, 3)), ("b1", b1), ("W2", weights(3, 2))]), tmp_path)
    np.savez(tmp_path / "x.npz", x=weights(8, 4))
    refused(capsys, tmp_path, "compile", path, "--calibration", tmp_path / "x.npz", "-o", tmp_path / "m.pcc",
            phrase="layer 'Gemm_0': its weights or bias hold NaN or infinite values")


# ---------------------------------------------------------------------- profile border

def billion_laughs(levels: int, fanout: int = 9) -> str:
    """A YAML sequence of a few hundred bytes whose aliases expand to fanout**levels strings."""
    parts = ["&l0 [" + ", ".join(['"lol"'] * fanout) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * fanout) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize("text, phrase", [
    ("extends: ideal\nname: x\ndescription: café\n".encode("latin-1"), "not UTF-8 text"),
    (("extends: ideal\nname: x\ndescription: " + "[" * 1000 + "]" * 1000 + "\n").encode(), "nested too deeply"),
    (b"extends: ideal\nname: !!float abc\n", "not valid YAML"),
], ids=["latin-1", "deep", "tag"])
def test_profile_text_that_does_not_read_is_refused(capsys, tmp_path, model, text, phrase):
    (tmp_path / "p.yaml").write_bytes(text)
    refused(capsys, tmp_path, "check", model["model"], "-p", tmp_path / "p.yaml", phrase=phrase)


@pytest.mark.parametrize("command", ["check", "profiles"])
def test_error_message_of_an_aliased_value_is_bounded(capsys, tmp_path, model, command):
    """9**8 strings behind 8 aliases: the message shows the value cut short (it was 351 MB)."""
    (tmp_path / "p.yaml").write_text(f"extends: ideal\nname: {billion_laughs(8)}\n")
    argv = ["check", model["model"], "-p", tmp_path / "p.yaml"] if command == "check" else \
        ["profiles", tmp_path / "p.yaml"]
    start = time.perf_counter()
    line = refused(capsys, tmp_path, *argv, phrase="name: [['lol', 'lol'")
    assert line.endswith("is not a string") and len(line) < 400 + len(str(tmp_path)), line
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("override, phrase", [
    ("bank: {banks: 9223372036854775808, rings: 12}", "bank.banks: 9223372036854775808 is not an integer from 1 to"),
    ("bank: {banks: 12, rings: 1000000}", "bank.rings: 1000000 is not an integer from 1 to"),
    ("noise: {weight_sigma: 0.002, crosstalk: 0.01, detector_sigma: 0.002, rin_sigma: 1.0e+300, seed: 0}",
     "noise.rin_sigma: 1e+300 is not a number in [0, 1]"),
    ("noise: {weight_sigma: 0.002, crosstalk: 0.01, detector_sigma: 1.0e+300, rin_sigma: 0.002, seed: 0}",
     "noise.detector_sigma: 1e+300 is not a number in [0, 1]"),
    ("noise: {weight_sigma: .inf, crosstalk: 0.01, detector_sigma: 0.002, rin_sigma: 0.002, seed: 0}",
     "noise.weight_sigma: inf is not a number in [0, 1]"),
], ids=["banks", "rings", "rin_sigma", "detector_sigma", "weight_sigma"])
def test_profile_numbers_beyond_what_a_device_can_be_are_refused(capsys, tmp_path, model, override, phrase):
    (tmp_path / "p.yaml").write_text(f"extends: mrr-incoherent-8b\nname: x\n{override}\n")
    refused(capsys, tmp_path, "compile", model["model"], "-p", tmp_path / "p.yaml", "--calibration", model["data"],
            "-o", tmp_path / "p.pcc", phrase=phrase)


# ---------------------------------------------------------------------- data border

def test_calibration_values_that_overflow_the_layer_ranges_are_refused(capsys, tmp_path):
    """Two values of 1e38 in different features: the next layer's range overflows float32."""
    nodes = [helper.make_node("Gemm", ["x", "W1"], ["h"]), helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("Gemm", ["a", "W2"], ["y"])]
    path = save(make_model(nodes, [vinfo("x", ["N", 4])], [vinfo("y", ["N", 3])],
                           [("W1", weights(4, 5)), ("W2", weights(5, 3))]), tmp_path)
    x = weights(16, 4)
    x[0, 0] = x[1, 1] = 1e38
    np.savez(tmp_path / "cal.npz", x=x)
    refused(capsys, tmp_path, "compile", path, "--calibration", tmp_path / "cal.npz", "-o", tmp_path / "p.pcc",
            phrase="its bank form (weights, bias and input range together) exceeds float32")


# ---------------------------------------------------------------------- program border

def edited(model: dict, folder: Path, change, profile: str = "ideal", name: str = "edited.pcc") -> Path:
    """The compiled program after ``change(manifest, tensors)``, written with every checksum
    recomputed (so that it reads back: the checks behind the checksums must refuse it)."""
    program = Program.read(model[profile])
    manifest, tensors = copy.deepcopy(program.manifest), dict(program.tensors)
    change(manifest, tensors)
    Program(manifest, tensors).write(folder / name)
    return folder / name


def banks(manifest: dict) -> list[dict]:
    return [inst for inst in manifest["instructions"] if inst["op"] == "Bank"]


def test_manifest_that_is_not_a_mapping_is_refused(capsys, tmp_path, model):
    """Valid JSON, a list, with its correct sha256."""
    text = b"[1, 2, 3]"
    with zipfile.ZipFile(model["ideal"]) as source, zipfile.ZipFile(tmp_path / "p.pcc", "w") as target:
        for info in source.infolist():
            replaced = {"manifest.json": text, "manifest.sha256": hashlib.sha256(text).hexdigest().encode()}
            target.writestr(info.filename, replaced.get(info.filename, source.read(info)))
    refused(capsys, tmp_path, "inspect", tmp_path / "p.pcc", phrase="its manifest is not a mapping")


def test_zip_entry_of_an_unknown_version_is_refused(capsys, tmp_path, model):
    blob = bytearray(model["ideal"].read_bytes())
    blob[blob.find(b"PK\x01\x02") + 6] = 84   # central directory: "version needed to extract" 8.4
    (tmp_path / "p.pcc").write_bytes(bytes(blob))
    refused(capsys, tmp_path, "inspect", tmp_path / "p.pcc", phrase="truncated or corrupted program")


def _swap(m, t):
    m["instructions"].insert(0, m["instructions"].pop(1))


def _drop_lo(m, t):
    t.pop(banks(m)[0]["inputs"][3])


def _scalar_gain(m, t):
    gain = banks(m)[0]["inputs"][2]
    t[gain] = t[gain][0, 0]


MANIFEST_EDITS = {  # name -> (edit, command, phrase of the error)
    "instructions swapped": (_swap, "simulate", "instruction 'Relu_1' reads 'h', which nothing before it defines"),
    "a Bank's tensor removed": (_drop_lo, "simulate", "reads 'Gemm_0.lo', which nothing before it defines"),
    "another op's attribute": (lambda m, t: m["instructions"][-1]["attrs"].update(alpha=1.0), "simulate",
                               "Softmax takes no attribute 'alpha'"),
    "a scalar gain": (_scalar_gain, "simulate", "its gain is not one value per row of its tiles"),
    "kat without rtol": (lambda m, t: m["kat"].pop("rtol"), "simulate", "kat.rtol is not a number"),
    "profile without noise": (lambda m, t: m["profile"].pop("noise"), "simulate",
                              "its recorded profile: missing required key 'noise'"),
    "input dtype": (lambda m, t: m["inputs"][0].update(dtype="bogus"), "simulate",
                    "dtype 'bogus' is not a number type"),
    "input range inf": (lambda m, t: m["inputs"][0].update(hi=[float("inf")] * 4), "verify",
                        "input 'x': its range is not finite numbers"),
    "report without layers": (lambda m, t: m["report"].pop("layers"), "inspect", "report has no 'layers'"),
}


@pytest.mark.parametrize("edit", list(MANIFEST_EDITS))
def test_edited_manifest_is_refused_in_one_line(capsys, tmp_path, model, edit):
    change, command, phrase = MANIFEST_EDITS[edit]
    path = edited(model, tmp_path, change)
    argv = {"simulate": ["simulate", path, "--inputs", model["data"], "-o", tmp_path / "o.npz"],
            "verify": ["verify", path], "inspect": ["inspect", path]}[command]
    line = refused(capsys, tmp_path, *argv, phrase=phrase)
    assert "invalid program" in line


@pytest.mark.parametrize("bits, phrase", [
    (2 ** 63, "output_bits is not null or an integer from 1 to"),   # 2 ** bits ran for minutes and GBs
    (None, "an ADC needs its ranges, and ranges an ADC"),           # 2 ** None
], ids=["2**63", "null"])
def test_bank_bit_counts_are_bounded(capsys, tmp_path, model, bits, phrase):
    path = edited(model, tmp_path, lambda m, t: banks(m)[0]["attrs"].update(output_bits=bits), "mrr-incoherent-8b")
    start = time.perf_counter()
    refused(capsys, tmp_path, "simulate", path, "--inputs", model["data"], "-o", tmp_path / "o.npz", phrase=phrase)
    assert time.perf_counter() - start < 10


def test_non_finite_bank_settings_are_refused(capsys, tmp_path, model):
    """A Bank's carrier inf, with the known answers such a program computes (NaN) recorded."""
    def change(m, t):
        banks(m)[-1]["attrs"]["carrier"] = float("inf")
        for ref in list(m["kat"]["outputs"].values()) + list(m["kat"]["layers"].values()):
            t[ref] = np.full_like(t[ref], np.nan)
    path = edited(model, tmp_path, change)
    refused(capsys, tmp_path, "simulate", path, "--inputs", model["data"], "-o", tmp_path / "o.npz",
            phrase="instruction 'Gemm_2': its shift and carrier must be finite numbers")


# ---------------------------------------------------------------------- minor: NumPy's warnings

def test_numpy_warnings_are_not_printed(capsys, tmp_path, model, monkeypatch):
    """The command's stderr holds its own lines only, not NumPy's RuntimeWarnings. The inputs that
    made NumPy warn are refused earlier now, so a NumPy overflow is added to the command's path."""
    write = common.npz_bytes

    def overflowing(outputs):
        np.float32(3e38) * np.float32(10)  # NumPy warns "overflow encountered" unless told not to
        return write(outputs)
    monkeypatch.setattr(common, "npz_bytes", overflowing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(capsys, "simulate", model["ideal"], "--inputs", model["data"],
                                 "-o", tmp_path / "o.npz")
    assert code == 0, err
    assert all(line.startswith("photoncc: ") for line in err.strip().splitlines()), err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert (tmp_path / "o.npz").exists()



# ---------------------------------------------------------------------- the 10 000-case campaign

@pytest.mark.parametrize("width", [2 ** 62, 2 ** 31 - 1])
def test_an_input_too_large_to_hold_is_refused_before_anything_is_allocated(capsys, tmp_path, width):
    """Type inference ran the graph on a sample of the declared shape: 'array is too big', or 8 GiB."""
    refused(capsys, tmp_path, "check", gemm(tmp_path, width=width), phrase="values per sample, more than photoncc takes")


@pytest.mark.parametrize("batch", [2 ** 62, 2 ** 31 - 1])
def test_a_fixed_batch_too_large_to_hold_is_refused(capsys, tmp_path, batch):
    """A static batch of 2**31 - 1 or 2**62 (campaign of 2026-12-04, seeds model:2794, 7434): type
    inference ran the graph on it: 512 GiB asked for, or 'array is too big' (exit 3)."""
    inits = [numpy_helper.from_array(weights(4, 3), "W")]
    path = unchecked_model(tmp_path, [helper.make_node("Gemm", ["x", "W"], ["y"])], [vinfo("x", [batch, 4])],
                           [vinfo("y", [batch, 3])], inits)
    refused(capsys, tmp_path, "check", path, phrase=f"has a fixed batch of {batch:,}")


@pytest.mark.parametrize("to", [0, TensorProto.STRING])
def test_a_cast_to_no_number_type_is_refused(capsys, tmp_path, to):
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=to), helper.make_node("Gemm", ["c", "W"], ["y"])]
    path = unchecked_model(tmp_path, nodes, [vinfo("x", ["N", 4])], [vinfo("y", ["N", 3])],
                           [numpy_helper.from_array(weights(4, 3), "W")])
    code, out, err = run_cli(capsys, "check", path)  # listed with any other unsupported node, as check does
    assert code == 2 and err.startswith("photoncc: error: ") and "Traceback" not in err, err
    name = TensorProto.DataType.Name(to)
    assert f"node 'Cast_0' (Cast): computes in {name}, a type photoncc does not compute with" in err, err


def test_external_data_location_that_is_not_utf8_is_refused(capsys, tmp_path):
    path = gemm(tmp_path, inits=[external_weights(tmp_path, "weights.bin", "weigXts.bin", "0")])
    path.write_bytes(path.read_bytes().replace(b"weigXts.bin", b"weig\xe8ts.bin"))
    refused(capsys, tmp_path, "check", path, phrase="the external data location of tensor 'W' is not UTF-8 text")


@pytest.mark.parametrize("text, phrase", [
    ("extends: mrr-incoherent-8b\nname: x\nbank: {banks: 12, rings: 8}\nnoise: {weight_sigma: 0.002, crosstalk: 1, "
     "detector_sigma: 0.002, rin_sigma: 0.002, seed: 0}\n", "noise.crosstalk: 1 is not a number in [0, 0.5)"),
    ("extends: mrr-balanced-8b\nname: x\nprecision: {weight_bits: 1, input_bits: 8, output_bits: 8}\n",
     "precision.weight_bits: 1 leaves a signed ring weight no level"),
    ("extends: ideal\nname: !!timestamp abc\n", "a tagged value cannot be constructed"),
    ("extends: mzi-ideal\nname: x\nmesh: {ports: 1000}\n", "mesh.ports: 1000 is not an integer from 2 to 256"),
], ids=["crosstalk 1 (singular compensation)", "balanced 1-bit weights", "timestamp tag",
        "1000 ports (compile ran for minutes; campaign of 2026-12-04, seeds profile:669, 9207)"])
def test_profiles_the_device_maths_cannot_take_are_refused(capsys, tmp_path, model, text, phrase):
    (tmp_path / "p.yaml").write_text(text)
    refused(capsys, tmp_path, "compile", model["model"], "-p", tmp_path / "p.yaml", "--calibration", model["data"],
            "-o", tmp_path / "p.pcc", phrase=phrase)


def test_a_range_too_narrow_for_float32_steps_gives_finite_outputs(capsys, tmp_path):
    """Calibration of denormal values (1e-45): the DAC's step alpha / 255 was 0 in float32, and
    the statistical model's outputs were all NaN."""
    nodes = [helper.make_node("Conv", ["x", "K", "kb"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]), helper.make_node("Gemm", ["f", "W", "b"], ["y"])]
    inits = [("K", weights(2, 1, 3, 3)), ("kb", weights(2)), ("W", weights(32, 3)), ("b", weights(3))]
    path = save(make_model(nodes, [vinfo("x", ["N", 1, 4, 4])], [vinfo("y", ["N", 3])], inits), tmp_path)
    x = weights(16, 1, 4, 4)
    np.savez(tmp_path / "x.npz", x=x)
    np.savez(tmp_path / "tiny.npz", x=np.full_like(x, 1e-45))
    assert cli.main(["compile", str(path), "-p", "mrr-incoherent-8b", "--calibration", str(tmp_path / "tiny.npz"),
                     "-o", str(tmp_path / "p.pcc")]) == 0
    for model_name in ("statistical", "per-read"):
        code, out, err = run_cli(capsys, "simulate", tmp_path / "p.pcc", "--inputs", tmp_path / "x.npz",
                                 "-o", tmp_path / "o.npz", "--noise-model", model_name)
        assert code == 0 and "NaN" not in err, err
        with np.load(tmp_path / "o.npz") as outputs:
            assert np.isfinite(outputs["y"]).all(), model_name


@pytest.mark.parametrize("which", ["inputs", "outputs"])
def test_a_spec_dtype_that_is_not_a_name_is_refused(capsys, tmp_path, model, which):
    path = edited(model, tmp_path, lambda m, t: m[which][0].update(dtype={}))
    line = refused(capsys, tmp_path, "inspect", path, phrase="dtype {} is not a number type")
    assert "invalid program" in line


def test_a_known_answer_that_is_not_numbers_is_refused(capsys, tmp_path, model):
    def change(m, t):
        ref = m["kat"]["statistical"]["y"]
        t[ref] = np.zeros(t[ref].shape, [("a", "<f4")])  # records of one float, not floats
    path = edited(model, tmp_path, change, "mrr-incoherent-8b")
    refused(capsys, tmp_path, "simulate", path, "--inputs", model["data"], "-o", tmp_path / "o.npz",
            phrase="kat.statistical holds a tensor that is not numbers")


@pytest.mark.parametrize("key", ["source", "sha256", "opset"])
def test_inspect_shows_a_program_whose_source_record_lacks_a_key(capsys, tmp_path, model, key):
    """The checker takes manifest.source's name and digest as null when absent; inspect read them
    with [] (KeyError, exit 3; second campaign, seed program:4524)."""
    path = edited(model, tmp_path, lambda manifest, tensors: manifest["source"].pop(key))
    code, out, err = run_cli(capsys, "inspect", path)
    assert code == 0, err
    assert "  source: " in out


# ---------------------------------------------------------------------- chips and sweeps (campaign of 2026-12-04)

def chip_file(folder: Path, profile: str = "mzi-8b", arrays=None, meta_text: str | None = None,
              name: str = "chip.npz") -> Path:
    """The chip ``photoncc chip PROFILE --seed 1`` draws, its arrays changed by ``arrays`` (a
    function editing the dict) or its meta replaced by ``meta_text``, the checksum recomputed."""
    from photoncc.chip import Chip, _digest, draw
    from photoncc.profile import load_profile
    chip = draw(load_profile(profile), 1)
    values = {k: np.array(v, np.float64) for k, v in chip.arrays.items()}
    if arrays:
        arrays(values)
    text = chip.text if meta_text is None else meta_text
    members = {"meta": np.array(text), "sha256": np.array(_digest(text, values)), **values}
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in members.items():
            with archive.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, value)
    if meta_text is None:
        assert path.read_bytes() != b"" and Chip(chip.meta, values).sha256 == str(members["sha256"])
    return path


def small_mzi(folder: Path) -> Path:
    path = folder / "mzi4.yaml"
    path.write_text("extends: mzi-8b\nname: mzi4\nmesh: {ports: 4}\n")
    return path


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"a": ' * 50000 + "1" + "}" * 50000],
                         ids=["list", "mapping"])
def test_a_chip_meta_nested_too_deeply_is_refused(capsys, tmp_path, model, text):
    """json.loads raised RecursionError (exit 3)."""
    chip = chip_file(tmp_path, "mrr-incoherent-8b", meta_text=text)
    refused(capsys, tmp_path, "simulate", model["mrr-incoherent-8b"], "--inputs", model["data"], "--chip", chip,
            "-o", tmp_path / "o.npz", phrase="corrupted chip file (its meta is not JSON)")


def test_a_chip_member_declaring_a_huge_shape_is_refused_before_allocating(capsys, tmp_path, model):
    """np.load allocated the declared 8 TiB (MemoryError, exit 3) before finding 64 bytes."""
    chip = chip_file(tmp_path, "mrr-incoherent-8b")
    with zipfile.ZipFile(chip) as archive:
        members = {i.filename: archive.read(i.filename) for i in archive.infolist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2 ** 40,)})
    members["offset.npy"] = header.getvalue() + bytes(64)
    with zipfile.ZipFile(chip, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    refused(capsys, tmp_path, "simulate", model["mrr-incoherent-8b"], "--inputs", model["data"], "--chip", chip,
            "-o", tmp_path / "o.npz", phrase="member 'offset.npy' declares shape [1099511627776]")


@pytest.mark.parametrize("flag, method, phrase", [(1, None, "RuntimeError: File"), (0, 99, "NotImplementedError")],
                         ids=["encrypted", "unknown method"])
def test_a_chip_member_zipfile_cannot_read_is_refused(capsys, tmp_path, model, flag, method, phrase):
    """zipfile's RuntimeError (encrypted) and NotImplementedError (compression method) were exit 3."""
    chip = chip_file(tmp_path, "mrr-incoherent-8b")
    data = bytearray(chip.read_bytes())
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(signature)  # the first member's local and central headers
        data[at + flag_at] |= flag
        if method is not None:
            data[at + method_at:at + method_at + 2] = method.to_bytes(2, "little")
    chip.write_bytes(bytes(data))
    refused(capsys, tmp_path, "simulate", model["mrr-incoherent-8b"], "--inputs", model["data"], "--chip", chip,
            "-o", tmp_path / "o.npz", phrase=phrase)


def test_a_library_message_with_a_line_break_stays_on_one_line(capsys, tmp_path, model):
    """NumPy's refusal of a .npy header of 65535 bytes holds a line break; quoted in the error, it
    made a second line (second campaign, seed chip:8841)."""
    chip = chip_file(tmp_path, "mrr-incoherent-8b")
    with zipfile.ZipFile(chip) as archive:
        members = {i.filename: archive.read(i.filename) for i in archive.infolist()}
    members["offset.npy"] = b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 65535
    with zipfile.ZipFile(chip, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    refused(capsys, tmp_path, "simulate", model["mrr-incoherent-8b"], "--inputs", model["data"], "--chip", chip,
            "-o", tmp_path / "o.npz", phrase="may not be safe to load securely. To allow")


@pytest.mark.parametrize("command", ["simulate", "calibrate", "compile"])
def test_a_chip_whose_mzi_gains_overflow_is_refused(capsys, tmp_path, model, command):
    """Extra losses of -1000 dB (gains): simulate gave all-NaN outputs with exit 0, calibrate's SVD
    did not converge (exit 3), compile blamed a layer's ADC range."""
    profile = small_mzi(tmp_path)
    chip = chip_file(tmp_path, str(profile), arrays=lambda a: a["loss_db"].fill(-1000.0))
    if command == "simulate":
        program = tmp_path / "p.pcc"
        assert cli.main(["compile", str(model["model"]), "-p", str(profile), "--calibration", str(model["data"]),
                         "-o", str(program)]) == 0
        argv = ["simulate", program, "--inputs", model["data"], "--chip", chip, "-o", tmp_path / "o.npz"]
    elif command == "calibrate":
        argv = ["calibrate", profile, "--device", chip, "--probes", "3", "-o", tmp_path / "e.npz"]
    else:
        argv = ["compile", model["model"], "-p", profile, "--calibration", model["data"], "--chip", chip,
                "-o", tmp_path / "c.pcc"]
    refused(capsys, tmp_path, *argv, phrase="negative extra losses can amplify light by over 300 dB through a mesh")


def test_a_reck_chip_whose_two_meshes_overflow_single_precision_is_refused(capsys, tmp_path, model):
    """Ninth campaign, chip:902606: a 6-port Reck chip's extra losses scaled by 1e4 gained 505 dB
    through a mesh at the zero setting, under the 1000 dB the check allowed then, and the
    simulator's complex64 product of the two meshes overflowed: every output NaN, exit 0. The
    check now bounds the gain at any setting, column by column, at 300 dB per mesh."""
    profile = tmp_path / "reck6.yaml"
    profile.write_text("extends: mzi-8b\nname: reck6\nmesh: {ports: 6, layout: reck}\n")
    program = tmp_path / "p.pcc"
    assert cli.main(["compile", str(model["model"]), "-p", str(profile), "--calibration", str(model["data"]),
                     "-o", str(program)]) == 0
    chip = chip_file(tmp_path, str(profile), arrays=lambda a: a["loss_db"].fill(-60.0))   # 9 columns: 540 dB
    refused(capsys, tmp_path, "simulate", program, "--inputs", model["data"], "--chip", chip, "-o", tmp_path / "o.npz",
            phrase="negative extra losses can amplify light by over 300 dB through a mesh")


def test_a_profile_whose_loss_spread_draws_gains_that_overflow_is_refused(capsys, tmp_path, model):
    """A valid profile (noise.loss_sigma_db up to 3 dB) on 64-port meshes draws extra losses whose
    negative ones compound to over 300 dB through a mesh: simulate (which draws the chip of its
    seed) gave NaN outputs with exit 0; now it and `photoncc chip` refuse the draw in one line."""
    profile = tmp_path / "lossy.yaml"
    profile.write_text("extends: mzi-dat\nname: lossy\nnoise: {loss_sigma_db: 3.0}\n")
    phrase = "noise.loss_sigma_db 3 drew MZIs whose negative extra losses can amplify light by over 300 dB " \
             "through a 64-port clements mesh"
    refused(capsys, tmp_path, "chip", profile, "--seed", "1", "-o", tmp_path / "c.npz", phrase=phrase)
    program = tmp_path / "p.pcc"
    assert cli.main(["compile", str(model["model"]), "-p", str(profile), "--calibration", str(model["data"]),
                     "-o", str(program)]) == 0
    refused(capsys, tmp_path, "simulate", program, "--inputs", model["data"], "-o", tmp_path / "o.npz", phrase=phrase)


def sweep_argv(model: dict, folder: Path, *vary, profile: str = "ideal") -> list:
    argv = ["sweep", model["model"], "-p", profile, "--calibration", model["data"], "--inputs", model["data"],
            "--workers", "1", "-o", folder / "s.csv"]
    for spec in vary:
        argv += ["--vary", spec]
    return argv


@pytest.mark.parametrize("profile, spec, phrase", [
    ("mzi-ideal", "bank.banks=4,8", "bank applies only to the ring architectures"),
    ("mrr-incoherent-8b", "mesh.ports=4", "mesh applies only to architecture 'mzi'"),
], ids=["bank on mzi", "mesh on rings"])
def test_a_sweep_of_a_key_of_the_other_architecture_is_refused(capsys, tmp_path, model, profile, spec, phrase):
    """point_profile looked up the base profile's missing section: KeyError (exit 3)."""
    refused(capsys, tmp_path, *sweep_argv(model, tmp_path, spec, profile=profile), phrase=phrase)


@pytest.mark.parametrize("value", ["!!float abc", "!!timestamp abc", "!!int 0x"])
def test_a_sweep_value_with_a_tag_pyyaml_cannot_construct_is_refused(capsys, tmp_path, model, value):
    """PyYAML's ValueError and AttributeError escaped parse_value (exit 3); the value is its text."""
    refused(capsys, tmp_path, *sweep_argv(model, tmp_path, f"verify.rtol={value}"),
            phrase=f"verify.rtol: '{value}' is not a finite number >= 0")


def test_a_sweep_error_names_a_long_vary_option_in_a_bounded_line(capsys, tmp_path, model):
    """The whole --vary option was repeated in the error: 100 000 characters for 20 000 values."""
    spec = "noise.seed=" + ",".join(map(str, range(20000))) + ",{a: 1}"
    line = refused(capsys, tmp_path, *sweep_argv(model, tmp_path, spec), phrase="noise.seed: {'a': 1} is not")
    assert len(line) < 300, len(line)


def test_an_integer_beyond_float_range_is_refused_as_a_number(capsys, tmp_path, model):
    """math.isfinite(10**400) raised OverflowError (exit 3), in a profile file and in a sweep."""
    (tmp_path / "p.yaml").write_text("extends: ideal\nverify: {rtol: 1" + "0" * 400 + "}\n")
    refused(capsys, tmp_path, "check", model["model"], "-p", tmp_path / "p.yaml", phrase="is not a finite number >= 0")
    refused(capsys, tmp_path, *sweep_argv(model, tmp_path, "verify.rtol=1" + "0" * 400),
            phrase="is not a finite number >= 0")


def test_a_sweep_plot_of_an_integer_beyond_int64(capsys, tmp_path, model):
    """2**64 on a numeric axis: matplotlib's isfinite failed on the object array (exit 3, the CSV left)."""
    pytest.importorskip("matplotlib")
    code, out, err = run_cli(capsys, *sweep_argv(model, tmp_path, f"verify.rtol={2 ** 64},1e-300"),
                             "--plot", tmp_path / "s.png")
    assert code == 0, err
    assert (tmp_path / "s.png").read_bytes().startswith(b"\x89PNG")


def test_opset_6_model_whose_shapes_contradict_each_other_is_refused(capsys, tmp_path):
    """An opset-6 model (upgraded by onnx's version converter) whose initializer is a scalar while
    its listing as a graph input says (4,): the PRelu fix-up before the upgrade ran onnx's shape
    inference unguarded and escaped as an internal error (model fuzzer, seed 300040)."""
    nodes = [helper.make_node("Add", ["x", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [vinfo("x", [1, 4]), vinfo("b", [4])], [vinfo("y", [1, 4])],
                              [numpy_helper.from_array(np.array(1.0, np.float32), "b")])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)], ir_version=3)
                     .SerializeToString())
    refused(capsys, tmp_path, "check", path, phrase="could not be upgraded")


def test_error_of_onnx_external_data_loader_is_one_line(capsys, tmp_path, monkeypatch):
    """onnx's loader refused an external-data entry with pybind11's several-line text (model
    fuzzer, seed 405083: 'incompatible function arguments. The following argument types...');
    photoncc quotes it on one line."""
    import onnx

    def refuse(*args, **kwargs):
        raise TypeError("_open_external_data(): incompatible function arguments. The following argument types "
                        "are supported:\n    1. _open_external_data(arg0: str) -> int\n\nInvoked with types: bytes")
    monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_model", refuse)
    path = gemm(tmp_path, inits=[external_weights(tmp_path, "w.bin", "w.bin", "0")])
    refused(capsys, tmp_path, "check", path, phrase="cannot load external data: TypeError: _open_external_data()")


def test_report_layer_without_its_range_source_is_still_inspected(capsys, tmp_path, model):
    """inspect read report.layers[i].range_source unchecked (program fuzzer, seed 402916: KeyError,
    an internal error); the value may be null anyway, so it is optional."""
    path = edited(model, tmp_path, lambda m, t: m["report"]["layers"][0].pop("range_source"), "mrr-incoherent-8b")
    code, out, err = run_cli(capsys, "inspect", path)
    assert code == 0 and "None" in out, err


def test_signed_bank_with_one_bit_weights_is_refused(capsys, tmp_path, model):
    """A balanced program whose bank says weight_bits 1: no signed level besides 0, and
    weight_step divided by zero in the simulator (program fuzzer, seed 409288)."""
    program = tmp_path / "balanced.pcc"
    assert cli.main(["compile", str(model["model"]), "-p", "mrr-balanced-8b", "--calibration", str(model["data"]),
                     "-o", str(program)]) == 0

    def one_bit(manifest, tensors):
        banks(manifest)[0]["attrs"]["weight_bits"] = 1
    path = edited({"mrr-balanced-8b": program}, tmp_path, one_bit, "mrr-balanced-8b")
    refused(capsys, tmp_path, "verify", path, phrase="weight_bits 1 leaves a signed ring weight no level besides 0")
    profile = tmp_path / "one-bit.yaml"  # the same fact, checked where a profile is read
    profile.write_text("photoncc_profile: 1\nname: one-bit\nextends: mrr-balanced-8b\nprecision: {weight_bits: 1}\n")
    refused(capsys, tmp_path, "compile", model["model"], "-p", profile, "--calibration", model["data"],
            "-o", tmp_path / "never.pcc", phrase="precision.weight_bits: 1 leaves a signed ring weight no level besides 0")


def test_mesh_report_of_a_chip_program_is_checked_and_older_ones_still_inspect(capsys, tmp_path, model):
    """The chip facts inspect prints are checked when the program is read (a missing fidelity was a
    KeyError in inspect); a program compiled before the tile errors were reported (no
    tile_error_before/after) still inspects, without them."""
    chip, program = tmp_path / "c.npz", tmp_path / "mesh.pcc"
    assert cli.main(["chip", "mzi-dat", "--seed", "1", "-o", str(chip)]) == 0
    assert cli.main(["compile", str(model["model"]), "-p", "mzi-dat", "--calibration", str(model["data"]),
                     "--chip", str(chip), "-o", str(program)]) == 0
    meshes = {"mzi-dat": program}

    def older(manifest, tensors):
        for facts in [manifest["report"]["chip"]] + [layer["chip"] for layer in manifest["report"]["layers"]]:
            for key in ("tile_error_before", "tile_error_after", "worst_tile_error_after"):
                facts.pop(key, None)
    code, out, err = run_cli(capsys, "inspect", edited(meshes, tmp_path, older, "mzi-dat", "older.pcc"))
    assert code == 0 and "mesh fidelity" in out and "tile error 0" not in out, err
    refused(capsys, tmp_path, "inspect",
            edited(meshes, tmp_path, lambda m, t: m["report"]["chip"].pop("fidelity_before"), "mzi-dat", "bad.pcc"),
            phrase="report.chip's fidelity is not numbers")
    refused(capsys, tmp_path, "inspect",
            edited(meshes, tmp_path, lambda m, t: m["report"]["layers"][0].pop("phases"), "mzi-dat", "bad2.pcc"),
            phrase="a report layer has no 'phases'")


def test_npy_header_with_an_unclosed_bracket_is_refused(capsys, tmp_path, model):
    """NumPy parses a .npy header as Python text; an unclosed bracket raises tokenize's TokenError,
    which is not a ValueError (data fuzzer, seed 503219: an internal error)."""
    with zipfile.ZipFile(model["data"]) as archive:
        blob = archive.read("x.npy")
    assert blob.count(b"), }") == 1
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as archive:
        archive.writestr("x.npy", blob.replace(b"), }", b"(, }"))
    out = tmp_path / "o.npz"
    refused(capsys, tmp_path, "simulate", model["ideal"], "--inputs", tmp_path / "d.npz", "-o", out,
            phrase="not a readable .npz file")


@pytest.mark.parametrize("x_type, w_shape, phrase", [
    (TensorProto.INT32, (4, 3), "Gemm's A, B and C must be of one type, not int32, float32"),   # seed 502992
    (TensorProto.FLOAT, (4, 3, 1), "Gemm multiplies two matrices; its A and B have rank 2 and 3"),  # seed 506073
])
def test_gemm_whose_operands_onnx_forbids_is_refused(capsys, tmp_path, x_type, w_shape, phrase):
    """NumPy would broadcast a 3-D B and cast an int32 A's float product back to int32: the model
    passed import and failed later as an internal error (model fuzzer)."""
    init = [numpy_helper.from_array(weights(*w_shape), "W")]
    path = unchecked_model(tmp_path, [helper.make_node("Gemm", ["x", "W"], ["y"])], [vinfo("x", ["N", 4], x_type)],
                           [vinfo("y", ["N", 3])], init)
    refused(capsys, tmp_path, "check", path, phrase=phrase)


def test_report_mac_split_that_is_not_counts_is_refused(capsys, tmp_path, model):
    """inspect called .items() on report.macs.electronic_products unchecked (program fuzzer, seed
    601420: a string there was an internal error)."""
    def text(manifest, tensors):
        manifest["report"]["macs"]["electronic_products"] = "x"
    refused(capsys, tmp_path, "inspect", edited(model, tmp_path, text, "mrr-incoherent-8b"),
            phrase="report.macs is not counts of optical and electronic MACs")


def test_conv_setting_that_is_a_boolean_is_refused(capsys, tmp_path):
    """JSON's true passed the program check as the integer 1 (isinstance(True, int)), then the
    simulator's unfold refused it (program fuzzer, seed 609394: an internal error)."""
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3])]
    path = unchecked_model(tmp_path, nodes, [vinfo("x", ["N", 1, 5, 5])], [vinfo("y", ["N", 2, 3, 3])],
                           [numpy_helper.from_array(weights(2, 1, 3, 3), "W")])
    np.savez(tmp_path / "x.npz", x=weights(4, 1, 5, 5))
    program = tmp_path / "conv.pcc"
    assert cli.main(["compile", str(path), "--calibration", str(tmp_path / "x.npz"), "-o", str(program)]) == 0

    def boolean(manifest, tensors):
        conv = [inst for inst in manifest["instructions"] if "conv" in inst.get("attrs", {})][0]["attrs"]["conv"]
        conv["kernel_shape"][1] = True
    bad = edited({"ideal": program}, tmp_path, boolean)
    refused(capsys, tmp_path, "simulate", bad, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "o.npz",
            phrase="conv.kernel_shape is not a list of positive integers")


def test_external_data_key_that_is_not_text_is_refused(capsys, tmp_path):
    """An external-data key whose bytes are not UTF-8: protobuf hands it over as bytes, and onnx's
    ExternalDataInfo, sorting the unknown keys for its warning, raised TypeError comparing it with
    another, text, key (model fuzzer, seed 703416)."""
    tensor = external_weights(tmp_path, "w.bin", "w.bin", "0")
    for key in ("qqqq", "rrrr"):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, "1"
    path = gemm(tmp_path, inits=[tensor])
    blob = path.read_bytes()
    assert blob.count(b"qqqq") == 1
    path.write_bytes(blob.replace(b"qqqq", b"\xffqqq"))
    refused(capsys, tmp_path, "check", path, phrase="external data of tensor 'W' is malformed")
