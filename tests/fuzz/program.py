"""Program border: .pcc device programs for ``inspect``, ``simulate`` and ``verify``.

A seed program is damaged as bytes, re-zipped (members reordered, dropped, renamed; the
manifest's text edited with its sha256 recomputed), or edited as a program (``manifest``) and
written back with every checksum recomputed and, half the time, its known answers recomputed
by photoncc's own simulator, so that the edit reaches the device rules and the simulator.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import zipfile
from pathlib import Path

import numpy as np

from photoncc.program import Program
from photoncc.sim import Simulator

from .case import Case, Plan, flip_bytes, pick, simulate_plan
from .manifest import PROGRAM_MUTATORS
from .npz import zip_members
from .seeds import Seeds


def read_seed_program(path: Path):
    """(manifest, tensors) of a seed program, as independent copies."""
    program = Program.read(path)
    manifest = json.loads(json.dumps(program.manifest))
    tensors = {k: np.array(v) for k, v in program.tensors.items()}
    return manifest, tensors


def refresh_kat(manifest: dict, tensors: dict):
    """The known answers recomputed by photoncc's own simulator (noiseless, per-read and, when the
    program records them, statistical) for an edited program, so that the edit gets past the
    known-answer test; None when the simulator cannot run it."""
    instructions = manifest.get("instructions") if isinstance(manifest, dict) else None
    for inst in instructions if isinstance(instructions, list) else []:  # an edit may have made it anything
        attrs = inst.get("attrs") if isinstance(inst, dict) else None
        if isinstance(attrs, dict) and any(isinstance(attrs.get(k), (int, float)) and abs(attrs[k]) > 64
                                           for k in ("weight_bits", "input_bits", "output_bits")):
            return None  # 2 ** bits would take hours (photoncc itself hangs on it: a finding)
    try:
        program = Program.from_bytes(Program(manifest, tensors).to_bytes())
        kat = program.manifest["kat"]
        new = dict(tensors)
        with contextlib.redirect_stderr(io.StringIO()):
            for key, layers_key, model in (("outputs", "layers", "per-read"),
                                           ("statistical", "statistical_layers", "statistical")):
                if key not in kat:
                    continue
                sim = Simulator(program, noiseless=True, noise_model=model)
                layers = kat.get(layers_key, {}) or {}
                out = sim.run({n: program.tensors[r] for n, r in kat["inputs"].items()}, keep=list(layers))
                for name, ref in {**kat[key], **layers}.items():
                    new[ref] = np.asarray(out[name])
        return new
    except Exception:  # noqa: BLE001 - the edit stays as it is; the CLI meets the same problem
        return None


def rezip(blob: bytes, rng: random.Random) -> tuple[bytes, str]:
    """The program's members re-zipped: compressed, reordered, one dropped, duplicated or renamed,
    an extra member; or the manifest text edited with its sha256 recomputed (format, version,
    tensor table, invalid JSON)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        members = [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    choice = rng.choice(["deflate", "reorder", "drop", "duplicate", "rename", "extra", "manifest", "manifest",
                         "manifest", "table", "table"])
    if choice == "deflate":
        return zip_members(members, zipfile.ZIP_DEFLATED), "re-zipped compressed"
    if choice == "reorder":
        rng.shuffle(members)
        return zip_members(members), "members reordered"
    if choice == "drop":
        members.pop(rng.randrange(len(members)))
        return zip_members(members), "a member dropped"
    if choice == "duplicate":
        return zip_members(members + [rng.choice(members)]), "a member twice"
    if choice == "rename":
        i = rng.randrange(len(members))
        members[i] = (rng.choice(["tensors/999999.npy", "../x.npy", "", "manifest.json "]), members[i][1])
        return zip_members(members), "a member renamed"
    if choice == "extra":
        return zip_members(members + [("extra.bin", bytes(1000))]), "an extra member"
    manifest = json.loads(dict(members)["manifest.json"])
    if choice == "table":
        name = rng.choice(sorted(manifest["tensors"]))
        entry = manifest["tensors"][name]
        key = rng.choice(["member", "shape", "dtype", "sha256", "entry"])
        if key == "member":
            entry["member"] = rng.choice(["manifest.json", "manifest.sha256", "missing.npy",
                                          rng.choice(list(manifest["tensors"].values()))["member"]])
        elif key == "shape":
            entry["shape"] = rng.choice([[], [10**12], None, "x", [-1]])
        elif key == "dtype":
            entry["dtype"] = rng.choice(["float64", "object", None, 3, "bogus"])
        elif key == "sha256":
            entry["sha256"] = rng.choice([None, 3, "", "00"])
        else:
            manifest["tensors"][name] = rng.choice([None, [], "x"])
        note = f"tensor table {name!r}.{key}"
        text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    else:
        edit = rng.choice(["format", "version", "invalid", "array", "tensors", "utf8", "huge-int"])
        if edit == "format":
            manifest["format"] = rng.choice(["photoncc-program2", None, 1])
        elif edit == "version":
            manifest["version"] = rng.choice([0, 2, "1", 1.0, True, None])
        elif edit == "tensors":
            manifest["tensors"] = rng.choice([None, [], "x", {}])
        text = json.dumps(manifest, indent=1, sort_keys=True).encode()
        if edit == "invalid":
            text = text[:rng.randrange(len(text))]
        elif edit == "array":
            text = b"[1, 2, 3]"
        elif edit == "utf8":
            text = text.replace(b'"photoncc-program"', b'"photoncc-program\xff"')
        elif edit == "huge-int":
            text = text.replace(b'"version": 1', b'"version": 1' + b"0" * 5000)
        note = f"manifest text: {edit}"
    members = [(m, text if m == "manifest.json" else hashlib.sha256(text).hexdigest().encode()
                if m == "manifest.sha256" else b) for m, b in members]
    return zip_members(members), note + " (sha256 recomputed)"


PROGRAM_SEEDS = {"mlp@ideal": 3, "mlp@mrr-incoherent-8b": 3, "mlp@mrr-balanced-8b": 2, "sig@mrr-sigmoid-8b": 2,
                 "cnn@ideal": 2, "cnn@harsh-4b": 2, "two@ideal": 1, "intin@ideal": 1, "digits@ideal": 1,
                 "digits@mrr-incoherent-8b": 1}


def build_program_case(case: Case, seeds: Seeds, rng: random.Random, nrng) -> None:
    """A seed program damaged as bytes, re-zipped, or edited as a program whose checksums (and,
    half the time, known answers) are recomputed; then inspect, simulate or verify it."""
    target = seeds.programs[pick(rng, PROGRAM_SEEDS)]
    case.notes.append(f"seed {target.name}")
    blob = target.path.read_bytes()
    kind = pick(rng, {"bytes": 3, "rezip": 2, "program": 7})
    ctx = {"nrng": nrng}
    if kind == "bytes":
        blob, note = flip_bytes(blob, rng)
        case.notes.append(note)
    elif kind == "rezip":
        blob, note = rezip(blob, rng)
        case.notes.append(note)
    else:
        manifest, tensors = read_seed_program(target.path)
        for _ in range(rng.choice([1, 1, 2, 3])):
            for _attempt in range(5):
                try:
                    note = pick(rng, PROGRAM_MUTATORS)(manifest, tensors, rng, ctx)
                except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                    note = None  # an earlier edit removed what this one edits
                if note:
                    case.notes.append(note)
                    break
        if rng.random() < 0.5:
            refreshed = refresh_kat(manifest, tensors)
            if refreshed is not None:
                tensors = refreshed
                case.notes.append("known answers recomputed")
        try:
            blob = Program(manifest, tensors).to_bytes()
        except Exception as e:  # noqa: BLE001 - e.g. an object array: the writer refuses it
            case.notes.append(f"unwritable edit ({type(e).__name__}); seed bytes flipped instead")
            blob, note = flip_bytes(target.path.read_bytes(), rng)
    path = case.folder / "in" / "p.pcc"
    path.write_bytes(blob)
    seed = target.model
    out = case.folder / "out"
    command = pick(rng, {"inspect": 4, "simulate": 9, "verify": 5, "verify-drawn": 1})
    if command == "inspect":
        case.plans.append(Plan(["inspect", str(path)] + (["--json"] if rng.random() < 0.3 else [])))
    elif command == "simulate":
        plan = simulate_plan(path, seed.data, out / "o.npz", seed.path, seed.specs, rng)
        if ctx.get("unexplained"):
            plan.nan = None  # a NaN of a new op or of an edited constant is the program's own, not a simulator bug
        case.plans.append(plan)
    else:
        argv = ["verify", str(path)] + (["--inputs", str(seed.data)] if command == "verify" else
                                        ["--samples", str(rng.choice([1, 5]))])
        argv += ["--trials", str(rng.choice([1, 2]))]
        if rng.random() < 0.3:
            argv += ["--noise-model", "statistical"]
        if rng.random() < 0.2:
            argv += ["--noiseless"]
        reports = ()
        if rng.random() < 0.3:
            reports = (out / "v.json",)
            argv += ["--json", str(reports[0])]
        case.plans.append(Plan(argv, reports, reports))
