"""photoncc finetune's speed: samples per second of a training step on the device model, forward and
backward apart, against the simulator's time for the same batch (issue 19, "Speed"; figures in
docs/performance.md).

Usage (from the repository root; nothing downloaded):

    python bench/finetune.py                     # the digits CNN and ResNet-18
    python bench/finetune.py --models cnn --steps 5

Models: the digits CNN of bench/finetune_accuracy.py (``cnn_graph``: 8x8 inputs, Conv 3x3 x16, MaxPool,
Gemm 256 -> 10) and bench/models.py's ResNet-18-class network (3x224x224, 11.7 M weights), on
``mrr-incoherent-8b``, calibrated on seeded samples. One step = the tape's forward through the
surrogate (each optical layer's device form: bank split, codes, crosstalk, a fresh draw of
programming errors; clip, DAC, product, read noise), the backward sweep, the optimiser's update;
the epoch's one-time compile of the current weights (``Surrogate.refresh``) is timed apart. The
simulator runs the same batch on the program compiled for the same profile (statistical noise
model, as simulate's default). Times are wall-clock medians of ``--steps`` steps after a first one.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from photoncc.compiler import compile_model  # noqa: E402
from photoncc.profile import load_profile  # noqa: E402
from photoncc.sim import Simulator  # noqa: E402
from photoncc.train import loss, model, tape  # noqa: E402
from photoncc.train.optim import Optimizer  # noqa: E402
from photoncc.train.surrogate import Surrogate  # noqa: E402

PROFILE = "mrr-incoherent-8b"
BATCH = {"cnn": 64, "resnet18": 16}


def build(name: str, work: Path):
    """(model path, calibration feeds, a batch) of ``name``."""
    if name == "cnn":
        from finetune_accuracy import cnn_graph
        path = cnn_graph(work / "digits_cnn.onnx")
        pixels = np.load(ROOT / "tests" / "data" / "digits_train.npz")["pixels"]
        return path, {"pixels": pixels[:64]}, {"pixels": pixels[64:64 + BATCH[name]]}
    import models
    path = work / f"{name}.onnx"
    onnx.save(models.build(name), str(path))
    key = models.data_input(onnx.load(str(path)))
    return path, {key: models.inputs(name, 8, 1)}, {key: models.inputs(name, BATCH[name], 2)}


def timed(fn, steps: int) -> tuple[float, object]:
    fn()
    times, out = [], None
    for _ in range(steps):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(name: str, steps: int, work: Path) -> dict:
    profile = load_profile(PROFILE)
    path, calibration, batch = build(name, work)
    t = model.prepare(path, profile)
    head = loss.head(t.graph)
    surrogate = Surrogate(t.graph, profile, calibration, np.random.default_rng(0))
    start = time.perf_counter()
    surrogate.refresh(t.params)
    refresh = time.perf_counter() - start
    custom, params = surrogate.custom(), dict(t.params)
    optimizer = Optimizer("adam", params, 1e-3)
    labels = np.zeros(len(next(iter(batch.values()))), np.int64)

    def forward():
        surrogate.step()
        return tape.forward(t.graph, batch, params, targets=[head.logits], custom=custom)
    forward_time, record = timed(forward, steps)
    _, grad = loss.cross_entropy(np.asarray(record.values[head.logits]), labels)
    backward_time, grads = timed(lambda: tape.gradients(record, {head.logits: grad}, params), steps)
    update_time, _ = timed(lambda: optimizer.step(params, grads), steps)
    program = compile_model(path, profile, calibration)
    simulator = Simulator(program, seed=0, noise_model="statistical")
    simulate_time, _ = timed(lambda: simulator.run(batch), steps)
    n = len(labels)
    return {"model": name, "batch": n, "refresh": refresh, "forward": n / forward_time,
            "backward": n / backward_time, "update": update_time, "step": n / (forward_time + backward_time + update_time),
            "simulate": n / simulate_time, "ratio": (forward_time + backward_time + update_time) / simulate_time}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,resnet18")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="finetune_speed_"))
    print(f"| model ({PROFILE}) | batch | forward (samples/s) | backward (samples/s) | update (s) | whole step "
          "(samples/s) | simulate, same batch (samples/s) | step / simulate | epoch compile (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        r = measure(name, args.steps, work)
        print(f"| {r['model']} | {r['batch']} | {r['forward']:.1f} | {r['backward']:.1f} | {r['update']:.3f} | "
              f"{r['step']:.1f} | {r['simulate']:.1f} | {r['ratio']:.2f} | {r['refresh']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
