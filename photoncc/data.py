"""Input data files (``.npz``): one array per model input keyed by its name, batch on axis 0.

A model with a single input also accepts a file holding one data array under any key. An optional
integer array ``label`` holds one class id per sample. Files are read with ``allow_pickle=False``:
an array of Python objects is refused, never unpickled. Every problem is one UserError line naming
the file and the array.
"""
from __future__ import annotations

import os
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import UserError, quoted
from .progress import within

LABEL = "label"


def load_npz(path: str | Path, headers_only: bool = False) -> dict:
    """The arrays of an .npz file by key; with ``headers_only`` StreamedArray views of them.

    Every member's .npy header is read and checked against the member's size before any array
    is read, so that a header declaring more data than the file holds (a corrupted or hostile
    file) is refused without allocating it."""
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
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
        keys = [_key(path, info.filename) for info in members]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise UserError(f"{path}: array {twice[0]!r} is stored twice in the archive")
        arrays = {key: StreamedArray(path, info.filename) for key, info in zip(keys, members)}
        if not headers_only:
            limit = _memory_bytes()
            for key, array in arrays.items():
                if array.nbytes > limit:
                    raise UserError(f"{path}: array {key!r} of shape {list(array.shape)} needs "
                                    f"{array.nbytes / 2**30:.1f} GiB, more than this machine's memory")
            for array in arrays.values():
                array.close()
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in arrays}
    except UserError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError,
            NotImplementedError, RuntimeError, SyntaxError, tokenize.TokenError) as e:
        # zipfile's and np.load's ways of saying "corrupted" (a .npy header is parsed as Python text)
        raise UserError(f"{path}: not a readable .npz file ({quoted(e, 200)})") from e
    if not arrays:
        raise UserError(f"{path}: holds no arrays")
    return arrays


def _key(path, member: str) -> str:
    if not member.endswith(".npy"):
        raise UserError(f"{path}: member {member!r} is not a NumPy array (.npy); write the file with np.savez")
    return member[:-4]


def _memory_bytes() -> int:
    """This machine's physical memory (no limit where it cannot be told)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 1 << 62


class StreamedArray:
    """One array of an .npz file, read a batch of rows at a time: memory does not grow with the
    number of samples. Has ``shape``, ``dtype``, ``ndim``, ``nbytes``, ``len()`` and
    ``[start:stop]`` (rows, as an ndarray of ``cast`` or the stored dtype); reads are cheapest in
    increasing order. The header is checked when it is opened: an object dtype (pickled data) or
    a shape that declares another size than the member holds is a UserError."""

    def __init__(self, path, member: str, cast=None):
        self.path, self.member, self.cast = str(path), member, cast
        self._archive = zipfile.ZipFile(self.path)
        self._open()
        self.shape, self.fortran, self.dtype = self._header
        self.ndim = len(self.shape)
        self.nbytes = int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        key = member[:-4]
        if self.dtype.hasobject:
            raise UserError(f"{path}: array {key!r} holds Python objects (pickled data); "
                            "photoncc never unpickles: save plain numeric arrays")
        stored = self._archive.getinfo(member).file_size - self._data_start
        if stored != self.nbytes:
            raise UserError(f"{path}: array {key!r} is truncated or corrupted: its header declares shape "
                            f"{list(self.shape)} ({self.nbytes} bytes), the file holds {stored} bytes")

    def _open(self):
        self._file = self._archive.open(self.member)
        version = np.lib.format.read_magic(self._file)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
                   (3, 0): getattr(np.lib.format, "_read_array_header", None)}
        if readers.get(version) is None:
            raise ValueError(f"member {self.member!r}: unsupported .npy version {version}")
        self._header = (readers[version](self._file) if version != (3, 0)
                        else readers[version](self._file, version))
        self._data_start = self._file.tell()
        self._row = 0

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def close(self) -> None:
        self._archive.close()

    def astype(self, cast) -> "StreamedArray":
        return StreamedArray(self.path, self.member, np.dtype(cast))

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(len(self))
        if self.fortran or start < self._row:  # Fortran order or going back: start the member again
            if self.fortran:
                data = np.load(self.path, allow_pickle=False)[self.member[:-4]][start:stop]
                return _checked(self.path, self.member[:-4], data, self.cast or data.dtype, start)
            self._open()
        count = max(stop - start, 0)
        try:
            if start > self._row:
                self._file.read((start - self._row) * self.row_bytes)
            raw = bytearray(self._file.read(count * self.row_bytes))  # a copy of its own, writable
            data = np.frombuffer(raw, self.dtype).reshape((count,) + self.shape[1:])
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, SyntaxError, tokenize.TokenError) as e:
            raise UserError(f"{self.path}: array {self.member[:-4]!r} cannot be read at sample {start}: "
                            f"the file is corrupted ({quoted(e, 200)})") from e
        self._row = stop
        return _checked(self.path, self.member[:-4], data, self.cast or self.dtype, start)


def match_inputs(path, arrays: dict, specs: dict[str, tuple[tuple[int, ...], str]]):
    """Pick and check the model inputs from ``arrays``.

    ``specs`` maps input name -> (per-sample shape, dtype name). Returns (feeds, labels or None).
    One rule for dtypes (``convertible``): an array is converted to its input's dtype when every
    value it can hold keeps its meaning there (floats of any precision, integers and booleans feed
    a float input; integers and booleans whose values fit feed an integer input); anything else is
    refused. Every value must be finite (a modulator cannot emit NaN); streamed arrays are checked
    batch by batch as they are read. Raises UserError naming the file and the array for a
    missing, extra or misshapen array.
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
        if not convertible(a.dtype, want):
            raise UserError(f"{path}: array {name!r} has dtype {a.dtype}, which cannot feed the model's {want} "
                            f"input (convert it with .astype(np.{want}))")
        if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != tuple(shape):
            raise UserError(f"{path}: array {name!r} has shape {list(a.shape)}, expected "
                            f"[N, {', '.join(str(d) for d in shape)}] (batch first)")
        if count is not None and a.shape[0] != count:
            raise UserError(f"{path}: array {name!r} has {a.shape[0]} samples, others have {count}")
        count = a.shape[0]
        if count == 0:
            raise UserError(f"{path}: array {name!r} holds no samples")
        feeds[name] = a.astype(want) if isinstance(a, StreamedArray) else _checked(path, name, a, want)
    if labels is not None:
        if labels.dtype.kind not in ("i", "u") or labels.ndim != 1 or len(labels) != count:
            raise UserError(f"{path}: array 'label' must be {count} integer class ids, got dtype "
                            f"{labels.dtype} shape {list(labels.shape)}")
        labels = (labels[:len(labels)] if isinstance(labels, StreamedArray) else labels).astype(np.int64)
    return feeds, labels


