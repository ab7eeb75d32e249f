"""A chip: the static errors of one fabricated device of a profile, as if measured (``CHIP.npz``).

``photoncc chip PROFILE --seed N`` draws one (``draw``); ``photoncc calibrate`` estimates one from
measurements; ``compile --chip`` programs for one, ``simulate``/``verify --chip`` run on one.

What a chip holds (arrays, float64):

* architecture ``mzi`` (one physical mesh pair of N ports: index 0 the input mesh, which realises
  V^T, 1 the output mesh, U; Z = N (N - 1) / 2 MZIs each, in ``mzi_mesh.layout`` order of the
  profile's layout):
  ``theta``, ``phi`` (2, Z): the offset of every MZI's phase shifters, rad (N(0, phase_sigma));
  ``screen`` (2, N): the output phase shifters' offsets; ``e1``, ``e2`` (2, Z): the splitting error
  of each MZI's input and output coupler (N(0, splitter_sigma), clipped to [-1, 1]); ``loss_db``
  (2, Z): each MZI's insertion loss beyond the nominal one (N(0, loss_sigma_db));
* the ring architectures (one bank of B x C physical rings, every tile loaded onto it):
  ``offset`` (B, C): each ring's programming offset (N(0, weight_sigma)), and ``crosstalk`` (): the
  thermal crosstalk coefficient measured (the profile's).

The file is an ``.npz`` written with ``np.savez`` (no pickles): those arrays, ``meta`` (a 0-d
string: JSON with ``format`` "photoncc-chip", ``version`` 1, ``profile`` (name), ``architecture``,
``sizes`` ({"ports": N}, with "layout" for a mesh that is not Clements, or {"banks": B, "rings":
C}), ``seed``, ``kind`` ("drawn" or "estimate"),
``measurements`` (estimates: how many probe vectors calibration sent), ``photoncc``) and
``sha256`` (a 0-d string: the SHA-256 of the meta JSON and of every array's name, dtype, shape and
bytes, in sorted order). ``read`` refuses, with one line (exit 2), a file that is missing,
truncated or not an npz, tampered (checksum), of another format version, or for another profile,
architecture, size or layout.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .devices.mzi_mesh import LAYOUTS, layout as mesh_layout, mzi_count
from .errors import UserError, quoted

FORMAT = "photoncc-chip"
VERSION = 1
MZI_ARRAYS = ("theta", "phi", "screen", "e1", "e2", "loss_db")
RING_ARRAYS = ("offset", "crosstalk")
UNNAMED_LAYOUT = "clements"  # the first layout: a chip's sizes name any other, so its files stay as they were


@dataclass(frozen=True)
class Chip:
    meta: dict
    arrays: dict

    @property
    def architecture(self) -> str:
        return self.meta["architecture"]

    @property
    def layout(self) -> str:
        """An MZI chip's mesh layout (``mzi_mesh.LAYOUTS``)."""
        return self.meta["sizes"].get("layout", UNNAMED_LAYOUT)

    def mesh_errors(self) -> list[dict]:
        """Per mesh (0: input, V^T; 1: output, U) the errors as ``mzi_mesh.mesh_matrix`` takes them."""
        return [{key: self.arrays[key][k] for key in MZI_ARRAYS} for k in range(2)]

    def describe(self) -> str:
        """One line: what the chip's errors are."""
        a = self.arrays
        if self.architecture == "mzi":
            rms = lambda *keys: float(np.sqrt(np.mean(np.concatenate([a[k].ravel() for k in keys]) ** 2)))  # noqa: E731
            return (f"{2 * a['theta'].shape[1]} MZIs of {self.meta['sizes']['ports']} ports: phase offsets rms "
                    f"{rms('theta', 'phi', 'screen'):.3g} rad, splitting errors rms {rms('e1', 'e2'):.3g}, "
                    f"extra loss rms {rms('loss_db'):.3g} dB")
        return (f"{a['offset'].size} rings: programming offsets rms {float(np.sqrt(np.mean(a['offset'] ** 2))):.3g}, "
                f"crosstalk {float(a['crosstalk']):.3g}")

    @property
    def text(self) -> str:
        return json.dumps({**self.meta, "format": FORMAT, "version": VERSION}, sort_keys=True)

    @property
    def sha256(self) -> str:
        return _digest(self.text, {k: np.asarray(v, np.float64) for k, v in self.arrays.items()})

    def to_bytes(self) -> bytes:
        """The .npz file (as ``np.savez`` lays it out, with fixed timestamps: the same chip gives the
        same bytes)."""
        arrays = {"meta": np.array(self.text), "sha256": np.array(self.sha256),
                  **{k: np.asarray(v, np.float64) for k, v in self.arrays.items()}}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for key in sorted(arrays):
                member = io.BytesIO()
                np.lib.format.write_array(member, arrays[key], allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, member.getvalue())
        return buffer.getvalue()


