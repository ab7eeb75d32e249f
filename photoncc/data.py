"""Input data files (``.npz``): one array per model input keyed by its name, batch on axis 0.

A model with a single input also accepts a file holding one data array under any key. An optional
integer array ``label`` holds one class id per sample. Files are read with ``allow_pickle=False``:
an array of Python objects is refused, never unpickled. Every problem is one UserError line naming
the file and the array.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError
from .progress import within

LABEL = "label"


def load_npz(path: str | Path, headers_only: bool = False) -> dict:
    """The arrays of an .npz file by key; with ``headers_only`` StreamedArray views of them."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from e
    if magic.startswith(b"\x93NUMPY"):
        raise UserError(f"{path}: a single .npy array, expected an .npz file (np.savez)")
    if not magic.startswith(b"PK"):
        raise UserError(f"{path}: not an .npz file (expected a NumPy archive written by np.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {}
            for key in archive.files:
                try:
                    if headers_only:
                        arrays[key] = StreamedArray(path, f"{key}.npy")
                        if arrays[key].dtype.hasobject:
                            raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
                        continue
                    arrays[key] = archive[key]
                except ValueError as e:
                    if "pickle" in str(e):
                        raise UserError(f"{path}: array {key!r} holds Python objects (pickled data); "
                                        "photoncc never unpickles: save plain numeric arrays") from e
                    raise UserError(f"{path}: array {key!r} cannot be read: {e}") from e
    except UserError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npz file ({e})") from e
    if not arrays:
        raise UserError(f"{path}: holds no arrays")
    return arrays


class StreamedArray:
    """One array of an .npz file, read a batch of rows at a time: memory does not grow with the
    number of samples. Has ``shape``, ``dtype``, ``ndim``, ``len()`` and ``[start:stop]`` (rows,
    as an ndarray of ``cast`` or the stored dtype); reads are cheapest in increasing order."""

    def __init__(self, path, member: str, cast=None):
        self.path, self.member, self.cast = str(path), member, cast
        self._archive = zipfile.ZipFile(self.path)
        self._open()
        self.shape, self.fortran, self.dtype = self._header
        self.ndim = len(self.shape)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def _open(self):
        self._file = self._archive.open(self.member)
        version = np.lib.format.read_magic(self._file)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        self._header = reader(self._file)
        self._row = 0

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def astype(self, cast) -> "StreamedArray":
        return StreamedArray(self.path, self.member, np.dtype(cast))

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(len(self))
        if self.fortran or start < self._row:  # Fortran order or going back: start the member again
            if self.fortran:
                data = np.load(self.path, allow_pickle=False)[self.member[:-4]][start:stop]
                return np.ascontiguousarray(data, self.cast or data.dtype)
            self._open()
        if start > self._row:
            self._file.read((start - self._row) * self.row_bytes)
        count = max(stop - start, 0)
        data = np.frombuffer(self._file.read(count * self.row_bytes), self.dtype).reshape((count,) + self.shape[1:])
        self._row = stop
        return data.astype(self.cast or self.dtype)


def match_inputs(path, arrays: dict, specs: dict[str, tuple[tuple[int, ...], str]]):
    """Pick and check the model inputs from ``arrays``.

    ``specs`` maps input name -> (per-sample shape, dtype name). Returns (feeds, labels or None),
    feeds cast to the model's dtypes when only the precision differs (float64 data for a float32
    input). Raises UserError naming the file and the array for a missing, extra or misshapen array.
    """
    arrays = dict(arrays)
    labels = arrays.pop(LABEL, None)
    if len(specs) == 1 and len(arrays) == 1 and next(iter(specs)) not in arrays:
        arrays = {next(iter(specs)): next(iter(arrays.values()))}
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise UserError(f"{path}: no array for model input {missing[0]!r} (the file has "
                        f"{sorted(arrays) or 'no data arrays'}; key each array by its input's name)")
    extra = sorted(set(arrays) - set(specs))
    if extra:
        raise UserError(f"{path}: array {extra[0]!r} matches no model input (inputs: {sorted(specs)})")
    feeds, count = {}, None
    for name, (shape, dtype) in specs.items():
        a = arrays[name]
        want = np.dtype(dtype)
        if a.dtype.kind not in ("f", "i", "u", "b") or (want.kind == "f") != (a.dtype.kind == "f"):
            raise UserError(f"{path}: array {name!r} has dtype {a.dtype}, expected {want} "
                            f"(convert it with .astype(np.{want}))")
        if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != tuple(shape):
            raise UserError(f"{path}: array {name!r} has shape {list(a.shape)}, expected "
                            f"[N, {', '.join(str(d) for d in shape)}] (batch first)")
        if count is not None and a.shape[0] != count:
            raise UserError(f"{path}: array {name!r} has {a.shape[0]} samples, others have {count}")
        count = a.shape[0]
        if count == 0:
            raise UserError(f"{path}: array {name!r} holds no samples")
        feeds[name] = a.astype(want) if isinstance(a, StreamedArray) else np.ascontiguousarray(a, want)
    if labels is not None:
        labels = labels[:len(labels)] if isinstance(labels, StreamedArray) else labels
        if labels.dtype.kind not in ("i", "u") or labels.ndim != 1 or len(labels) != count:
            raise UserError(f"{path}: array 'label' must be {count} integer class ids, got dtype "
                            f"{labels.dtype} shape {list(labels.shape)}")
        labels = labels.astype(np.int64)
    return feeds, labels


def batches(feeds: dict, size: int, progress=None):
    """Yield (batch, step) for consecutive slices of at most ``size`` samples: ``batch`` the dict
    of slices, ``step`` the callback its work reports through, in samples of all of ``feeds``
    (``progress.within``; None without ``progress``)."""
    count = len(next(iter(feeds.values())))
    for start in range(0, count, size):
        batch = {k: v[start:start + size] for k, v in feeds.items()}
        yield batch, within(progress, start, min(size, count - start), count)
