"""The device program (``.pcc``): the contract between the compiler and the device (docs/program-format.md).

One file, a ZIP archive (stored, fixed timestamps, so the same content gives the same bytes):

* ``manifest.json``: readable JSON: format name and version, the source model (name, sha256,
  opset), the hardware profile, input/output specs and input ranges, the instruction list, the
  table of tensors (dtype, shape, sha256, member), the known-answer test (KAT) and the compile
  report;
* ``manifest.sha256``: the sha256 of the manifest's bytes;
* ``tensors/NNNNNN.npy``: one NumPy array per tensor (weights as ring transmissions, gains, ranges,
  electronic constants, KAT vectors), read back with ``allow_pickle=False``.

``read`` refuses a truncated or corrupted file (bad archive, manifest or tensor checksum mismatch,
unknown format version) with a ProgramError and never returns a partial program. ``write`` writes
to a temporary file and renames it (``files.write_atomic``), so no half-written program is ever
left behind.
"""
from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ProgramError, quoted
from .files import write_atomic

FORMAT = "photoncc-program"
VERSION = 2  # the newest format version this photoncc writes and reads
VERSIONS = (1, 2)  # the versions it reads: 1 (ring banks only), 2 (adds the MZI mesh's Mesh instruction)


def format_version(manifest: dict) -> int:
    """The version a program is written in: 2 when it holds a ``Mesh`` instruction, else 1 (so a
    program for a ring profile is the version-1 file it always was)."""
    return 2 if any(i.get("op") == "Mesh" for i in manifest.get("instructions", ())) else 1
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Program:
    manifest: dict
    tensors: dict = field(default_factory=dict)  # name -> np.ndarray

    @property
    def instructions(self) -> list[dict]:
        return self.manifest["instructions"]

    def with_tensor(self, name: str, value: np.ndarray) -> "Program":
        """A copy with one tensor replaced (same shape and dtype); checksums follow on ``write``."""
        old = self.tensors[name]
        value = np.asarray(value)
        if value.shape != old.shape or value.dtype != old.dtype:
            raise ValueError(f"tensor {name!r} is {old.dtype}{list(old.shape)}, got {value.dtype}{list(value.shape)}")
        return Program(self.manifest, {**self.tensors, name: value})

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        self.write_to(out)
        return out.getvalue()

    def write(self, path: str | Path) -> None:
        write_atomic(path, self.write_to)

    def write_to(self, file) -> None:
        """The program as a ZIP archive into an open binary ``file``. Each tensor is an .npy
        member (header, then the array's bytes streamed from its memory: no copy of the weights);
        the manifest, written first, holds every member's sha256."""
        members = []
        for index, name in enumerate(sorted(self.tensors)):
            array = np.asarray(self.tensors[name], order="C")  # C order; a 0-d array stays 0-d (a Gather's scalar index)
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
            if array.dtype.hasobject:
                raise ValueError(f"tensor {name!r}: object arrays cannot be stored in a program")
            try:
                data = memoryview(array).cast("B") if array.size else b""
            except (TypeError, ValueError, NotImplementedError):  # no buffer protocol (e.g. unicode)
                data = array.tobytes()
            members.append((name, array, f"tensors/{index:06d}.npy", (header.getvalue(), data)))
        digests = _sha256_all([parts for *_, parts in members])
        table = {name: {"dtype": array.dtype.name, "shape": list(array.shape), "sha256": digest, "member": member}
                 for (name, array, member, _), digest in zip(members, digests)}
        members = [(member, parts) for _, _, member, parts in members]
        manifest = {**self.manifest, "format": FORMAT, "version": format_version(self.manifest), "tensors": table}
        text = json.dumps(manifest, indent=1, sort_keys=True, default=_json_default).encode()
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
            for member, parts in [("manifest.json", (text,)),
                                  ("manifest.sha256", (hashlib.sha256(text).hexdigest().encode(),))] + members:
                info = zipfile.ZipInfo(member, date_time=_EPOCH)
                info.external_attr = 0o644 << 16
                info.file_size = sum(len(part) for part in parts)
                info.extra = _align_extra(file, member, info.file_size)
                with archive.open(info, "w") as dest:
                    for part in parts:
                        dest.write(part)

    @staticmethod
    def read(path: str | Path, check: bool = True) -> "Program":
        """The program in the file ``path``; ``check``: refuse a manifest the readers cannot use
        (``program_check``), not only damaged bytes."""
        path = Path(path)
        if not path.is_file():
            raise ProgramError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
        try:
            with open(path, "rb") as f:  # mapped, not read: tensors are views of the file's pages
                if not os.fstat(f.fileno()).st_size:
                    return Program.from_bytes(b"", str(path), check)
                return Program._parse(f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), str(path), check)
        except OSError as e:
            raise ProgramError(f"{path}: cannot read: {e.strerror or e}") from e

    @staticmethod
    def from_bytes(data: bytes, where: str = "<program>", check: bool = True) -> "Program":
        return Program._parse(io.BytesIO(data), data, where, check)

    @staticmethod
    def _parse(file, data, where: str, check: bool) -> "Program":
        """The program in ``data`` (bytes, or a read-only ``mmap`` of a file), which ``file`` reads."""
        if bytes(data[:2]) != b"PK":
            raise ProgramError(f"{where}: not a photoncc program (not a ZIP archive; compile a model into "
                               "a .pcc with `photoncc compile`)")
        try:
            archive = zipfile.ZipFile(file)
            names = set(archive.namelist())
            if "manifest.json" not in names or "manifest.sha256" not in names:
                raise ProgramError(f"{where}: not a photoncc program (no manifest)")
            text = _member(archive, "manifest.json", where, "manifest")
            if hashlib.sha256(text).hexdigest().encode() != _member(archive, "manifest.sha256", where, "manifest").strip():
                raise ProgramError(f"{where}: corrupted program: manifest checksum mismatch")
            manifest = json.loads(text)
            if not isinstance(manifest, dict):
                raise ProgramError(f"{where}: not a photoncc program (its manifest is not a mapping)")
            if manifest.get("format") != FORMAT:
                raise ProgramError(f"{where}: not a photoncc program (format {manifest.get('format')!r})")
            if manifest.get("version") not in VERSIONS or isinstance(manifest.get("version"), bool):
                raise ProgramError(f"{where}: program format version {manifest.get('version')!r} is not "
                                   f"supported by this photoncc (reads version {VERSION} and older); recompile the model")
            view, specs = memoryview(data), manifest["tensors"]
            raws = {name: _stored_member(view, archive.getinfo(spec["member"])) for name, spec in specs.items()}
            tensors = {}
            for (name, raw), digest in zip(raws.items(), _sha256_all([(raw,) for raw in raws.values()])):
                spec = specs[name]
                if digest != spec["sha256"]:
                    raise ProgramError(f"{where}: corrupted program: tensor {name!r} checksum mismatch")
                array = _npy_array(raw)
                if array.dtype.name != spec["dtype"] or list(array.shape) != spec["shape"]:
                    raise ProgramError(f"{where}: corrupted program: tensor {name!r} shape or dtype differs "
                                       "from its manifest entry")
                tensors[name] = array
        except ProgramError:
            raise
        except Exception as e:  # zipfile, json and numpy's ways of saying the bytes are not a program
            raise ProgramError(f"{where}: truncated or corrupted program ({quoted(e, 200)})") from e
        if check:
            from .program_check import check_manifest  # the readers' requirements (it imports this module)
            check_manifest(manifest, tensors, where)
        return Program(manifest, tensors)


