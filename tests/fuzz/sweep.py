"""Sweep border: ``photoncc sweep`` grids (``--vary KEY=V1,V2,...``), its options and its output
paths, on a tiny model (in-process: ``--workers 1``).

A case draws a base (a seed model, its data, with labels or not, and a profile of either
architecture family, built-in or a file) and 1-3 ``--vary`` options: keys of the base's family,
of the other family, ``architecture`` and ``activation.kind``, sections, keys resolved on loading,
unknown keys and typos, empty keys; values the key's rule accepts (at the extremes) or any text
(NaN and inf spellings, YAML booleans, tags, aliases, flow mappings, brackets, dates, 5000
characters), empty values, values given twice, and sometimes 1000-20000 values. Then ``--seeds``,
``--noise-model``, ``--workers`` and the outputs (``-o``, ``--json``, ``--plot``; sometimes one
of the inputs, another output, a folder, a missing folder, or an existing file: garbage, another
sweep's CSV, or this sweep's, run before: resume). The grids that run stay small (at most 24
points).

Besides the oracle's rules, a sweep that exits 0 must not hide a bug in a row: a point whose
``error`` column says ``internal error`` is a violation (``hidden_errors``).
"""
from __future__ import annotations

import csv
import io
import os
import random
import shutil
from pathlib import Path

from photoncc.profile import FAMILY_KEYS
from photoncc.sweep import leaf_keys

from .case import Case, Plan, pick
from .profile import extreme_values, schema_leaves
from .seeds import Seeds

SWEEP_BASES = {("mlp", "ideal"): 3, ("mlp", "mrr-incoherent-8b"): 3, ("mlp", "mzi-4p"): 2, ("mlp", "dat-8p"): 1,
               ("mlp", "mzi-ideal"): 1, ("mlp", "mzi-8b"): 1, ("sig", "mrr-sigmoid-8b"): 1,
               ("mlp", "mrr-balanced-8b"): 1, ("two", "ideal"): 1, ("intin", "ideal"): 1, ("mlp", "harsh-4b"): 1}
RULES = {".".join(path): rule for path, rule in schema_leaves()}
ODD_TOKENS = ["nan", ".nan", "NaN", "inf", "-inf", ".inf", "-.inf", "1e999", "-1e999", "1e-400", "0x10", "0o17",
              "1_000", "+8", "08", "8.", ".5", "yes", "no", "on", "off", "true", "~", "null", "[]", "[1]", "[1, 2, 3]",
              "[-1, 1]", "[-0.5, 0.5]", "[nan, 1]", "[-1, 0]", "{}", "{a: 1}", "!!python/object:os.system",
              "!!binary aGk=", "!!float abc", "!!int 0x", "!!timestamp abc", "!!str 8", "&a [*a]", "*a",
              "[&a [1, 2], *a, *a]", "[", "]", "'8'", '"8"', "8 # c", str(2**63), str(2**64), "-0", "-0.0", "1e-3",
              "1E3", "ü", "x" * 5000, " 8 ", "8\n9", "2012-01-01", "abc", "auto", "mzi", "balanced", "incoherent",
              "electronic", "photonic_sigmoid", "saturable_absorber", "? a", "- 1", "|", ">", "%YAML 1.2", "---",
              "[" * 200, "\x00", "\t", "1" + "0" * 400]
TYPICAL = ["1", "2", "4", "8", "16", "null", "0", "0.001", "0.01", "0.1", "0.5", "1.0", "3"]
ODD_KEYS = ["noise.detector_sgima", "", " ", "precision..weight_bits", ".noise", "noise.", "NOISE.seed",
            " precision.weight_bits ", "a=b", "précision.weight_bits", "noise.seed.x", "verify.noisy",
            "verify.noisy.trials.x", "bank.banks ", "mesh.ports\t", "x" * 3000, "extends", "photoncc_profile",
            "noise", "bank", "mesh", "activation", "name", "description", "source"]


def value_tokens(key: str, rng: random.Random, odd: float = 0.25) -> list[str]:
    """1-4 value texts for ``key``: what its rule accepts, and with probability ``odd`` each any text."""
    rule = RULES.get(key.strip())
    good = [_text(v) for v in extreme_values(rule) if not (isinstance(v, str) and len(v) > 100)] if rule else []
    good += [t for t in TYPICAL if rule and _accepts(rule, t)]
    tokens = []
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        tokens.append(rng.choice(good) if good and rng.random() >= odd else rng.choice(ODD_TOKENS))
    return tokens


