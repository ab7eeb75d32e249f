"""photoncc finetune's accuracy on the digits models (issue 19's "Done when" figures; docs/accuracy.md).

Usage (from the repository root; plain Python, nothing downloaded):

    python bench/finetune_accuracy.py                   # every model, labels and distillation
    python bench/finetune_accuracy.py --models mlp --targets labels --epochs 60 --keep DIR

Models: tests/data/digits_mlp.onnx, tests/data/digits_sigmoid_mlp.onnx and a digits CNN (``cnn_graph``:
pixels / 16, Conv 3x3 x16 + Relu + MaxPool + Gemm 256 -> 10, seeded He-normal weights, trained from
scratch in float by ``photoncc finetune -p ideal`` on the training split, CNN_EPOCHS epochs at CNN_LR).
Data: tests/data/digits_train.npz (the 1197 samples the MLPs were trained on), digits_test.npz (600
samples no model saw), digits_calibration.npz (200 training samples: the calibration of every compile).

Protocol, every step a ``photoncc`` command run as a user runs it (printed with ``--show``):

* the test samples are cut into two halves, A (even indices) and B (odd); a run fine-tunes on the
  training split with ``--val A`` (the epoch kept is chosen on A) and is verified on B
  (``photoncc verify TUNED -p harsh-4b --calibration CAL --inputs B``: 5 seeded trials), and the
  other way round; a seed's device accuracy is the mean of its two halves (all 600 samples, each
  scored by a model not selected on it). A held-out split of the training data would choose the
  epoch on samples the original model was trained on, which favours the original weights;
* "labels": --train digits_train.npz (with its labels, cross-entropy); "distillation": the same
  pixels without labels (the model learns its own onnxruntime outputs), --val without labels;
* before: ``photoncc verify MODEL -p harsh-4b --calibration CAL --inputs digits_test.npz``.

Output: a Markdown table per target, float accuracy, device accuracy before and after per seed, and
whether the issue's bound holds on every seed (labels: within 0.5 point of the float accuracy;
distillation: within 1 point).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import digits  # noqa: E402  (bench/digits.py)

DATA = ROOT / "tests" / "data"
TRAIN, TEST, CAL = DATA / "digits_train.npz", DATA / "digits_test.npz", DATA / "digits_calibration.npz"
PROFILE, EPOCHS, CNN_EPOCHS, CNN_LR = "harsh-4b", 60, 60, 0.01
BOUND = {"labels": 0.005, "distillation": 0.01}
SHOW = False


def photoncc(*args) -> None:
    command = [sys.executable, "-m", "photoncc", *[str(a) for a in args]]
    if SHOW:
        print("$ photoncc " + " ".join(str(a) for a in args), file=sys.stderr)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def verify(model: Path, inputs: Path, work: Path, profile: str = PROFILE) -> list[float]:
    """Device accuracy per trial (seeds 0-4 on a noisy profile) of ``model`` (verify exits 1 when it fails)."""
    report = work / "verify.json"
    try:
        photoncc("verify", model, "-p", profile, "--calibration", CAL, "--inputs", inputs, "--json", report)
    except subprocess.CalledProcessError as e:
        if e.returncode != 1:
            raise
    return json.loads(report.read_text())["accuracy"]["device_per_trial"]


def float_accuracy(model: Path) -> float:
    import onnxruntime as ort
    test = np.load(TEST)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return float((session.run(None, {"pixels": test["pixels"]})[0].argmax(1) == test["label"]).mean())


def cnn_graph(path: Path, seed: int = 0) -> Path:
    """An untrained digits CNN (seeded He-normal weights, zero biases): pixels / 16 as one 8x8
    channel, Conv 3x3 x16 (padding 1), Relu, MaxPool 2x2, Flatten, Gemm 256 -> 10, Softmax."""
    from onnx import helper
    rng = np.random.default_rng(seed)
    inits = {"scale": np.array(16.0, np.float32), "image_shape": np.array([-1, 1, 8, 8], np.int64),
             "conv.weight": rng.normal(0, np.sqrt(2 / 9), (16, 1, 3, 3)).astype(np.float32),
             "conv.bias": np.zeros(16, np.float32),
             "fc.weight": rng.normal(0, np.sqrt(2 / 256), (10, 256)).astype(np.float32),
             "fc.bias": np.zeros(10, np.float32)}
    nodes = [helper.make_node("Div", ["pixels", "scale"], ["unit"], name="scale"),
             helper.make_node("Reshape", ["unit", "image_shape"], ["image"], name="image"),
             helper.make_node("Conv", ["image", "conv.weight", "conv.bias"], ["conv"], name="conv",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("MaxPool", ["relu"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
             helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1)]
    return digits.save_digits_model(path, "digits_cnn", nodes, inits)


def digits_cnn(work: Path) -> Path:
    """The float digits CNN: ``cnn_graph`` trained from scratch by finetune on the ideal profile."""
    trained = work / "digits_cnn.onnx"
    photoncc("finetune", cnn_graph(work / "digits_cnn_untrained.onnx"), "--train", TRAIN, "-p", "ideal",
             "--calibration", CAL, "--epochs", CNN_EPOCHS, "--lr", CNN_LR, "-o", trained)
    return trained


def halves(work: Path) -> dict:
    """The test halves A and B, with labels (for verify) and without (distillation's --val)."""
    test = np.load(TEST)
    files = {}
    for name, part in (("A", slice(0, None, 2)), ("B", slice(1, None, 2))):
        files[name] = work / f"test_{name}.npz"
        np.savez(files[name], pixels=test["pixels"][part], label=test["label"][part])
        files[name + "-"] = work / f"test_{name}_unlabelled.npz"
        np.savez(files[name + "-"], pixels=test["pixels"][part])
    files["train-"] = work / "train_unlabelled.npz"
    np.savez(files["train-"], pixels=np.load(TRAIN)["pixels"])
    return files


def tuned_accuracy(model: Path, target: str, files: dict, epochs: int, work: Path) -> list[float]:
    """Per seed, the device accuracy on all 600 test samples of the two cross-selected runs."""
    per_half = []
    for val, test in (("A", "B"), ("B", "A")):
        train = TRAIN if target == "labels" else files["train-"]
        held = files[val] if target == "labels" else files[val + "-"]
        tuned = work / f"{model.stem}_{target}_{val}.onnx"
        photoncc("finetune", model, "--train", train, "--val", held, "-p", PROFILE, "--calibration", CAL,
                 "--epochs", epochs, "-o", tuned)
        per_half.append(verify(tuned, files[test], work))
    return [(a + b) / 2 for a, b in zip(*per_half)]


def row(name: str, target: str, float_acc: float, before: list, after: list) -> str:
    ok = min(after) >= float_acc - BOUND[target] - 1e-9
    pct = lambda values: " / ".join(f"{100 * v:.2f}" for v in values)  # noqa: E731
    return (f"| {name} | {100 * float_acc:.2f} % | {100 * np.mean(before):.2f} % ({pct(before)}) | "
            f"{100 * np.mean(after):.2f} % ({pct(after)}) | {100 * min(after):.2f} % | "
            f"{'yes' if ok else 'no'} |")


def main() -> None:
    global SHOW
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,sigmoid,cnn")
    parser.add_argument("--targets", default="labels,distillation")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--keep", type=Path, help="keep the models and data in this folder")
    parser.add_argument("--show", action="store_true", help="print every photoncc command run")
    args = parser.parse_args()
    SHOW = args.show
    work = args.keep or Path(tempfile.mkdtemp(prefix="finetune_accuracy_"))
    work.mkdir(parents=True, exist_ok=True)
    files = halves(work)
    models = {"mlp": DATA / "digits_mlp.onnx", "sigmoid": DATA / "digits_sigmoid_mlp.onnx"}
    if "cnn" in args.models:
        models["cnn"] = digits_cnn(work)
    for target in args.targets.split(","):
        print(f"\n{target} ({args.epochs} epochs, {PROFILE}; bound: {100 * BOUND[target]:.1f} point below the "
              "float accuracy on every seed)\n")
        print("| model | float accuracy | device before (seeds 0-4) | device after (seeds 0-4) | worst seed after "
              "| bound met |")
        print("|---|---|---|---|---|---|")
        for key in args.models.split(","):
            model = models[key]
            before = verify(model, TEST, work)
            after = tuned_accuracy(model, target, files, args.epochs, work)
            print(row(model.stem, target, float_accuracy(model), before, after), flush=True)


if __name__ == "__main__":
    main()
