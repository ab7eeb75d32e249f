"""Compile time of a ResNet-18-class network (bench/models.py, 224x224) for a 64-port MZI profile
against ``mrr-incoherent-8b`` (docs/performance.md), in one process, same machine.

    python bench/mzi_compile.py [--repeat 2]

The MZI profiles: ``mzi-dat`` (64 ports, float phases, no ADC), ``mzi-8b`` with 64-port meshes
(10-bit phases, 8-bit DAC and ADC: the ADC ranges are calibrated through every tile's mesh) and
``mzi-dat`` on Reck meshes (``mesh.layout: reck``: the same MZIs in 2N - 3 columns).
Each compile is the library's ``compile_model`` on two calibration images, known-answer test
included; the best of ``--repeat`` runs is reported.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import models  # noqa: E402  (bench/models.py)
from photoncc.compiler import compile_model  # noqa: E402
from photoncc.importer import import_model  # noqa: E402
from photoncc.profile import load_profile, validated  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import onnx
    import tempfile
    folder = Path(tempfile.mkdtemp())
    path = folder / "resnet18.onnx"
    onnx.save(models.build("resnet18"), path)
    feeds = {"input": models.inputs("resnet18", 2, seed=1)}
    mzi64 = copy.deepcopy(dict(load_profile("mzi-8b")))
    mzi64["mesh"]["ports"], mzi64["name"] = 64, "mzi-8b (64 ports)"
    reck = copy.deepcopy(dict(load_profile("mzi-dat")))
    reck["mesh"]["layout"], reck["name"] = "reck", "mzi-dat (reck)"
    profiles = {"mrr-incoherent-8b": load_profile("mrr-incoherent-8b"), "mzi-dat": load_profile("mzi-dat"),
                "mzi-8b (64 ports)": validated(mzi64, "mzi-8b with 64 ports"),
                "mzi-dat (reck)": validated(reck, "mzi-dat with Reck meshes")}
    times = {}
    for name, profile in profiles.items():
        best = None
        for _ in range(args.repeat):
            graph = import_model(path)
            start = time.perf_counter()
            program = compile_model(graph, profile, feeds)
            elapsed = time.perf_counter() - start
            best = elapsed if best is None else min(best, elapsed)
        times[name] = best
        print(f"{name:22s} compile {best:6.1f} s, {program.manifest['report']['tiles']} tiles", flush=True)
    for name in profiles:
        if name != "mrr-incoherent-8b":
            print(f"{name}: {times[name] / times['mrr-incoherent-8b']:.2f}x mrr-incoherent-8b")
    return 0


if __name__ == "__main__":
    sys.exit(main())
