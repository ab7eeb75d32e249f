"""Output files: checked before any work starts, written whole or not at all.

* ``output_path`` refuses, before anything runs, a path whose folder is missing or not writable,
  that is a directory, that is one of the command's input files (``compile m.onnx -o m.onnx``
  would destroy the model) or that another output of the same command also names.
* ``write_files`` writes every output of a command through a temporary file in its folder and
  renames them only once all are written: an error leaves no output, complete or partial, and
  two commands writing one path at once leave one complete file. The files get the mode a plain
  ``open`` would give (0666 less the umask), not the temporary file's 0600.

A failure to write is the user's environment, not a bug: a UserError naming the path.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UserError


def output_path(path: Path, option: str, inputs: dict, taken: dict) -> Path:
    """``path`` given to ``option``, checked; ``inputs`` maps each input's option to its path (None
    when not given), ``taken`` the outputs already checked (option -> path), which this one joins."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{option} {path}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: folder {str(folder)!r} is not writable")
    for other, given in {**inputs, **taken}.items():
        if given is not None and same_file(path, Path(given)):
            what = "the input" if other in inputs else "the output"
            raise UserError(f"{option} {path}: is also {what} given to {other}; writing it would destroy "
                            "that file, choose another path")
    taken[option] = path
    return path


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (hard and symbolic links included)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop: not a file the other can be
        return False


def write_files(outputs: dict) -> None:
    """Write every ``path -> data`` of ``outputs`` (``data``: bytes, or a function writing to an open
    binary file), all or none: each to a temporary file beside it, then all renamed. Should a
    rename fail, the outputs renamed before it are removed (their earlier contents, if any, were
    already replaced)."""
    written, renamed = [], []
    try:
        for path, data in outputs.items():
            written.append((_write_temporary(Path(path), data), Path(path)))
        while written:
            tmp, path = written[0]
            try:
                os.replace(tmp, path)
            except OSError as e:
                e.filename = str(path)
                raise
            renamed.append(written.pop(0)[1])
    except OSError as e:
        for path in renamed:  # all or none: the outputs already in place go too
            path.unlink(missing_ok=True)
        failed = getattr(e, "filename", None) or "an output file"
        raise UserError(f"{failed}: cannot write: {e.strerror or e}") from e
    finally:
        for tmp, _ in written:  # those not renamed (an error)
            Path(tmp).unlink(missing_ok=True)


def write_atomic(path, data) -> None:
    """``write_files({path: data})``."""
    write_files({path: data})


def _write_temporary(path: Path, data) -> str:
    """``data`` in a new temporary file in ``path``'s folder, with the mode of a plain new file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        e.filename = str(path)
        raise
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            e.filename = str(path)
        raise
    return tmp


def _umask() -> int:
    """The process's umask (reading it means setting it: it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
