"""Per-read noisy simulation on 1 core and on 2: how the tile reads share the cores.

    python bench/threads.py [--model resnet18] [--samples 2] [--repeat 3] [--cores 0 0,1]

Compiles a bench model (``bench/models.py``, seed 0, calibrated on 8 samples of seed 1) for
``mrr-incoherent-8b``, then times the per-read noisy simulation of one batch on each core set
(``os.sched_setaffinity``: the process sees only those cores, so photoncc's thread pool and
OpenBLAS size themselves to them), alternating the sets run by run, two ways: in-process
(``bench/worker.py simulate ... per-read``: ``Simulator.run_batches`` alone, the program read and
the device loaded before the clock) and as a whole ``photoncc simulate --noise-model per-read``
process (reading, loading, the known-answer test, writing). Prints each set's times (min-max), the
median speed-up of every set over the first, and checks that every whole-process run wrote the
same outputs (the reads never depend on the number of threads).
Linux only (core affinity).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import models  # noqa: E402

PROFILE = "mrr-incoherent-8b"


def process(argv, cores=None) -> tuple[float, str]:
    """(seconds, stdout) of one process (on ``cores``, a set of core numbers)."""
    env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT="4")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *map(str, argv)], check=True, env=env, capture_output=True, text=True,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    return time.perf_counter() - start, done.stdout


def photoncc(*args, cores=None) -> float:
    return process(["-m", "photoncc", *args], cores)[0]


def in_process(program, batch, samples, cores) -> float:
    """``Simulator.run_batches`` of one batch, per read (bench/worker.py)."""
    _, out = process([ROOT / "bench" / "worker.py", "simulate", program, batch, samples, 1, 0, "per-read"], cores)
    return json.loads(out.strip().splitlines()[-1])["times"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18", choices=sorted(models.BUILDERS))
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", nargs="+", default=["0", "0,1"], help="core sets, e.g. 0 0,1 0-7")
    opts = parser.parse_args()
    sets = [{int(c) for part in s.split(",") for c in (range(int(part.split("-")[0]), int(part.split("-")[1]) + 1)
                                                       if "-" in part else [part])} for s in opts.cores]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = models.build(opts.model)
        onnx.save(model, work / "model.onnx")
        name = models.data_input(model)
        np.savez(work / "cal.npz", **{name: models.inputs(opts.model, 8, 1)})
        np.savez(work / "batch.npz", **{name: models.inputs(opts.model, opts.samples, 2)})
        photoncc("compile", work / "model.onnx", "-p", PROFILE, "--calibration", work / "cal.npz", "-o", work / "p.pcc")
        times, inner, digests = {i: [] for i in range(len(sets))}, {i: [] for i in range(len(sets))}, set()
        for run in range(opts.repeat):
            for i, cores in enumerate(sets):
                out = work / f"out{i}.npz"
                inner[i].append(in_process(work / "p.pcc", work / "batch.npz", opts.samples, cores))
                times[i].append(photoncc("simulate", work / "p.pcc", "--inputs", work / "batch.npz", "-o", out,
                                         "--noise-model", "per-read", "--batch-size", opts.samples, cores=cores))
                with np.load(out) as outputs:
                    digests.add(hashlib.sha256(b"".join(outputs[k].tobytes() for k in sorted(outputs.files))).hexdigest())
    print(f"{opts.model}, {opts.samples} sample(s), {PROFILE}, per-read simulate, {opts.repeat} run(s) per core set")
    for what, table in (("in-process run", inner), ("whole process", times)):
        base = float(np.median(table[0]))
        for i, spec in enumerate(opts.cores):
            t = table[i]
            print(f"  {what:>14}, cores {spec:>6}: {min(t):7.2f}-{max(t):7.2f} s, speed-up over cores {opts.cores[0]}: "
                  f"{base / float(np.median(t)):.2f}x")
    print(f"  outputs identical across core sets and runs: {len(digests) == 1}")


if __name__ == "__main__":
    main()
