"""CPU work sharing: blocks of bounded size, and NumPy work split over the cores.

NumPy releases the GIL while it computes, so a strided gather (an unfold, a transposing copy) or
a chain of elementwise ops, each bound by one core's memory accesses, runs on every core when its
output is cut into parts that threads fill (``threaded``); blocks of work that each end in a small
result are shared the same way (``threaded_map``). The results never depend on the split. The
block planners cut a convolution's output or a bank's tiles into pieces of about a budget of
values, so that memory stays bounded whatever the model and batch.

The physics (simulator, passes) is written as plain array operations; only the callers that
share their work import this module.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def row_blocks(samples: int, rows: int, per_row: int, budget: int) -> list[tuple[slice, slice]]:
    """(samples, output rows) slices that cover a convolution's output, a block of about
    ``budget`` values at a time (``per_row`` values per output row of one sample): whole samples
    when one sample fits, else output rows of one sample. Either way a block's outputs are
    contiguous in a sample-major, row-major layout."""
    if rows * per_row <= budget:
        step = (max(1, budget // max(rows * per_row, 1)), rows)
    else:
        step = (1, max(1, budget // max(per_row, 1)))
    return [(slice(i, i + step[0]), slice(r, r + step[1]))
            for i in range(0, samples, step[0]) for r in range(0, rows, step[1])]


def tile_row_blocks(tiles: np.ndarray, m: int, budget: int) -> list[tuple[slice, slice]]:
    """(tile rows, matrix rows) slices that cover a bank's tiles (G, R, Q, B, C) a block of whole
    tile rows at a time, about ``budget`` rings each (at least one tile row): tile rows r0..r1
    hold matrix rows r0 B .. min(r1 B, m), the last tile row's padding excluded."""
    banks = tiles.shape[3]
    per = max(1, budget // max(1, tiles[:, :1].size))
    return [(slice(r0, r0 + per), slice(r0 * banks, min((r0 + per) * banks, m)))
            for r0 in range(0, tiles.shape[1], per)]


def threaded(fn, out, source, axis: int | None = None) -> None:
    """``fn(out, source)``, a function that writes ``out`` from ``source`` position by position
    (``np.copyto``, or a chain of elementwise ops), split over ``THREADS`` threads along ``axis``
    (default: the first axis of ``out`` long enough to share) when ``out`` holds at least
    ``THREADED`` values. A strided gather (an unfold, a transposing copy) or an elementwise chain
    is bound by one core's memory accesses, and NumPy releases the GIL while it computes, so the
    cores share it; the result does not depend on the split. Operands that ``fn`` broadcasts must
    not vary along ``axis``."""
    parts = THREADS if out.size >= THREADED else 1
    if axis is None:
        axis = next((i for i, s in enumerate(out.shape) if s >= parts), None)
    elif out.shape[axis] < parts:
        axis = None
    if parts == 1 or axis is None or np.ndim(source) != out.ndim:
        fn(out, source)
        return
    bounds = [out.shape[axis] * i // parts for i in range(parts + 1)]
    cut = [(slice(None),) * axis + (slice(a, z),) for a, z in zip(bounds, bounds[1:])]
    jobs = [_pool().submit(fn, out[s], source[s]) for s in cut[1:]]
    fn(out[cut[0]], source[cut[0]])
    for job in jobs:
        job.result()


def threaded_map(fn, items) -> list:
    """``[fn(item) for item in items]``, the items shared by ``THREADS`` threads (this one
    included): for blocks of work that each end in a small result (a reduction), where NumPy
    releases the GIL for the work. ``fn`` must not use ``threaded`` (the threads it would wait for
    are busy with the items)."""
    items = list(items)
    if THREADS == 1 or len(items) < 2:
        return [fn(item) for item in items]
    jobs = {i: _pool().submit(fn, item) for i, item in enumerate(items) if i % THREADS}
    mine = {i: fn(item) for i, item in enumerate(items) if i % THREADS == 0}
    return [mine[i] if i in mine else jobs[i].result() for i in range(len(items))]


THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
THREADED = 1 << 18  # values: below this a copy is faster on one core than handed to others
_POOL = {}  # process id -> its pool: a forked child has none of its parent's threads, so it starts its own


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _POOL:
        _POOL.clear()
        _POOL[pid] = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="photoncc-copy")
    return _POOL[pid]
