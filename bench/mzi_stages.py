"""Where a 64-port MZI compile's time goes, stage by stage, and how each stage shares the cores
(docs/performance.md, "MZI meshes: compile time").

    python bench/mzi_stages.py [--tiles 2855] [--ports 64]

Random tiles stand in for a model's (the stages' cost does not depend on the values): as many as
ResNet-18 has on 64-port meshes by default. Each stage runs on every tile in the compiler's chunks
(``devices.mzi.CHUNK_TILES``, the simulator's ``mzi_mesh.TILE_BLOCK`` for the mesh build), once on
one thread and once shared over ``cpu.THREADS`` threads (``cpu.threaded_map``, as the compiler
and simulator share them). Set ``OPENBLAS_NUM_THREADS=1`` to see the SVD without OpenBLAS's own
threads.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from photoncc import cpu
from photoncc.devices import clements, mzi, mzi_mesh

KIND = "clements"  # the layout of the benchmark's profiles


def stages(tiles: np.ndarray) -> dict:
    """Per stage, (a function of a slice of tiles, the tiles per chunk); every stage works on both
    meshes of a tile (U and V^T), as the compiler and the simulator do."""
    u, _, vt = np.linalg.svd(tiles)
    tau, d = clements.givens(np.stack([vt, u], axis=-3), KIND)                # (T, 2, Z), (T, 2, N)
    phases, screens, _ = clements.set_phases(tau, d, kind=KIND)
    return {
        "SVD": (lambda part: np.linalg.svd(tiles[part]), mzi.CHUNK_TILES),
        "Clements nulling": (lambda part: clements.givens(np.stack([vt[part], u[part]], axis=-3), KIND),
                             mzi.CHUNK_TILES),
        "phase setting": (lambda part: clements.set_phases(tau[part], d[part], kind=KIND), mzi.CHUNK_TILES),
        "mesh build": (lambda part: mzi_mesh.mesh_matrix(phases[part], screens[part], None, np.complex64, kind=KIND),
                       mzi_mesh.TILE_BLOCK),
    }


def run(fn, count: int, chunk: int, threads: int) -> float:
    parts = [slice(i, i + chunk) for i in range(0, count, chunk)]
    saved = cpu.THREADS
    cpu.THREADS = threads
    try:
        start = time.perf_counter()
        cpu.threaded_map(fn, parts)
        return time.perf_counter() - start
    finally:
        cpu.THREADS = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=2855)
    parser.add_argument("--ports", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    tiles = rng.standard_normal((args.tiles, args.ports, args.ports))
    print(f"{args.tiles} tiles of {args.ports} x {args.ports}, {cpu.THREADS} threads", flush=True)
    total = [0.0, 0.0]
    for name, (fn, chunk) in stages(tiles).items():
        one, shared = run(fn, args.tiles, chunk, 1), run(fn, args.tiles, chunk, cpu.THREADS)
        total[0] += one
        total[1] += shared
        print(f"{name:17s} one thread {one:6.2f} s   {cpu.THREADS} threads {shared:6.2f} s   {one / shared:4.2f}x", flush=True)
    print(f"{'all':17s} one thread {total[0]:6.2f} s   {cpu.THREADS} threads {total[1]:6.2f} s   {total[0] / total[1]:4.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