def _text(value) -> str:
    import json
    return json.dumps(value) if value is None or isinstance(value, list) else repr(value) if isinstance(value, float) \
        else str(value)


def _accepts(rule, token: str) -> bool:
    from photoncc.sweep.grid import parse_value
    try:
        return bool(rule(parse_value(token))[0])
    except Exception:  # noqa: BLE001 - a token the parser itself chokes on: not a good value
        return False


def vary_options(base: dict, rng: random.Random, notes: list) -> list[str]:
    """1-3 ``--vary`` texts for a sweep on ``base`` (see the module docstring); half the cases only
    keys of the base's family and values their rules accept (they run)."""
    if rng.random() < 0.5:
        return _good_options(base, rng, notes)
    family = "mzi" if base["architecture"] == "mzi" else "rings"
    other = set(FAMILY_KEYS["rings" if family == "mzi" else "mzi"])
    leaves = [k for k in leaf_keys() if k not in ("photoncc_profile", "extends")]
    mine = [k for k in leaves if k not in other]
    specs = []
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        kind = pick(rng, {"mine": 10, "other": 2, "architecture": 1, "activation": 1, "odd": 2, "again": 1})
        key = {"mine": lambda: rng.choice(mine), "other": lambda: rng.choice(sorted(other)),
               "architecture": lambda: "architecture", "activation": lambda: "activation.kind",
               "odd": lambda: rng.choice(ODD_KEYS),
               "again": lambda: specs[-1].partition("=")[0] if specs else rng.choice(mine)}[kind]()
        tokens = value_tokens(key, rng)
        r = rng.random()
        if r < 0.04:
            tokens = tokens[:1] * rng.choice([2, 1000, 20000])
            notes.append(f"{key}: one value {len(tokens)} times")
        elif r < 0.07 and key.strip() not in ("name", "description", "source"):
            count = rng.choice([1000, 20000])
            tokens = [str(i) for i in range(count)]
            tokens.insert(rng.randrange(count), "{a: 1}")
            notes.append(f"{key}: {count + 1} values, one a mapping")
        elif r < 0.12:
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(["", " ", ""]))
            notes.append(f"{key}: an empty value")
        listed = ",".join(tokens)
        spec = rng.choice([f"{key}={listed}"] * 12 + [key, f"={listed}", f"{key}=", f"{key}=={listed}",
                                                        f"{key} = {listed}"])
        specs.append(spec)
        notes.append(f"--vary {spec[:80]!r} ({kind})")
    return _bounded(specs)


def _good_options(base: dict, rng: random.Random, notes: list) -> list[str]:
    family = "mzi" if base["architecture"] == "mzi" else "rings"
    other = set(FAMILY_KEYS["rings" if family == "mzi" else "mzi"]) | {"bank.weight_range", "architecture"}
    keys = [k for k in leaf_keys() if k not in other and k not in ("photoncc_profile", "extends")]
    specs = []
    for key in rng.sample(keys, rng.choice([1, 1, 2, 3])):
        spec = f"{key}={','.join(dict.fromkeys(value_tokens(key, rng, odd=0.0)))}"
        specs.append(spec)
        notes.append(f"--vary {spec[:80]!r} (accepted values)")
    return _bounded(specs)