def sizes(profile) -> dict:
    """The sizes a chip of this profile has: the mesh's ports, or the bank's banks and rings."""
    if profile["architecture"] == "mzi":
        mesh = profile["mesh"]
        return {"ports": mesh["ports"], **({"layout": mesh["layout"]} if mesh["layout"] != UNNAMED_LAYOUT else {})}
    return {"banks": profile["bank"]["banks"], "rings": profile["bank"]["rings"]}


def draw_errors(profile, rng: np.random.Generator) -> dict:
    """One draw of a profile's static errors (the module docstring's arrays), from ``rng``."""
    noise = profile["noise"]
    if profile["architecture"] == "mzi":
        n = profile["mesh"]["ports"]
        z = mzi_count(n)
        out = {"theta": rng.standard_normal((2, z)) * noise["phase_sigma"],
               "phi": rng.standard_normal((2, z)) * noise["phase_sigma"],
               "screen": rng.standard_normal((2, n)) * noise["phase_sigma"]}
        for key in ("e1", "e2"):
            out[key] = np.clip(rng.standard_normal((2, z)) * noise["splitter_sigma"], -1.0, 1.0)
        out["loss_db"] = rng.standard_normal((2, z)) * noise["loss_sigma_db"]
        if gain_bound_db(out["loss_db"], n, profile["mesh"]["layout"]) > MAX_GAIN_DB:
            raise UserError(f"profile {profile['name']!r}: noise.loss_sigma_db {noise['loss_sigma_db']:g} drew MZIs "
                            f"whose negative extra losses can amplify light by over {MAX_GAIN_DB:g} dB through a {n}-port "
                            f"{profile['mesh']['layout']} mesh: not a device (lower noise.loss_sigma_db)")
        return out
    shape = (profile["bank"]["banks"], profile["bank"]["rings"])
    return {"offset": rng.standard_normal(shape) * noise["weight_sigma"],
            "crosstalk": np.array(float(noise["crosstalk"]))}


def has_static_errors(profile) -> bool:
    """Whether a chip of this profile differs from the nominal device."""
    noise = profile["noise"]
    if profile["architecture"] == "mzi":
        return any(noise[k] > 0 for k in ("phase_sigma", "splitter_sigma", "loss_sigma_db"))
    return noise["weight_sigma"] > 0


def draw(profile, seed: int) -> Chip:
    """The chip of ``profile`` drawn with ``seed`` (what ``photoncc chip`` writes, and what
    ``simulate --seed`` runs an mzi program on when no --chip is given)."""
    return Chip(_meta(profile, seed, "drawn"), draw_errors(profile, np.random.default_rng(seed)))


def _meta(profile, seed, kind: str, measurements: int | None = None) -> dict:
    return {"format": FORMAT, "version": VERSION, "profile": profile["name"], "architecture": profile["architecture"],
            "sizes": sizes(profile), "seed": seed, "kind": kind, "measurements": measurements,
            "photoncc": __version__}


def estimate(profile, arrays: dict, seed, measurements: int) -> Chip:
    """A chip estimated by calibration (``kind`` "estimate")."""
    return Chip(_meta(profile, seed, "estimate", measurements), arrays)


def expected_shapes(meta: dict) -> dict:
    s = meta["sizes"]
    if meta["architecture"] == "mzi":
        z, n = mzi_count(s["ports"]), s["ports"]
        return {"theta": (2, z), "phi": (2, z), "screen": (2, n), "e1": (2, z), "e2": (2, z), "loss_db": (2, z)}
    return {"offset": (s["banks"], s["rings"]), "crosstalk": ()}


