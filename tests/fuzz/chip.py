"""Chip border: chip files (``photoncc chip``, ``calibrate``; format in photoncc/chip.py) for
``compile --chip [--refine]``, ``simulate --chip``, ``verify --chip`` and ``calibrate --device``.

A chip drawn for the case's profile (sometimes for another profile, size or architecture) gets
0-3 edits of its arrays (values, splitting errors past their range, scales, dtypes, shapes, keys,
crosstalk) and of its meta (fields of any type, sizes, relabelled as the case's profile, keys, the
JSON text, the members' dtypes) (``chip_file``), written back with its checksum recomputed over
the edit (most cases, so that the edit reaches the reader's checks and the simulator) or kept;
then sometimes damage to the archive (``npz.archive_mutation``: truncation, huge declared shapes,
compression, flags, not a ZIP...). The profiles: the MZI ones (16-port mzi-8b and mzi-ideal,
64-port mzi-dat, and the seed folder's 4- and 8-port ``mzi-4p`` and ``dat-8p`` and 6-port Reck
``reck-6p``, small enough for ``calibrate`` to be fast) and the ring ones.
"""
from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import numpy as np

from photoncc.chip import _digest
from photoncc.profile import load_profile

from .case import Case, Plan, flip_bytes, pick, simulate_plan
from .chip_file import ACCEPTED_MUTATORS, ARRAY_MUTATORS, META_MUTATORS, chip_bytes, parts_of
from .npz import archive_mutation
from .seeds import Seeds

# the case's profile -> weight (every one has a seed program ``mlp@PROFILE``)
CHIP_PROFILES = {"mzi-8b": 5, "mzi-4p": 4, "dat-8p": 3, "reck-6p": 3, "mzi-ideal": 1, "mzi-dat": 1,
                 "mrr-incoherent-8b": 3, "mrr-balanced-8b": 2, "mrr-sigmoid-8b": 1, "harsh-4b": 1, "ideal": 1}
# the seed programs simulate and verify run, by profile
CHIP_PROGRAMS = {"mzi-8b": ("mlp@mzi-8b", "two@mzi-8b"), "mzi-4p": ("mlp@mzi-4p", "cnn@mzi-4p"),
                 "dat-8p": ("mlp@dat-8p",), "reck-6p": ("mlp@reck-6p",), "mzi-ideal": ("mlp@mzi-ideal",),
                 "mzi-dat": ("mlp@mzi-dat",),
                 "mrr-incoherent-8b": ("mlp@mrr-incoherent-8b",), "mrr-balanced-8b": ("mlp@mrr-balanced-8b",),
                 "mrr-sigmoid-8b": ("mlp@mrr-sigmoid-8b", "sig@mrr-sigmoid-8b"), "harsh-4b": ("mlp@harsh-4b",),
                 "ideal": ("mlp@ideal",)}
CALIBRATE_PROFILES = {"mzi-4p": 6, "dat-8p": 3, "reck-6p": 3, "mzi-8b": 1, "mrr-incoherent-8b": 1}

_PROFILES: dict = {}


def profile_of(seeds: Seeds, name: str):
    """The validated profile ``name`` (a built-in or a seed-folder file), loaded once per process."""
    if name not in _PROFILES:
        _PROFILES[name] = load_profile(seeds.profile_specs[name])
    return _PROFILES[name]


