"""Progress of long work, reported through a callback: ``progress(done, total)``.

A function that can run for long takes ``progress=None`` and, given a callback, calls it after each
of its steps with the steps done so far and their total, the last call with ``done == total``.
``done`` may be fractional: work over samples counts in samples, and a step part-way through a
batch reports the batch's share done (a batch of 16 samples half computed adds 8). The library
never prints; the command line draws the calls as a bar on a terminal (``cli.common.Progress``).

Work in named stages (compile) reports through ``progress(done, total, stage)``; ``stage`` gives
one stage's plain callback.
"""
from __future__ import annotations

from typing import Callable

Callback = Callable[[float, int], None]


def stage(progress: Callable | None, name: str) -> Callback | None:
    """The callback of stage ``name`` of a staged ``progress(done, total, stage)`` (None: none)."""
    return None if progress is None else lambda done, total: progress(done, total, name)


def within(progress: Callback | None, start: int, size: int, total: int) -> Callback | None:
    """The callback for the steps of one batch, samples [start, start + size) of ``total``: its
    ``(done, steps)`` report ``start + size * done / steps`` samples done (exactly start + size at
    the batch's last step)."""
    return None if progress is None else lambda done, steps: progress(start + size * done / steps, total)