def _bounded(specs: list[str]) -> list[str]:
    """At most 24 points where every value is good: later axes trimmed (only grids that fail
    before they run keep their huge lists)."""
    sizes = [len(s.partition("=")[2].split(",")) for s in specs]
    if max(sizes, default=0) > 100:
        return specs
    while specs and _product(sizes) > 24:
        i = max(range(len(sizes)), key=lambda j: sizes[j])
        key, _, listed = specs[i].partition("=")
        values = listed.split(",")[:max(1, sizes[i] // 2)]
        specs[i], sizes[i] = f"{key}={','.join(values)}", len(values)
    return specs


def _product(sizes):
    out = 1
    for s in sizes:
        out *= s
    return out


EXISTING = {"garbage": b"not,a,sweep\n1,2\n", "binary": b"\xff\xfe\x00garbage", "empty": b"",
            "header": b"precision.weight_bits,tier\n", "half-line": b"a,b,c\n1,2"}


def build_sweep_case(case: Case, seeds: Seeds, rng: random.Random, nrng) -> None:
    """A sweep of a tiny model over a fuzzed grid, in this process (``--workers 1``)."""
    model_name, profile_name = pick(rng, SWEEP_BASES)
    seed = seeds.models[model_name]
    inp = case.folder / "in"
    model = inp / "m.onnx"
    shutil.copy(seed.path, model)
    calibration = inp / "cal.npz"
    shutil.copy(seed.data, calibration)
    inputs = calibration if rng.random() < 0.3 else inp / "test.npz"
    if inputs != calibration:
        _test_data(seed.data, inputs, rng, nrng)
    spec, files = seeds.profile_specs[profile_name], [model, calibration, inputs]
    if spec != profile_name or rng.random() < 0.1:  # a file: copied, so that an output may name it
        profile_file = inp / "profile.yaml"
        profile_file.write_text(f"extends: {profile_name}\n" if spec == profile_name else Path(spec).read_text())
        spec = str(profile_file)
        files.append(profile_file)
    case.notes.append(f"base {model_name} on {profile_name}")
    argv = ["sweep", str(model), "-p", spec, "--calibration", str(calibration), "--inputs", str(inputs)]
    argv += _options(rng, case.notes)
    outputs, allowed = _outputs(case, rng, files)
    argv += outputs
    for option in vary_options(seeds.profiles.get(profile_name) or _profile_doc(seeds, profile_name), rng, case.notes):
        argv += ["--vary", option]
    csv_path = case.folder / "out" / "s.csv"
    case.plans.append(Plan(argv, allowed, table=csv_path))
    if rng.random() < 0.1:  # run it again: resumed (the same grid, or one more value)
        again = list(argv)
        if rng.random() < 0.5:
            at = again.index("--vary") + 1
            again[at] += ",1"
            case.notes.append("then again with one more value")
        else:
            case.notes.append("then again")
        case.plans.append(Plan(again, allowed, table=csv_path, follow=True))


def _profile_doc(seeds: Seeds, name: str) -> dict:
    from .chip import profile_of
    return dict(profile_of(seeds, name))


def _test_data(source, path, rng, nrng) -> None:
    """The seed's data, with a ``label`` array (classes 0-2) half the time."""
    import numpy as np
    with np.load(source) as archive:
        arrays = {k: archive[k] for k in archive.files}
    if rng.random() < 0.5:
        arrays["label"] = nrng.integers(0, 3, len(next(iter(arrays.values()))))
    np.savez(path, **arrays)


def _options(rng: random.Random, notes: list) -> list[str]:
    args = []
    seeds = pick(rng, {None: 5, "1": 2, "2": 2, "3": 1, "0": 0.2, "-1": 0.2, "x": 0.2})
    args += ["--seeds", seeds] if seeds else []
    model = pick(rng, {None: 6, "statistical": 2, "per-read": 2, "bogus": 0.2})
    args += ["--noise-model", model] if model else []
    workers = pick(rng, {"1": 40, "0": 1, "scheduler": 1})
    args += ["--workers", "1"] + (["--scheduler", "tcp://127.0.0.1:1"] if workers == "scheduler" else []) \
        if workers != "0" else ["--workers", "0"]
    notes.append(f"--seeds {seeds}, --noise-model {model}, workers {workers}")
    return args


def _outputs(case: Case, rng: random.Random, inputs: list) -> tuple[list, tuple]:
    """The output options, sometimes naming an input, another output, a folder or a missing
    folder, or a file already there; and the files the sweep may write."""
    out = case.folder / "out"
    csv_path, json_path, png = out / "s.csv", out / "s.json", out / "s.png"
    o = str(csv_path)
    r = rng.random()
    if r < 0.08:
        o = str(rng.choice(inputs + [out, out / "missing" / "s.csv"]))
        case.notes.append(f"-o {os.path.relpath(o, case.folder)}")
    elif r < 0.16:
        kind = rng.choice(sorted(EXISTING))
        csv_path.write_bytes(EXISTING[kind])
        case.notes.append(f"-o exists: {kind}")
    args = ["-o", o]
    if rng.random() < 0.3:
        args += ["--json", str(json_path) if rng.random() < 0.9 else o]
    if rng.random() < 0.08:
        args += ["--plot", str(png) if rng.random() < 0.8 else str(json_path)]
    return args, (csv_path, json_path, png)


def hidden_errors(path) -> str | None:
    """The rows of a sweep's CSV whose ``error`` says ``internal error`` (a bug recorded as a
    failed point), or None."""
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return f"the CSV does not read back: {type(e).__name__}: {e}"
    if not rows or "error" not in rows[0]:
        return "the CSV has no error column"
    at = rows[0].index("error")
    found = [row[at] for row in rows[1:] if len(row) > at and "internal error" in row[at]]
    return f"{len(found)} point(s): {found[0][:300]}" if found else None
