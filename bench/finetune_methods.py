"""The training methods of ``photoncc finetune`` on the digits MLP (issue 19's "Done when"; docs/accuracy.md).

Usage (from the repository root):

    python bench/finetune_methods.py [--epochs 60] [--keep DIR] [--show] [--only dfa,nonnegative,absorber]

Every figure is a ``photoncc`` command run as a user runs it (``--show`` prints them), with the
protocol of bench/finetune_accuracy.py: fine-tuned runs choose their epoch on one half of
digits_test.npz and are verified (5 seeded trials) on the other half, and the other way round.

* dfa: DFA from the model's weights on harsh-4b (before / after); DFA and backprop from scratch
  (the digits MLP's graph with seeded He-normal weights and zero biases, ``scratch_mlp``), on the
  ideal profile and on harsh-4b, both at --lr 0.003, against each other;
* nonnegative: nnsgd and csgd against adam (backprop) fine-tuning on harsh-4b;
* absorber: the digits MLP's Relus replaced by saturable absorbers (OD 10), fine-tuned on an ideal
  profile whose activation is the absorber (pump-probe gradient) and on the ideal profile (the
  absorber electronic: exact gradient); float accuracy of each, and ``photoncc verify`` of the
  pump-probe model on the absorber profile (its absorbers optical).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import finetune_accuracy as fa  # noqa: E402  (the protocol and helpers, beside this file)

MLP = fa.DATA / "digits_mlp.onnx"


def scratch_mlp(path: Path, seed: int = 0) -> Path:
    """The digits MLP's graph with its Gemm weights drawn anew (He-normal, seeded), biases 0."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(MLP))
    rng = np.random.default_rng(seed)
    for t in model.graph.initializer:
        if t.name.startswith("net."):
            a = numpy_helper.to_array(t)
            new = rng.normal(0, np.sqrt(2 / a.shape[1]), a.shape) if a.ndim == 2 else np.zeros(a.shape)
            t.CopyFrom(numpy_helper.from_array(new.astype(a.dtype), t.name))
    onnx.save(model, str(path))
    return path


def cross(model: Path, files: dict, work: Path, epochs: int, tag: str, *extra, profile=fa.PROFILE) -> list[float]:
    """Per seed, the device accuracy on the 600 test samples of two runs cross-selected on the halves
    (fine-tuned and verified on ``profile``)."""
    per_half = []
    for val, test in (("A", "B"), ("B", "A")):
        tuned = work / f"{model.stem}_{tag}_{val}.onnx"
        fa.photoncc("finetune", model, "--train", fa.TRAIN, "--val", files[val], "-p", profile, "--calibration",
                    fa.CAL, "--epochs", epochs, *extra, "-o", tuned)
        per_half.append(fa.verify(tuned, files[test], work, profile))
    return [(a + b) / 2 for a, b in zip(*per_half)]


def line(what: str, per_seed: list) -> str:
    return (f"| {what} | {100 * np.mean(per_seed):.2f} % | " + " / ".join(f"{100 * v:.2f}" for v in per_seed)
            + f" | {100 * min(per_seed):.2f} % |")


def dfa(files, work, epochs) -> None:
    print("\n| DFA, digits MLP, harsh-4b | device accuracy (mean of 5 seeds) | per seed | worst seed |\n|---|---|---|---|")
    print(line("before (the model as given)", fa.verify(MLP, fa.TEST, work)))
    print(line("DFA from its weights", cross(MLP, files, work, epochs, "dfa", "--method", "dfa")), flush=True)
    scratch = scratch_mlp(work / "scratch_mlp.onnx")
    for profile in ("ideal", fa.PROFILE):
        for method in ("backprop", "dfa"):
            print(line(f"{method} from scratch on {profile} (--lr 0.003)",
                       cross(scratch, files, work, epochs, f"scratch_{method}_{profile}", "--method", method, "--lr",
                             "0.003", profile=profile)), flush=True)


def nonnegative(files, work, epochs) -> None:
    print("\n| optimiser, digits MLP, harsh-4b | device accuracy (mean of 5 seeds) | per seed | worst seed |\n"
          "|---|---|---|---|")
    for optimizer in ("adam", "nnsgd", "csgd"):
        print(line(optimizer, cross(MLP, files, work, epochs, optimizer, "--optimizer", optimizer)), flush=True)


def absorber(files, work, epochs) -> None:
    profile = work / "ideal-sa.yaml"
    profile.write_text("photoncc_profile: 1\nname: ideal-sa\nextends: ideal\n"
                       "activation: {kind: saturable_absorber, OD: 10.0}\n")
    print("\n| saturable absorber (OD 10), digits MLP | gradient | float accuracy on digits_test |\n|---|---|---|")
    tuned = {}
    for name, spec, gradient in (("ideal-sa", profile, "pump-probe T(z)"), ("ideal", "ideal", "exact g'(z)")):
        accuracy = []
        for val, test in (("A", "B"), ("B", "A")):
            tuned[name, val] = work / f"sa_{name}_{val}.onnx"
            fa.photoncc("finetune", MLP, "--train", fa.TRAIN, "--val", files[val], "-p", spec, "--calibration", fa.CAL,
                        "--activation", "saturable_absorber", "--epochs", epochs, "-o", tuned[name, val])
            accuracy.append(_float_accuracy(tuned[name, val], files[test]))
        print(f"| fine-tuned on {name} | {gradient} | {100 * np.mean(accuracy):.2f} % |", flush=True)
    report = work / "sa_verify.json"
    fa.photoncc("verify", tuned["ideal-sa", "A"], "-p", profile, "--inputs", files["B"], "--json", report)
    print("\n`photoncc verify` of the pump-probe model on ideal-sa (its absorbers optical): passed (exit 0)")


def _float_accuracy(model: Path, test: Path) -> float:
    import onnxruntime as ort
    data = np.load(test)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return float((session.run(None, {"pixels": data["pixels"]})[0].argmax(1) == data["label"]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=fa.EPOCHS)
    parser.add_argument("--only", default="dfa,nonnegative,absorber")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()
    fa.SHOW = args.show
    work = args.keep or Path(tempfile.mkdtemp(prefix="finetune_methods_"))
    work.mkdir(parents=True, exist_ok=True)
    files = fa.halves(work)
    for part in args.only.split(","):
        {"dfa": dfa, "nonnegative": nonnegative, "absorber": absorber}[part](files, work, args.epochs)


if __name__ == "__main__":
    main()