def read(path, profile=None, option: str = "--chip") -> Chip:
    """The chip in ``path``, validated (module docstring); with ``profile``, it must be a chip of
    that profile (name, architecture and sizes). Every problem is a UserError naming the file."""
    path = Path(path)
    where = f"{option} {path}"
    if not path.is_file():
        raise UserError(f"{where}: no such file" if not path.exists() else f"{where}: not a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{where}: cannot read: {e.strerror or e}") from e
    if not data.startswith(b"PK"):
        raise UserError(f"{where}: not a chip file (write one with `photoncc chip PROFILE --seed N -o CHIP.npz`)")
    try:
        _check_sizes(data, where)
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            members = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile, NotImplementedError,
            RuntimeError) as e:  # zipfile's and np.load's ways of saying "corrupted" (an encrypted or unknown method)
        raise UserError(f"{where}: truncated or corrupted chip file ({quoted(e)})") from e
    if "meta" not in members or "sha256" not in members or members["meta"].dtype.kind != "U":
        raise UserError(f"{where}: not a chip file (no meta)")
    text = str(members.pop("meta"))
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: JSON nested thousands deep
        raise UserError(f"{where}: corrupted chip file (its meta is not JSON)") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{where}: not a chip file (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise UserError(f"{where}: chip format version {meta.get('version')!r} is not supported (reads version {VERSION})")
    digest = members.pop("sha256")
    if digest.dtype.kind != "U" or str(digest) != _digest(text, members):
        raise UserError(f"{where}: corrupted chip file: checksum mismatch")
    try:
        shapes = expected_shapes(meta)
    except (KeyError, TypeError) as e:
        raise UserError(f"{where}: corrupted chip file (its meta lacks {e})") from e
    if set(members) != set(shapes):
        raise UserError(f"{where}: corrupted chip file (arrays {sorted(members)}, expected {sorted(shapes)})")
    for key, shape in shapes.items():
        value = members[key]
        if value.shape != shape or value.dtype != np.float64 or not np.isfinite(value).all():
            raise UserError(f"{where}: corrupted chip file (array {key!r} is not {list(shape)} finite float64)")
    if "crosstalk" in members and not 0 <= float(members["crosstalk"]) < 0.5:
        raise UserError(f"{where}: its crosstalk {float(members['crosstalk']):.4g} is not in [0, 0.5) (the profile schema's bound)")
    chip = Chip(meta, members)
    if meta["architecture"] == "mzi" and (not isinstance(chip.layout, str) or chip.layout not in LAYOUTS):
        raise UserError(f"{where}: corrupted chip file (its mesh layout {chip.layout!r} is not one of "
                        f"{', '.join(LAYOUTS)})")
    if meta["architecture"] == "mzi" and gain_bound_db(chip.arrays["loss_db"], meta["sizes"]["ports"],
                                                        chip.layout) > MAX_GAIN_DB:
        raise UserError(f"{where}: its MZIs' negative extra losses can amplify light by over {MAX_GAIN_DB:g} dB "
                        "through a mesh: not a device (array 'loss_db' is corrupted)")
    if profile is not None:
        check_profile(chip, profile, where)
    return chip


def _check_sizes(data: bytes, where: str) -> None:
    """Every member's .npy header against the member's size, before anything is read: a header
    declaring more data than the member holds is refused without allocating it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version not in ((1, 0), (2, 0), (3, 0)):
                    raise ValueError(f"member {info.filename!r}: unsupported .npy version {version}")
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > info.file_size:
                    raise UserError(f"{where}: truncated or corrupted chip file (member {info.filename!r} declares "
                                    f"shape {list(shape)}, more than its {info.file_size} bytes)")


MAX_GAIN_DB = 300.0  # through one mesh at any setting: the two meshes of a tile stay within complex64 (the simulator's)


def gain_bound_db(loss_db: np.ndarray, ports: int, kind: str) -> float:
    """The most one mesh (layout ``kind``) with these extra losses ((..., Z) dB; each mesh of a
    chip) can amplify light, in dB, at any setting. No passive device amplifies, but an extra loss
    below zero is a gain: each column's MZIs are unitary blocks scaled by 10^(-loss / 20) (a mode
    without an MZI is not scaled: the nominal loss is apart), so a column amplifies by at most its
    largest negative extra loss, and a mesh by the sum over its columns. Beyond MAX_GAIN_DB the
    simulation would overflow (inf, then NaN)."""
    starts = [start for start, tops in mesh_layout(ports, kind) if len(tops)]
    if not starts:
        return 0.0
    worst = np.maximum.reduceat(-np.asarray(loss_db, np.float64), starts, axis=-1)   # columns are contiguous
    return float(np.maximum(worst, 0.0).sum(axis=-1).max())


def check_profile(chip: Chip, profile, where: str) -> None:
    """A chip of another profile, architecture or size is refused."""
    mine = sizes(profile)
    if chip.meta.get("architecture") != profile["architecture"] or chip.meta.get("sizes") != mine:
        raise UserError(f"{where}: a chip of {chip.meta.get('profile')!r} ({chip.meta.get('architecture')}, "
                        f"{_sizes_text(chip.meta.get('sizes'))}), not of {profile['name']!r} "
                        f"({profile['architecture']}, {_sizes_text(mine)})")
    if chip.meta.get("profile") != profile["name"]:
        raise UserError(f"{where}: a chip of profile {chip.meta.get('profile')!r}, not of {profile['name']!r}")


def _sizes_text(s) -> str:
    if not isinstance(s, dict):
        return "unknown sizes"
    return ", ".join(f"{k} {v}" for k, v in sorted(s.items()))


def _digest(text: str, arrays: dict) -> str:
    h = hashlib.sha256(text.encode())
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{value.dtype.str}|{list(value.shape)}|".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def summary(chip: Chip) -> dict:
    """What a program compiled for the chip records of it (``manifest.chip``)."""
    return {"profile": chip.meta["profile"], "seed": chip.meta.get("seed"), "kind": chip.meta.get("kind"),
            "sha256": chip.sha256}
