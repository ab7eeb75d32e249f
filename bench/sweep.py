"""photoncc sweep against the same points run one after another with photoncc compile + verify.

Usage (from the repository root, with photoncc installed; plain Python, no extra packages):

    python bench/sweep.py                  # the issue's grid on the digits CNN, 3 seeds
    python bench/sweep.py --keep DIR       # keep the model, profiles, programs and CSVs in DIR
    python bench/sweep.py --repeat 5       # each sweep 5 times (default 3), the median reported

The model is a small digits CNN built here (``digits_cnn``; nothing is downloaded or trained by
gradient): the digits MLP's input standardisation (``tests/data/digits_mlp.onnx``'s Sub and Div
constants), the 8x8 image as 1 channel, Conv 3x3 with 16 seeded He-normal filters (padding 1),
Relu, MaxPool 2x2, Flatten, Gemm 256 -> 10 and Softmax. The Gemm is a ridge regression (lambda
RIDGE) of one-hot classes on the pooled features of the 200 calibration samples
(``digits_calibration.npz``, training samples); their classes are the digits MLP's predictions,
which are the true ones (it is 100 % right on its training set, tests/data/FIXTURES.md). On the
600 test samples it scores about 94 %.

The grid: ``precision.weight_bits=3,4,5,6,8`` x ``noise.detector_sigma=0.001,0.004,0.016`` on
``mrr-incoherent-8b``, 3 seeds per point (15 points, 45 noisy verifications of 600 samples).
Timed, each as whole processes, wall time:

* ``photoncc sweep`` with the default workers (the cores), and with ``--workers 1``; each
  ``--repeat`` times (default 3) from scratch, the median reported;
* the shell loop a user would write without it: for each point a profile file (``extends`` the
  base profile, the point's keys set; written before the clock), then
  ``photoncc compile CNN -p POINT.yaml --calibration CAL -o POINT.pcc`` and
  ``photoncc verify POINT.pcc --inputs TEST --trials 3 --json POINT.json``, run by ``bash``
  (once: it takes about 40 s on 2 cores).

photoncc's modules are compiled to bytecode first, as bench/run.py does. Every point's device
accuracy of the loop is compared with the sweep's (the same compile, the same
seeds 0, 1, 2: they must be equal). Output: a Markdown table; figures of a run in
docs/performance.md ("Design-space sweeps").
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import digits  # noqa: E402  (bench/digits.py)

DATA = ROOT / "tests" / "data"
CALIBRATION, TEST = DATA / "digits_calibration.npz", DATA / "digits_test.npz"
PROFILE = "mrr-incoherent-8b"
GRID = {"precision.weight_bits": [3, 4, 5, 6, 8], "noise.detector_sigma": [0.001, 0.004, 0.016]}
SEEDS = 3
CHANNELS, RIDGE, SEED = 16, 10.0, 0


def digits_cnn(path: Path) -> Path:
    """Write the digits CNN (module docstring) to ``path``; returns it."""
    import onnxruntime as ort

    mlp = onnx.load(str(DATA / "digits_mlp.onnx"))
    consts = {t.name: numpy_helper.to_array(t) for t in mlp.graph.initializer}
    mean, std = consts["mean"], consts["std"]
    filters = np.random.default_rng(SEED).normal(0, np.sqrt(2 / 9), (CHANNELS, 1, 3, 3)).astype(np.float32)
    bias = np.zeros(CHANNELS, np.float32)
    calibration = np.load(CALIBRATION)["pixels"]
    session = ort.InferenceSession(str(DATA / "digits_mlp.onnx"), providers=["CPUExecutionProvider"])
    classes = session.run(None, {"pixels": calibration})[0].argmax(axis=1)
    features = _features(calibration, mean, std, filters)
    design = np.hstack([features, np.ones((len(features), 1))]).astype(np.float64)
    head = np.linalg.solve(design.T @ design + RIDGE * np.eye(design.shape[1]), design.T @ np.eye(10)[classes])
    weight, head_bias = head[:-1].T.astype(np.float32), head[-1].astype(np.float32)
    nodes = [
        helper.make_node("Sub", ["pixels", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["standard"]),
        helper.make_node("Reshape", ["standard", "image_shape"], ["image"]),
        helper.make_node("Conv", ["image", "conv.weight", "conv.bias"], ["conv"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    inits = {"mean": mean, "std": std, "image_shape": np.array([-1, 1, 8, 8], np.int64), "conv.weight": filters,
             "conv.bias": bias, "fc.weight": weight, "fc.bias": head_bias}
    return digits.save_digits_model(path, "digits_cnn", nodes, inits)


def _features(pixels: np.ndarray, mean, std, filters) -> np.ndarray:
    """What the CNN computes before its Gemm, in NumPy (to fit the Gemm): standardise, 3x3 conv
    with padding 1, Relu, 2x2 max pool, flatten (channel-major, as ONNX's Flatten)."""
    image = np.pad(((pixels - mean) / std).reshape(-1, 8, 8), ((0, 0), (1, 1), (1, 1)))
    patches = np.lib.stride_tricks.sliding_window_view(image, (3, 3), axis=(1, 2))  # N, 8, 8, 3, 3
    conv = np.maximum(np.einsum("nhwij,cij->nchw", patches, filters[:, 0]), 0)
    return conv.reshape(len(pixels), CHANNELS, 4, 2, 4, 2).max(axis=(3, 5)).reshape(len(pixels), -1)


def points() -> list[dict]:
    """The grid's points in the sweep's order (the first key varying slowest)."""
    return [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]


def profile_file(point: dict, path: Path) -> Path:
    """A profile file that ``extends`` the base profile with the point's keys set."""
    data: dict = {"photoncc_profile": 1, "extends": PROFILE}
    for key, value in point.items():
        section, leaf = key.split(".")
        data.setdefault(section, {})[leaf] = value
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def timed(command: list[str] | str, **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def timed_sweep(command: list[str], output: Path, repeat: int) -> list[float]:
    """Wall times of ``repeat`` runs of a sweep, each from scratch (a CSV left by the run before
    would be resumed, and nothing run)."""
    times = []
    for _ in range(repeat):
        output.unlink(missing_ok=True)
        times.append(timed(command + ["-o", str(output)]))
    return times


def run(folder: Path, repeat: int) -> dict:
    model = digits_cnn(folder / "digits_cnn.onnx")
    base = ["photoncc", "sweep", str(model), "-p", PROFILE, "--calibration", str(CALIBRATION), "--inputs", str(TEST),
            *[arg for key, values in GRID.items() for arg in ("--vary", f"{key}={','.join(map(str, values))}")],
            "--seeds", str(SEEDS)]
    results = {"sweep": timed_sweep(base, folder / "sweep.csv", repeat),
               "sweep_1": timed_sweep(base + ["--workers", "1"], folder / "sweep1.csv", repeat)}
    loop = []
    for i, point in enumerate(points()):
        stem = shlex.quote(str(folder / f"point{i:02d}"))
        profile_file(point, folder / f"point{i:02d}.yaml")
        loop.append(f"photoncc compile {shlex.quote(str(model))} -p {stem}.yaml --calibration "
                    f"{shlex.quote(str(CALIBRATION))} -o {stem}.pcc 2>/dev/null")
        loop.append(f"photoncc verify {stem}.pcc --inputs {shlex.quote(str(TEST))} --trials {SEEDS} --json "
                    f"{stem}.json >/dev/null || true")  # exit 1 (a point that fails the thresholds) is a result
    (folder / "loop.sh").write_text("set -e\n" + "\n".join(loop) + "\n")
    results["loop"] = [timed(["bash", str(folder / "loop.sh")])]
    with open(folder / "sweep.csv", newline="") as f:
        swept = [float(row["device_accuracy"]) for row in csv.DictReader(f)]
    looped = [json.loads((folder / f"point{i:02d}.json").read_text())["accuracy"]["device"]
              for i in range(len(points()))]
    results["same_accuracy"] = bool(np.allclose(swept, looped, rtol=0, atol=5e-7))  # the CSV's 6 digits
    results["accuracy"] = {"min": min(swept), "max": max(swept)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep its files.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each sweep; the median is reported.")
    args = parser.parse_args()
    from run import compile_bytecode  # bench/run.py: photoncc's processes start as from an installed package
    compile_bytecode()
    load = os.getloadavg()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = run(args.keep, args.repeat)
    else:
        with tempfile.TemporaryDirectory() as folder:
            results = run(Path(folder), args.repeat)
    count = len(points())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"digits CNN, {PROFILE}, {count} points x {SEEDS} seeds; {platform.machine()}, {cores} cores, Python "
          f"{platform.python_version()}, photoncc at {commit.strip() or 'unknown commit'} (with uncommitted changes "
          f"if any); load average (1/5/15 min) {' '.join(f'{v:.2f}' for v in load)} before, "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} after")
    print("\n| method | wall time (runs) | per point | against the loop |\n|---|---|---|---|")
    loop = statistics.median(results["loop"])
    for key, what in (("loop", "shell loop: photoncc compile + photoncc verify per point"),
                      ("sweep_1", "photoncc sweep --workers 1"), ("sweep", f"photoncc sweep ({cores} workers)")):
        median, runs = statistics.median(results[key]), ", ".join(f"{t:.1f}" for t in results[key])
        print(f"| {what} | {median:.1f} s ({runs}) | {median / count:.2f} s | "
              + ("1x |" if key == "loop" else f"{loop / median:.1f}x faster |"))
    print(f"\ndevice accuracy {results['accuracy']['min']:.2%} to {results['accuracy']['max']:.2%}; the loop's "
          f"accuracies equal the sweep's at every point: {'yes' if results['same_accuracy'] else 'NO'}")
    sys.exit(0 if results["same_accuracy"] else 1)


if __name__ == "__main__":
    main()
