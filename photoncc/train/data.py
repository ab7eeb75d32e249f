"""Training data: read a chunk of samples at a time, as ``simulate`` reads its inputs
(``data.StreamedArray``), so that memory does not grow with the number of samples.

* Without ``--val``, every sample of ``--train`` is drawn into the held-out split with probability
  VAL_SHARE (seeded; at least one sample on each side); only a mask of one byte per sample is kept.
* An epoch reads the training file in order, CHUNK samples at a time, shuffles the training
  samples of each chunk (seeded) and cuts them into mini-batches: samples of different chunks never
  share a batch (a file holding fewer than CHUNK samples is shuffled whole).
* The calibration data (the compile's input ranges, the ADC ranges) are the first CALIBRATION
  samples of the training split, held in memory.
"""
from __future__ import annotations

import numpy as np

from ..data import load_npz, match_inputs
from ..errors import UserError

VAL_SHARE = 0.1
CHUNK = 4096
CALIBRATION = 256


class Samples:
    """The samples of an .npz file for the model's inputs (streamed), their labels (or None) and
    which of them this role uses (``rows``: sorted indices, or None for all)."""

    def __init__(self, path, specs: dict, rows=None):
        self.path = path
        self.feeds, self.labels = match_inputs(path, load_npz(path, headers_only=True), specs)
        self.total = len(next(iter(self.feeds.values())))
        self.rows = rows

    def subset(self, rows) -> "Samples":
        other = object.__new__(Samples)
        other.path, other.feeds, other.labels, other.total, other.rows = self.path, self.feeds, self.labels, self.total, rows
        return other

    def __len__(self) -> int:
        return self.total if self.rows is None else len(self.rows)

    def chunks(self, size: int | None = None):
        """(feeds, labels or None) of consecutive chunks of this role's samples, read in order."""
        size = size or CHUNK
        for start in range(0, self.total, size):
            stop = min(start + size, self.total)
            keep = None if self.rows is None else self.rows[(self.rows >= start) & (self.rows < stop)] - start
            if keep is not None and not len(keep):
                continue
            feeds = {k: v[start:stop] for k, v in self.feeds.items()}
            labels = None if self.labels is None else self.labels[start:stop]
            if keep is not None:
                feeds = {k: v[keep] for k, v in feeds.items()}
                labels = None if labels is None else labels[keep]
            yield feeds, labels

    def batches(self, size: int, rng: np.random.Generator | None = None):
        """Mini-batches (feeds, labels or None), shuffled within each chunk when ``rng`` is given."""
        for feeds, labels in self.chunks():
            order = rng.permutation(len(next(iter(feeds.values())))) if rng is not None else None
            count = len(next(iter(feeds.values())))
            for start in range(0, count, size):
                pick = order[start:start + size] if order is not None else slice(start, start + size)
                yield ({k: v[pick] for k, v in feeds.items()}, None if labels is None else labels[pick])

    def head(self, count: int) -> dict:
        """The first ``count`` samples of this role, in memory."""
        parts, have = {}, 0
        for feeds, _ in self.chunks():
            for k, v in feeds.items():
                parts.setdefault(k, []).append(v[:count - have])
            have += len(next(iter(feeds.values()))[:count - have])
            if have >= count:
                break
        return {k: np.concatenate(v) for k, v in parts.items()}


def split(train: Samples, seed: int) -> tuple[Samples, Samples]:
    """(training split, held-out split) of ``train``, VAL_SHARE of its samples held out (seeded)."""
    if train.total < 2:
        raise UserError(f"{train.path}: {train.total} sample(s): a held-out split needs 2 or more (or give --val)")
    held = np.random.default_rng([seed, 1]).random(train.total) < VAL_SHARE
    if not held.any():
        held[-1] = True
    if held.all():
        held[0] = False
    return train.subset(np.flatnonzero(~held)), train.subset(np.flatnonzero(held))


def check_labels(samples: Samples, classes: int) -> None:
    """Class ids must lie in [0, classes)."""
    if samples.labels is None:
        return
    labels = samples.labels
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise UserError(f"{samples.path}: label {int(bad[0])} is out of range: the model's output has {classes} "
                        f"classes (ids 0 to {classes - 1})")
