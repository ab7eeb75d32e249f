"""The device program file (.pcc): round trip, determinism, and refusal of damaged or foreign files.

A program is a stored ZIP: ``manifest.json``, ``manifest.sha256`` and one ``tensors/NNNNNN.npy`` per
tensor (the manifest's tensor table maps names to members and their sha256). Damaged files are
refused by every command with exit 2 and one ``photoncc: error:`` line; a program that breaks the
device rules (negative transmissions on an incoherent bank) or no longer passes its known-answer
test is refused by the simulator.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli
from photoncc.cli import main
from photoncc.errors import DeviceError, ProgramError
from photoncc.program import FORMAT, VERSION, Program
from photoncc.sim import Simulator

DATA = Path(__file__).parent / "data"
CNN = "torch_legacy_cnn"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("program")
    for suffix in (".onnx", ".npz"):
        shutil.copy(DATA / f"{CNN}{suffix}", folder / f"{CNN}{suffix}")
    program = folder / f"{CNN}.pcc"
    assert main(["compile", str(folder / f"{CNN}.onnx"), "--calibration", str(folder / f"{CNN}.npz"),
                 "-o", str(program), "--report", str(folder / "report.json")]) == 0
    return {"folder": folder, "program": program, "model": folder / f"{CNN}.onnx", "npz": folder / f"{CNN}.npz",
            "report": folder / "report.json"}


@pytest.fixture
def env(compiled, tmp_path):
    """A fresh folder with the model, its data and a copy of the compiled program."""
    for name in (f"{CNN}.onnx", f"{CNN}.npz", f"{CNN}.pcc"):
        shutil.copy(compiled["folder"] / name, tmp_path / name)
    return {"folder": tmp_path, "program": tmp_path / f"{CNN}.pcc", "model": tmp_path / f"{CNN}.onnx",
            "npz": tmp_path / f"{CNN}.npz"}


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(path: Path, contents: dict[str, bytes]) -> None:
    """Write a valid ZIP (correct CRCs) with the given members, as a tool that edits a program would."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def first_bank(program: Program) -> dict:
    return next(i for i in program.instructions if i["op"] == "Bank")


def refused_by_every_command(capsys, env, path: Path, *needles: str, verify: bool = True) -> None:
    """simulate, inspect and verify all refuse ``path`` with exit 2, one line naming it, no output."""
    before = sorted(p.name for p in env["folder"].iterdir())
    commands = [("simulate", path, "--inputs", env["npz"], "-o", env["folder"] / "out.npz"),
                ("inspect", path),
                ("inspect", path, "--json")]
    if verify:
        commands.append(("verify", path, "--model", env["model"], "--inputs", env["npz"],
                         "--json", env["folder"] / "v.json", "--junit", env["folder"] / "v.xml"))
    for argv in commands:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2, (argv, out, err)
        assert out == "", argv
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("photoncc: error: "), err
        assert "Traceback" not in err
        assert str(path) in err
        for needle in needles:
            assert needle in err, (needle, err)
    assert sorted(p.name for p in env["folder"].iterdir()) == before


# ---------------------------------------------------------------------------------- layout

def test_layout_and_manifest(compiled):
    contents = members(compiled["program"])
    assert list(contents)[:2] == ["manifest.json", "manifest.sha256"]
    text = contents["manifest.json"]
    assert contents["manifest.sha256"].decode().strip() == hashlib.sha256(text).hexdigest()
    manifest = json.loads(text)
    assert manifest["format"] == FORMAT == "photoncc-program"
    assert manifest["version"] == 1 < VERSION  # a ring program is the version-1 file it always was
    assert manifest["source"]["sha256"] == hashlib.sha256(compiled["model"].read_bytes()).hexdigest()
    assert manifest["source"]["opset"] == 13
    assert manifest["inputs"][0]["name"] == "image" and manifest["inputs"][0]["shape"] == [3, 16, 16]
    for name, spec in manifest["tensors"].items():
        raw = contents[spec["member"]]
        assert hashlib.sha256(raw).hexdigest() == spec["sha256"], name
    assert set(contents) == {"manifest.json", "manifest.sha256"} | {s["member"] for s in manifest["tensors"].values()}
    with zipfile.ZipFile(compiled["program"]) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    bank = first_bank(Program.read(compiled["program"]))
    assert bank["placement"] == "optical" and bank["inputs"][1] == f"{bank['name']}.T"