ALIGN = 64  # tensor data starts at a multiple of this in the file (the .npy header is a multiple too)


def _align_extra(file, member: str, size: int) -> bytes:
    """A ZIP extra field padding the local header of ``member``, about to be written at the
    position of ``file``, so that its data starts at a multiple of ALIGN bytes: a reader can then
    view each tensor in the file's bytes without copying it (as Android's zipalign does, with its
    extra field 0xD935: the alignment, then zeros). Best effort: a file that cannot tell its
    position gets no padding (readers copy unaligned tensors)."""
    try:
        start = file.tell()
    except (AttributeError, OSError):
        return b""
    zip64 = 20 if size * 1.05 > zipfile.ZIP64_LIMIT else 0  # zipfile adds a ZIP64 extra after ours
    header = 30 + len(member.encode()) + 6 + zip64  # fixed local header, name, our extra's fields
    pad = -(start + header) % ALIGN
    return struct.pack("<HHH", 0xD935, 2 + pad, ALIGN) + bytes(pad)


def _sha256_all(items: list) -> list[str]:
    """The sha256 (hex) of each item, a sequence of buffers hashed one after the other. Computed
    in threads, one per core: hashlib releases the GIL while it hashes a large buffer."""
    def digest(parts) -> str:
        h = hashlib.sha256()
        for part in parts:
            h.update(part)
        return h.hexdigest()
    if len(items) < 2:
        return [digest(parts) for parts in items]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(digest, items))


