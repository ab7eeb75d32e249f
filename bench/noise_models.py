"""The statistical noise model against the per-read model it stands in for, as a table.

    python bench/noise_models.py [--seeds N]

For the digits models of tests/data (and the digits CNN that bench/sweep.py builds), compiled for
every built-in noisy profile: the device's test accuracy under each model (mean over seeds 0..N-1
and its spread) and each optical layer's SQNR against onnxruntime's value of the same tensor (mean
over the seeds); the largest SQNR difference of a layer. tests/test_noise_models.py checks the
tests/data models against the thresholds (0.3 points, 0.5 dB); docs/accuracy.md holds the table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from photoncc.compiler import compile_model  # noqa: E402
from photoncc.data import load_npz  # noqa: E402
from photoncc.profile import builtin_names, load_profile  # noqa: E402
from photoncc.reference import run_onnxruntime  # noqa: E402
from photoncc.sim import Simulator  # noqa: E402
from photoncc.verify import comparable_layers  # noqa: E402

DATA = ROOT / "tests" / "data"


def sqnr(ref, dev) -> float:
    ref = ref.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / np.sum((dev - ref) ** 2)))


def measure(path: Path, profile: str, feeds, labels, seeds: int) -> dict:
    program = compile_model(str(path), load_profile(profile), str(DATA / "digits_calibration.npz"))
    layers = comparable_layers(program)
    reference, _ = run_onnxruntime(str(path), feeds, extra_outputs=layers)
    output = program.manifest["outputs"][0]["name"]
    result = {}
    for model in ("per-read", "statistical"):
        accuracy, per_layer, start = [], {layer: [] for layer in layers}, time.perf_counter()
        for seed in range(seeds):
            values = Simulator(program, seed=seed, noise_model=model).run_batches(feeds, keep=layers)
            accuracy.append(np.mean(values[output].argmax(axis=1) == labels))
            for layer in layers:
                per_layer[layer].append(sqnr(reference[layer], values[layer]))
        result[model] = (100 * np.mean(accuracy), 100 * np.std(accuracy),
                         {layer: np.mean(v) for layer, v in per_layer.items()}, time.perf_counter() - start)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    import sweep as sweep_bench  # bench/sweep.py: the digits CNN
    feeds = load_npz(DATA / "digits_test.npz")
    labels = feeds.pop("label")
    models = {"digits MLP": DATA / "digits_mlp.onnx", "digits Sigmoid MLP": DATA / "digits_sigmoid_mlp.onnx"}
    with tempfile.TemporaryDirectory() as folder:
        models["digits CNN (bench/sweep.py)"] = sweep_bench.digits_cnn(Path(folder) / "cnn.onnx")
        print(f"{args.seeds} seeds, {len(labels)} test samples; accuracy in %: mean (std over seeds)")
        print("| model | profile | per-read | statistical | difference | largest layer SQNR difference |")
        print("|---|---|---|---|---|---|")
        for name, path in models.items():
            for profile in (p for p in builtin_names() if load_profile(p).noisy):
                r = measure(path, profile, feeds, labels, args.seeds)
                (pa, ps, pl, _), (sa, ss, sl, _) = r["per-read"], r["statistical"]
                worst = max(sl, key=lambda layer: abs(sl[layer] - pl[layer]))
                print(f"| {name} | {profile} | {pa:.2f} ({ps:.2f}) | {sa:.2f} ({ss:.2f}) | {sa - pa:+.2f} | "
                      f"{sl[worst] - pl[worst]:+.2f} dB ({pl[worst]:.1f} dB per read) |")


if __name__ == "__main__":
    main()