def write_chip(case: Case, seeds: Seeds, rng: random.Random, nrng, target: str) -> Path:
    """A chip for profile ``target`` (sometimes drawn for another one), 0-3 edits, its checksum
    recomputed (most cases) or kept, sometimes damaged as an archive; the file's path."""
    source = target if rng.random() < 0.8 else pick(rng, CHIP_PROFILES)
    seed = rng.choice([0, 1, 7, rng.randrange(2**32), 2**63 - 1])
    parts = parts_of(profile_of(seeds, source), seed)
    case.notes.append(f"chip of {source} (seed {seed}) for {target}")
    original_sha = _digest(parts.meta_text(), parts.arrays)
    accepted = rng.random() < 0.35  # edits a reader checking only the format accepts: they reach the devices
    ctx = {"profile": profile_of(seeds, target), "accepted": accepted}
    parts.recompute = accepted or rng.random() < 0.8
    if accepted:
        case.notes.append("(format kept)")
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        mutators = ACCEPTED_MUTATORS if accepted else ARRAY_MUTATORS if rng.random() < 0.6 else META_MUTATORS
        for _attempt in range(5):
            note = pick(rng, mutators)(parts, rng, nrng, ctx)
            if note:
                case.notes.append(note)
                break
    blob = chip_bytes(parts, original_sha)
    if not parts.recompute:
        case.notes.append("checksum kept")
    clean = parts.text is None and parts.meta_array is None and parts.sha is None
    if clean and parts.recompute and any(np.asarray(a).dtype.kind == "f" and not np.isfinite(a).all()
                                         for a in parts.arrays.values() if np.asarray(a).dtype.kind in "fc"):
        case.expect_refusal = "a chip with non-finite errors"
    r = 1.0 if accepted else rng.random()
    if r < 0.15:
        specs = {key: (np.shape(value), "float64") for key, value in parts.arrays.items()} or {"meta": ((), "<U8")}
        members = [(f"{key}.npy", b) for key, b in _members(blob)]
        blob, note = archive_mutation(members, specs, rng, nrng)
        case.notes.append(note)
        case.expect_refusal = None
    elif r < 0.2:
        blob, note = flip_bytes(blob, rng)
        case.notes.append(note)
        case.expect_refusal = None
    path = case.folder / "in" / rng.choice(["chip.npz", "chip.npz", "chip.npz", "chip", "chip.npy"])
    path.write_bytes(blob)
    r = rng.random()
    if r < 0.02:
        path = case.folder / "in"
        case.notes.append("chip path is a folder")
    elif r < 0.04:
        path = case.folder / "in" / "missing.npz"
        case.notes.append("chip path missing")
    return path


def _members(blob: bytes) -> list:
    """(key, bytes) of each member of a chip file as written by ``chip_bytes``."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return [(info.filename[:-4], archive.read(info.filename)) for info in archive.infolist()]


def build_chip_case(case: Case, seeds: Seeds, rng: random.Random, nrng) -> None:
    """A chip file, edited, used by compile --chip (then simulate --chip), simulate --chip, verify
    --chip (a program, or a model compiled in memory) or calibrate --device (then compile --chip
    with the estimate)."""
    command = pick(rng, {"compile": 6, "simulate": 6, "verify": 3, "verify-model": 2, "calibrate": 4})
    target = pick(rng, CALIBRATE_PROFILES if command == "calibrate" else CHIP_PROFILES)
    chip = write_chip(case, seeds, rng, nrng, target)
    spec = seeds.profile_specs[target]
    program = seeds.programs[rng.choice(CHIP_PROGRAMS[target])]
    seed = program.model
    out = case.folder / "out"
    if command == "compile":
        compiled = out / "p.pcc"
        argv = ["compile", str(seed.path), "-p", spec, "--calibration", str(seed.data), "--chip", str(chip),
                "-o", str(compiled if rng.random() < 0.97 else chip)]
        case.plans.append(Plan(argv, (compiled,)))
        follow = simulate_plan(compiled, seed.data, out / "sim.npz", seed.path, seed.specs, rng, follow=True)
        follow.argv += ["--chip", str(chip)] if rng.random() < 0.7 else []
        case.plans.append(follow)
        argv += ["--refine", str(rng.choice([1, 3, 12]))] if rng.random() < 0.3 else []  # drawn last: seeds keep their cases
    elif command == "simulate":
        plan = simulate_plan(program.path, seed.data, out / "o.npz", seed.path, seed.specs, rng)
        plan.argv += ["--chip", str(chip)]
        case.plans.append(plan)
    elif command in ("verify", "verify-model"):
        what = [str(program.path)] if command == "verify" else [str(seed.path), "-p", spec]
        argv = ["verify", *what, "--inputs", str(seed.data), "--chip", str(chip), "--trials", str(rng.choice([1, 2]))]
        argv += rng.choice([[], [], ["--noiseless"], ["--noise-model", "per-read"], ["--seed", "3"]])
        reports = (out / "v.json",) if rng.random() < 0.3 else ()
        argv += ["--json", str(reports[0])] if reports else []
        case.plans.append(Plan(argv, reports, reports))
    else:
        estimate = out / "e.npz"
        probes = rng.choice([3, 3, 4, 6])
        argv = ["calibrate", spec, "--device", str(chip), "--probes", str(probes), "--seed",
                str(rng.choice([0, 1, 2**40])), "-o", str(estimate if rng.random() < 0.97 else chip)]
        case.plans.append(Plan(argv, (estimate,)))
        compiled = out / "p.pcc"
        case.plans.append(Plan(["compile", str(seed.path), "-p", spec, "--calibration", str(seed.data),
                                "--chip", str(estimate), "-o", str(compiled)], (compiled,), follow=True))