def convertible(have: np.dtype, want: np.dtype) -> bool:
    """Whether data of dtype ``have`` may feed an input of dtype ``want`` (``match_inputs``'s rule):
    real numbers (float, int, bool) into a float input; integers and booleans into an integer or
    boolean one. Complex numbers, strings, structured records and objects never."""
    if have.kind not in "fiub" or have.fields is not None:
        return False
    return want.kind == "f" or have.kind in "iub"


def _checked(path, name: str, data: np.ndarray, want: np.dtype, start: int = 0) -> np.ndarray:
    """``data`` (rows ``start``.. of array ``name``) converted to ``want``, contiguous, after checking
    that every value is finite and, for an integer input, fits ``want``."""
    want = np.dtype(want)
    if data.dtype.kind == "f" and data.size and not np.isfinite(data).all():
        index = np.unravel_index(int(np.argmin(np.isfinite(data).reshape(-1))), data.shape)
        value = data[index]
        raise UserError(f"{path}: array {name!r} holds {value} at sample {start + int(index[0])}: "
                        "device inputs must be finite numbers")
    if want.kind in "iub" and data.size:
        low, high = data.min(), data.max()
        lowest, highest = (0, 1) if want.kind == "b" else (np.iinfo(want).min, np.iinfo(want).max)
        if low < lowest or high > highest:
            raise UserError(f"{path}: array {name!r} holds {low if low < lowest else high}, "
                            f"outside the model's {want} input")
    return np.ascontiguousarray(data, want)


def fixed_batches(feeds: dict, size: int):
    """Yield (batch, count) for a model exported with a fixed batch of ``size`` samples (its
    reshapes are written for that batch): consecutive batches of exactly ``size`` samples, the
    last one filled up with copies of its last sample; ``count`` is how many of the batch's
    samples are real (the caller drops the rest of its results)."""
    total = len(next(iter(feeds.values())))
    for start in range(0, total, size):
        batch = {k: np.asarray(v[start:start + size]) for k, v in feeds.items()}
        count = len(next(iter(batch.values())))
        if count < size:
            batch = {k: np.concatenate([v, np.repeat(v[-1:], size - count, axis=0)]) for k, v in batch.items()}
        yield batch, count


def batches(feeds: dict, size: int, progress=None):
    """Yield (batch, step) for consecutive slices of at most ``size`` samples: ``batch`` the dict
    of slices, ``step`` the callback its work reports through, in samples of all of ``feeds``
    (``progress.within``; None without ``progress``)."""
    count = len(next(iter(feeds.values())))
    for start in range(0, count, size):
        batch = {k: v[start:start + size] for k, v in feeds.items()}
        yield batch, within(progress, start, min(size, count - start), count)