def _member(archive: zipfile.ZipFile, member: str, where: str, what: str) -> bytes:
    """A member's bytes; a ZIP CRC error is reported as the checksum mismatch of ``what``."""
    try:
        return archive.read(member)
    except zipfile.BadZipFile as e:
        raise ProgramError(f"{where}: corrupted program: {what} checksum mismatch ({e})") from e


def _stored_member(data: memoryview, info: zipfile.ZipInfo) -> memoryview:
    """The bytes of an uncompressed member as a view of the archive's bytes (no copy; the sha256
    of the manifest, checked by the caller, stands in for the ZIP's CRC)."""
    start = info.header_offset
    if info.compress_type != zipfile.ZIP_STORED or bytes(data[start:start + 4]) != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"member {info.filename!r} is not a stored ZIP member")
    name_length, extra_length = np.frombuffer(data[start + 26:start + 30], "<u2")
    begin = start + 30 + int(name_length) + int(extra_length)
    if begin + info.compress_size > len(data):
        raise EOFError(f"member {info.filename!r} is cut short")
    return data[begin:begin + info.compress_size]


def _npy_array(raw: memoryview) -> np.ndarray:
    """A read-only array over an .npy file's bytes (copied only when they are not aligned for its
    dtype); never unpickles."""
    header = io.BytesIO(raw[:min(len(raw), 65536 + 16)])
    version = np.lib.format.read_magic(header)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in read_header:
        raise ValueError(f"unsupported .npy version {version}")
    shape, fortran, dtype = read_header[version](header)
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed in a program")
    count = int(np.prod(shape, dtype=np.int64))
    array = np.frombuffer(raw, dtype, count, header.tell())
    if not array.flags.aligned:
        array = array.copy()
    array.flags.writeable = False
    return array.reshape(shape, order="F" if fortran else "C")


BANK_INPUTS = ("x", "tiles", "gain", "lo", "alpha", "adc", "offset")  # a Bank's inputs, in this order


def bank_inputs(inputs) -> dict:
    """A Bank's inputs by name (``BANK_INPUTS``): value names of a graph node or tensor names of a
    program instruction; an absent one is ""."""
    return dict(zip(BANK_INPUTS, tuple(inputs) + ("",) * (len(BANK_INPUTS) - len(inputs))))


def bank_input_list(named: dict) -> tuple:
    """The inputs of a Bank from their names (the inverse of ``bank_inputs``), trailing absent ones
    left out."""
    values = [named.get(key, "") for key in BANK_INPUTS]
    while values and not values[-1]:
        values.pop()
    return tuple(values)


MESH_INPUTS = ("x", "phases", "screens", "atten", "gain", "bias", "lo", "alpha", "adc")  # a Mesh's inputs, in order
OPTICAL_OPS = ("Bank", "Mesh")  # the program's optical layers: ring banks and MZI meshes


