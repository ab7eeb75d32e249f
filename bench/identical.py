"""Are two versions of photoncc the same compiler? Programs byte for byte, outputs bit for bit.

    python bench/identical.py BASE [HEAD] [--quick] [--keep DIR]

BASE and HEAD are git commits (HEAD defaults to the working tree). Each is checked out in a
temporary worktree and runs, in a process of its own, the same command lines on the same files:
for every model of the set and every built-in profile of BASE, `photoncc compile` (with the
model's calibration data), then `photoncc simulate` of the program with the default, per-read
and statistical noise models and `--noiseless`, seeded. The sha256 of every program, outputs file
and error message is compared; the script prints each difference and exits 1 if there is one.

The set: the test fixtures of tests/data, the bundled example, the benchmark's MLP and CNN and, without
--quick, its ResNet-18 and the onnx wheel's light SqueezeNet and Inception v1 (random weights, two
calibration samples). A refactoring that must not change behaviour is checked with it (the note
gives its output).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

DRIVER = r'''
import hashlib, json, sys
from pathlib import Path
import photoncc
from photoncc.cli import main
from photoncc.profile import builtin_names

work, out = Path(sys.argv[1]), Path(sys.argv[2])
cases = json.loads((work / "cases.json").read_text())
result = {"photoncc": photoncc.__file__}

def run(key, argv, produced):
    import contextlib, io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    digest = hashlib.sha256(produced.read_bytes()).hexdigest() if code == 0 and produced.exists() else None
    result[key] = {"exit": code, "sha256": digest, "stderr": err.getvalue() if code else ""}
    return code == 0

for name, (model, calibration, inputs) in cases.items():
    for profile in builtin_names():
        program = out / f"{name}.{profile}.pcc"
        if not run(f"{name} {profile} compile", ["compile", work / model, "-p", profile, "--calibration",
                                                 work / calibration, "-o", program], program):
            continue
        for label, extra in (("default", []), ("per-read", ["--noise-model", "per-read"]),
                             ("statistical", ["--noise-model", "statistical"]), ("noiseless", ["--noiseless"])):
            outputs = out / f"{name}.{profile}.{label}.npz"
            run(f"{name} {profile} simulate {label}", ["simulate", program, "--inputs", work / inputs,
                                                       "-o", outputs, "--seed", "3"] + extra, outputs)
print(json.dumps(result))
'''


def build_cases(work: Path, quick: bool) -> dict:
    """Copy or build every model and its data into ``work``; name -> (model, calibration, inputs)."""
    data = ROOT / "tests" / "data"
    cases = {}
    for model in sorted(data.glob("*.onnx")):
        stem = model.stem
        for extra in data.glob(f"{stem}.onnx*"):
            shutil.copy(extra, work / extra.name)
        if (data / f"{stem}.npz").exists():
            shutil.copy(data / f"{stem}.npz", work / f"{stem}.npz")
            cases[stem] = (model.name, f"{stem}.npz", f"{stem}.npz")
    for name in ("digits_calibration.npz", "digits_test.npz"):
        shutil.copy(data / name, work / name)
    for stem in ("digits_mlp", "digits_sigmoid_mlp"):
        cases[stem] = (f"{stem}.onnx", "digits_calibration.npz", "digits_test.npz")
    for name in ("glyphs_mlp.onnx", "calibration.npz", "test.npz"):
        shutil.copy(ROOT / "examples" / name, work / name)
    cases["glyphs_mlp"] = ("glyphs_mlp.onnx", "calibration.npz", "test.npz")
    import models as bench_models  # bench/models.py
    for name in ("mlp", "cnn") + (() if quick else ("resnet18",)):
        count = 2 if name == "resnet18" else 16
        onnx.save(bench_models.build(name), work / f"bench_{name}.onnx")
        np.savez(work / f"bench_{name}.npz", **{"input": bench_models.inputs(name, count, seed=1)})
        cases[f"bench_{name}"] = (f"bench_{name}.onnx", f"bench_{name}.npz", f"bench_{name}.npz")
    if not quick:
        light = _load("test_models", ROOT / "tests" / "models.py")
        for name in ("squeezenet", "inception_v1"):
            model = light.light_model(name)
            onnx.save(model, work / f"light_{name}.onnx")
            np.savez(work / f"light_{name}.npz", light.image_batch(2))
            cases[f"light_{name}"] = (f"light_{name}.onnx", f"light_{name}.npz", f"light_{name}.npz")
    return cases


def _load(name: str, path: Path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_version(commit: str | None, work: Path, out: Path) -> dict:
    """Run the driver with the photoncc of ``commit`` (None: the working tree)."""
    out.mkdir(parents=True)
    tree = ROOT
    if commit is not None:
        tree = Path(tempfile.mkdtemp(prefix="photoncc-tree-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), commit],
                       check=True, capture_output=True)
    try:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        done = subprocess.run([sys.executable, "-c", DRIVER, str(work), str(out)], env=env, cwd=work,
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the driver failed for {commit or 'the working tree'}:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert Path(result.pop("photoncc")).is_relative_to(tree), "the driver imported another photoncc"
        return result
    finally:
        if commit is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("head", nargs="?", default=None, help="a commit [default: the working tree]")
    parser.add_argument("--quick", action="store_true", help="only the small models")
    parser.add_argument("--keep", type=Path, help="keep the models, programs and outputs in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="photoncc-identical-"))
    work = folder / "models"
    work.mkdir(parents=True, exist_ok=True)
    cases = build_cases(work, args.quick)
    (work / "cases.json").write_text(json.dumps(cases))
    base = run_version(args.base, work, folder / "base")
    head = run_version(args.head, work, folder / "head")
    # a profile only one version has (a new built-in profile) is listed, not compared
    profiles = {key.split()[1] for key in base} & {key.split()[1] for key in head}
    only = sorted(key for key in set(base) ^ set(head) if key.split()[1] not in profiles)
    differ = sorted(key for key in set(base) | set(head) if key.split()[1] in profiles and base.get(key) != head.get(key))
    compiled = sum(key.endswith("compile") and value["exit"] == 0 for key, value in base.items())
    simulated = sum("simulate" in key and value["exit"] == 0 for key, value in base.items())
    print(f"{len(cases)} models x {len(profiles)} profiles: {compiled} programs and "
          f"{simulated} outputs files compared ({len(base)} runs, {sum(v['exit'] != 0 for v in base.values())} "
          f"refused alike or not), {len(differ)} differ")
    for key in differ:
        print(f"  DIFFERS {key}: base {base.get(key)} head {head.get(key)}")
    if only:
        print(f"  {len(only)} run(s) of profiles only one version has, not compared: "
              + ", ".join(sorted({key.split()[1] for key in only})))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