def test_round_trip_preserves_manifest_and_tensors(compiled, tmp_path):
    program = Program.read(compiled["program"])
    again_path = tmp_path / "again.pcc"
    program.write(again_path)
    again = Program.read(again_path)
    assert again.manifest == program.manifest
    assert sorted(again.tensors) == sorted(program.tensors)
    for name, value in program.tensors.items():
        assert again.tensors[name].dtype == value.dtype, name
        np.testing.assert_array_equal(again.tensors[name], value, err_msg=name)
    # reading and writing back an unchanged program gives the same bytes
    assert again_path.read_bytes() == compiled["program"].read_bytes()
    assert Program.from_bytes(program.to_bytes()).manifest == program.manifest


def test_with_tensor_keeps_shape_and_dtype(compiled):
    program = Program.read(compiled["program"])
    name = f"{first_bank(program)['name']}.T"
    with pytest.raises(ValueError, match="tensor"):
        program.with_tensor(name, program.tensors[name].astype(np.float64))
    with pytest.raises(ValueError, match="tensor"):
        program.with_tensor(name, program.tensors[name][..., :-1])
    changed = program.with_tensor(name, program.tensors[name] * np.float32(0.5))
    assert changed is not program
    np.testing.assert_array_equal(Program.read(compiled["program"]).tensors[name], program.tensors[name])
    # checksums follow on write
    reread = Program.from_bytes(changed.to_bytes())
    np.testing.assert_array_equal(reread.tensors[name], program.tensors[name] * np.float32(0.5))
    assert reread.manifest["tensors"][name]["sha256"] != program.manifest["tensors"][name]["sha256"]


def test_same_compile_twice_is_byte_identical(capsys, compiled, tmp_path):
    for i in (1, 2):
        code, _, err = run_cli(capsys, "compile", compiled["model"], "--calibration", compiled["npz"],
                           "-o", tmp_path / f"p{i}.pcc", "--report", tmp_path / f"r{i}.json")
        assert code == 0, err
    assert (tmp_path / "p1.pcc").read_bytes() == (tmp_path / "p2.pcc").read_bytes()
    assert (tmp_path / "r1.json").read_bytes() == (tmp_path / "r2.json").read_bytes()
    # and identical to the module fixture's, compiled earlier in this process
    assert (tmp_path / "p1.pcc").read_bytes() == compiled["program"].read_bytes()
    assert json.loads((tmp_path / "r1.json").read_text()) == json.loads(compiled["report"].read_text())


# ---------------------------------------------------------------------------------- damaged files

def test_truncated_program(capsys, env):
    data = env["program"].read_bytes()
    cut = env["folder"] / "cut.pcc"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    refused_by_every_command(capsys, env, cut, "truncated or corrupted")
    with pytest.raises(ProgramError, match="truncated or corrupted"):
        Program.read(cut)


def test_empty_file_as_program(capsys, env):
    empty = env["folder"] / "empty.pcc"
    empty.write_bytes(b"")
    refused_by_every_command(capsys, env, empty, "not a photoncc program")


def test_onnx_model_given_as_program(capsys, env):
    # (verify accepts an ONNX model as TARGET: it compiles it in memory)
    refused_by_every_command(capsys, env, env["model"], "not a photoncc program", verify=False)


def test_missing_program(capsys, env):
    refused_by_every_command(capsys, env, env["folder"] / "gone.pcc", "no such file")


def _tensor_npy(program: Program, name: str) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(program.tensors[name]), allow_pickle=False)
    return buffer.getvalue()


def test_flipped_byte_in_a_tensor_is_a_checksum_mismatch(capsys, env):
    program = Program.read(env["program"])
    name = f"{first_bank(program)['name']}.T"
    raw = _tensor_npy(program, name)
    data = bytearray(env["program"].read_bytes())
    offset = bytes(data).find(raw)
    assert offset > 0 and bytes(data).count(raw) == 1
    data[offset + len(raw) - 5] ^= 0x40  # inside the array data, past the .npy header
    flipped = env["folder"] / "flipped.pcc"
    flipped.write_bytes(bytes(data))
    refused_by_every_command(capsys, env, flipped, "checksum mismatch", repr(name))