def mesh_inputs(inputs) -> dict:
    """A Mesh's inputs by name (``MESH_INPUTS``); an absent one is ""."""
    return dict(zip(MESH_INPUTS, tuple(inputs) + ("",) * (len(MESH_INPUTS) - len(inputs))))


def mesh_input_list(named: dict) -> tuple:
    """The inputs of a Mesh from their names, trailing absent ones left out."""
    values = [named.get(key, "") for key in MESH_INPUTS]
    while values and not values[-1]:
        values.pop()
    return tuple(values)


def optical_inputs(op: str, inputs) -> dict:
    """The named inputs of an optical instruction: ``bank_inputs`` or ``mesh_inputs``."""
    return mesh_inputs(inputs) if op == "Mesh" else bank_inputs(inputs)


@dataclass(frozen=True)
class Channels:
    """The optical input of a bank whose matrix has K columns per group (one tile column of
    channels after another): the modulated inputs u = x - lo (channels 0..K-1), on an incoherent
    bank their complements alpha - u (K..2K-1), then the bias carrier of power c. Every part of
    photoncc that forms or reads a bank's channels (compiler, interpreter, simulator, report)
    takes the layout from here."""
    k: int
    complement: bool  # an incoherent bank (single photodetector): [u ; alpha - u ; c]; balanced: [u ; c]

    @property
    def weights(self) -> int:
        """Channels carrying inputs: K, or 2K with the complements."""
        return 2 * self.k if self.complement else self.k

    @property
    def carrier(self) -> int:
        """Index of the bias carrier's channel."""
        return self.weights

    @property
    def count(self) -> int:
        """Channels in all: 2K + 1 (incoherent) or K + 1 (balanced)."""
        return self.weights + 1


def bank_channels(attrs: dict, k: int) -> Channels:
    """The channel layout of a bank with these attributes and K columns per group."""
    return Channels(k, complement=not attrs.get("signed"))


def weight_levels(bits: int, signed: bool) -> int:
    """Highest weight code: a ring's transmission (incoherent, codes 0 .. 2^b - 1 over [0, 1]) or
    signed weight (balanced, codes -(2^(b-1) - 1) .. 2^(b-1) - 1 over [-1, 1]; 0 for 1 bit: no
    level besides 0, which profiles and programs refuse)."""
    return 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1


def weight_step(bits: int, signed: bool) -> float:
    """Value of one weight code step (``weight_levels``)."""
    return 1.0 / weight_levels(bits, signed)


def levels(bits: int) -> int:
    """Highest code of an unsigned converter (DAC, incoherent ADC) of ``bits`` bits."""
    return 2 ** bits - 1


def dac_step(alpha, bits: int, dtype=np.float64) -> np.ndarray:
    """The DAC's step per input channel, alpha / levels(bits), in ``dtype``; 1 where that is 0 (a
    range of zero width, or one too narrow for ``dtype``: every input of that channel is its lo)."""
    step = (np.asarray(alpha, np.float64) / levels(bits)).astype(dtype)
    return np.where(step > 0, step, 1).astype(dtype)


def to_dac_levels(u: np.ndarray, lo, alpha, step) -> None:
    """Modulated inputs ``u`` (already within [lo, lo + alpha]) rounded, in place, to the DAC's
    levels lo + k step (``dac_step``), never past lo + alpha."""
    u -= lo
    u /= step
    np.round(u, out=u)
    u *= step
    np.minimum(u, alpha, out=u)
    u += lo


def dead_after(steps, keep) -> list[list[str]]:
    """Per step of a straight-line program (``steps``: the (inputs, outputs) name lists of a
    program's instructions or a graph's nodes, in order), the values not in ``keep`` that no later
    step reads: its inputs read for the last time and its outputs that nothing reads. An evaluator
    drops them after that step, so that memory holds the live values, not every value of the run."""
    last = {}
    for index, (inputs, outputs) in enumerate(steps):
        for name in list(inputs) + list(outputs):
            if name:
                last[name] = index
    dead = [[] for _ in steps]
    for name, index in last.items():
        if name not in keep:
            dead[index].append(name)
    return dead


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to a program manifest")