def test_changed_tensor_member_is_a_checksum_mismatch(capsys, env):
    """The member replaced in a valid ZIP (CRC right), the manifest's sha256 left as it was."""
    program = Program.read(env["program"])
    name = f"{first_bank(program)['name']}.T"
    member = program.manifest["tensors"][name]["member"]
    contents = members(env["program"])
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, program.tensors[name] * np.float32(0.5), allow_pickle=False)
    contents[member] = buffer.getvalue()
    edited = env["folder"] / "edited.pcc"
    rezip(edited, contents)
    refused_by_every_command(capsys, env, edited, "checksum mismatch", repr(name))


def test_manifest_edited_without_its_checksum(capsys, env):
    contents = members(env["program"])
    manifest = json.loads(contents["manifest.json"])
    manifest["inputs"][0]["lo"] = [v - 1 for v in manifest["inputs"][0]["lo"]]
    contents["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    edited = env["folder"] / "edited.pcc"
    rezip(edited, contents)
    refused_by_every_command(capsys, env, edited, "manifest checksum mismatch")


def test_missing_manifest(capsys, env):
    contents = members(env["program"])
    del contents["manifest.sha256"]
    edited = env["folder"] / "nomanifest.pcc"
    rezip(edited, contents)
    refused_by_every_command(capsys, env, edited, "not a photoncc program", "no manifest")


def test_future_format_version(capsys, env):
    contents = members(env["program"])
    manifest = json.loads(contents["manifest.json"])
    manifest["version"] = VERSION + 1
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    contents["manifest.json"] = text
    contents["manifest.sha256"] = hashlib.sha256(text).hexdigest().encode()
    future = env["folder"] / "future.pcc"
    rezip(future, contents)
    refused_by_every_command(capsys, env, future, f"format version {VERSION + 1}", "not supported",
                             f"reads version {VERSION}", "recompile")


# ---------------------------------------------------------------------------------- device rules and KAT

def test_negative_transmission_is_refused_by_the_simulator(capsys, env):
    program = Program.read(env["program"])
    layer = first_bank(program)["name"]
    name = f"{layer}.T"
    negative = program.with_tensor(name, -program.tensors[name])
    with pytest.raises(DeviceError, match="negative") as caught:
        Simulator(negative)
    assert repr(layer) in str(caught.value)
    path = env["folder"] / "negative.pcc"
    negative.write(path)
    code, out, err = run_cli(capsys, "simulate", path, "--inputs", env["npz"], "-o", env["folder"] / "out.npz")
    assert code == 2
    assert err.startswith("photoncc: error: ") and len(err.strip().splitlines()) == 1
    assert f"layer {layer!r}" in err and "negative" in err and "incoherent" in err
    assert "Traceback" not in err
    assert not (env["folder"] / "out.npz").exists()
    code, _, err = run_cli(capsys, "verify", path, "--model", env["model"], "--inputs", env["npz"])
    assert code == 2 and "negative" in err


def test_transmission_above_one_is_refused(env):
    program = Program.read(env["program"])
    layer = first_bank(program)["name"]
    name = f"{layer}.T"
    with pytest.raises(DeviceError, match="exceeds 1") as caught:
        Simulator(program.with_tensor(name, program.tensors[name] + np.float32(2)))
    assert repr(layer) in str(caught.value)


def test_known_answer_test_catches_changed_weights(capsys, env):
    program = Program.read(env["program"])
    Simulator(program).selftest("original")  # the unchanged program passes its KAT
    bank = [i for i in program.instructions if i["op"] == "Bank"][-1]
    name = f"{bank['name']}.T"
    changed = program.with_tensor(name, program.tensors[name] * np.float32(0.5))  # still in [0, 1]
    with pytest.raises(ProgramError, match="known-answer test"):
        Simulator(changed).selftest("changed")
    path = env["folder"] / "changed.pcc"
    changed.write(path)
    code, _, err = run_cli(capsys, "simulate", path, "--inputs", env["npz"], "-o", env["folder"] / "out.npz")
    assert code == 2
    assert err.startswith(f"photoncc: error: {path}: known-answer test failed")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (env["folder"] / "out.npz").exists()


def test_unknown_instruction_is_refused(capsys, env):
    program = Program.read(env["program"])
    manifest = json.loads(json.dumps(program.manifest))
    electronic = next(i for i in manifest["instructions"] if i["op"] != "Bank")
    electronic["op"] = "Teleport"
    path = env["folder"] / "teleport.pcc"
    Program(manifest, program.tensors).write(path)
    code, _, err = run_cli(capsys, "simulate", path, "--inputs", env["npz"], "-o", env["folder"] / "out.npz")
    assert code == 2
    assert "'Teleport'" in err and repr(electronic["name"]) in err and "Traceback" not in err


@pytest.mark.parametrize("array", [np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(12.0).reshape(3, 4)[:, ::2],
                                   np.array(2.5), np.zeros((0, 3), np.float32), np.array([True, False]),
                                   np.arange(6, dtype=">i4"), np.array(["cat", "dog"])],
                         ids=["float32", "strided", "scalar", "empty", "bool", "big-endian", "unicode"])
def test_tensor_members_are_plain_npy_files_with_their_checksum(array):
    """Tensors are streamed into the archive from memory; each member is byte for byte what
    numpy.save writes, and its sha256 is the manifest's."""
    data = Program({"kat": {}}, {"t": array}).to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        raw = archive.read("tensors/000000.npy")
        manifest = json.loads(archive.read("manifest.json"))
    expected = io.BytesIO()
    np.save(expected, np.asarray(array, order="C"), allow_pickle=False)  # a 0-d array stays 0-d
    assert raw == expected.getvalue()
    assert manifest["tensors"]["t"]["sha256"] == hashlib.sha256(raw).hexdigest()
    read = Program.from_bytes(data, check=False).tensors["t"]
    np.testing.assert_array_equal(read, array)
    assert read.shape == array.shape


def test_object_tensors_are_refused():
    with pytest.raises(ValueError, match="object arrays"):
        Program({"kat": {}}, {"t": np.array([object()])}).to_bytes()


def test_compressed_members_are_refused():
    """Tensors are read in place from stored (uncompressed) members; an archive re-zipped with
    compression is refused, not decompressed silently."""
    data = Program({"kat": {}}, {"t": np.arange(6, dtype=np.float32)}).to_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(ProgramError, match="not a stored ZIP member"):
        Program.from_bytes(out.getvalue(), check=False)


def test_tensors_read_from_a_program_are_read_only():
    program = Program.from_bytes(Program({"kat": {}}, {"t": np.arange(6, dtype=np.float32)}).to_bytes(), check=False)
    with pytest.raises(ValueError):
        program.tensors["t"][0] = 1.0


def test_tensor_data_is_aligned_in_the_file_and_read_without_copies(compiled, tmp_path):
    """Each member is padded (zipalign's extra field) so that its array starts at a multiple of
    64 bytes in the file; Program.read then views every tensor in the mapped file, copying none."""
    path = tmp_path / "p.pcc"
    Program.read(compiled["program"]).write(path)
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.startswith("tensors/"):
                name_length, extra_length = np.frombuffer(data[info.header_offset + 26:info.header_offset + 30], "<u2")
                start = info.header_offset + 30 + int(name_length) + int(extra_length)
                header = io.BytesIO(data[start:start + 4096])
                np.lib.format.read_magic(header)
                np.lib.format.read_array_header_1_0(header)
                assert (start + header.tell()) % 64 == 0, info.filename
    program = Program.read(path)
    for name, array in program.tensors.items():
        if array.size:
            assert not array.flags.owndata and array.base is not None, name
            assert array.ctypes.data % 64 == 0, name


def test_unaligned_programs_still_read(compiled, tmp_path):
    """A program re-zipped by another tool (no padding) reads the same tensors, copied."""
    path = tmp_path / "rezipped.pcc"
    rezip(path, members(compiled["program"]))
    original, rezipped = Program.read(compiled["program"]), Program.read(path)
    assert rezipped.manifest == original.manifest
    for name, array in original.tensors.items():
        np.testing.assert_array_equal(rezipped.tensors[name], array)
        assert rezipped.tensors[name].dtype == array.dtype
