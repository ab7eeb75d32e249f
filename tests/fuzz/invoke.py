"""Running one command line in-process, under limits, and recording what it did (a ``Step``).

The command runs in this process (``photoncc.cli.main``), not in a subprocess, so that a
campaign's thousands of commands do not each pay for importing photoncc; the worker processes of
``pool`` keep a hang or a crash from stopping the campaign.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import resource
import signal
import time
import traceback
import warnings
from pathlib import Path

from photoncc.cli import main

from .oracle import GUARD_BYTES, LIMIT_S, Step


class CaseTimeout(BaseException):
    """Raised in the main thread when a command runs past its time limit (not an Exception, so
    photoncc's ``except Exception`` cannot mistake it for its own error)."""


def _status(key: str) -> int:
    """A field of /proc/self/status in kB (0 where there is no /proc)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{key}:\s+(\d+)", text, re.M)
    return int(found.group(1)) if found else 0


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def bounded(seconds: float, guard_bytes: int = GUARD_BYTES):
    """Run the block under a wall-clock alarm (CaseTimeout) and an address-space limit of the
    current size plus ``guard_bytes`` (allocations beyond it raise MemoryError, instead of the
    machine swapping or the OOM killer ending the campaign)."""
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    size = _status("VmSize") * 1024
    if size:
        soft = size + guard_bytes
        if old_limit[1] != resource.RLIM_INFINITY:
            soft = min(soft, old_limit[1])
        resource.setrlimit(resource.RLIMIT_AS, (soft, old_limit[1]))

    def alarm(signum, frame):
        raise CaseTimeout(f"still running after {seconds:g} s")
    in_main = hasattr(signal, "setitimer") and threading_is_main()
    if in_main:
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if in_main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def threading_is_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _tree(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones included) -> a digest of its bytes (a link: its target)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                found[rel] = "link:" + os.readlink(path)
                continue
            try:
                found[rel] = hashlib.sha1(Path(path).read_bytes()).hexdigest()
            except OSError as e:
                found[rel] = f"unreadable:{e.errno}"
    return found


def invoke(argv: list, folder: Path, timeout: float = LIMIT_S, allowed=(), reports=()) -> Step:
    """Run ``photoncc argv`` in-process under ``bounded``; record its exit code, output, time, peak
    memory, and the files it created or changed in ``folder``."""
    step = Step(argv=[str(a) for a in argv], allowed=[os.path.relpath(p, folder) for p in allowed],
                reports=[os.path.relpath(p, folder) for p in reports])
    before = _tree(folder)
    out, err = io.StringIO(), io.StringIO()
    exact_peak = _reset_peak()
    start_rss = _status("VmRSS") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), bounded(timeout):
                step.code = main(list(step.argv))
        except CaseTimeout as e:
            step.escaped = f"CaseTimeout: {e}"
        except BaseException as e:  # noqa: BLE001 - anything escaping main() is the finding
            step.escaped = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    step.seconds = time.perf_counter() - start
    peak = _status("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step.peak_mb = max(0.0, (peak - start_rss) / 1024)
    step.stdout, step.stderr, step.stderr_chars = out.getvalue()[:20000], err.getvalue()[:20000], len(err.getvalue())
    step.warnings = sorted({f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught})[:8]
    after = _tree(folder)
    step.created = sorted(set(after) - set(before))
    step.modified = sorted(k for k in before if k in after and after[k] != before[k])
    return step


def debug_rerun(step: Step, folder: Path, timeout: float) -> None:
    """Run the step again with ``--debug`` to keep the traceback of an internal error; the files
    that rerun makes are removed."""
    before = set(_tree(folder))
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(), bounded(timeout):
            warnings.simplefilter("ignore")
            main(list(step.argv) + ["--debug"])
    except BaseException as e:  # noqa: BLE001
        err.write("".join(traceback.format_exception(type(e), e, e.__traceback__)))
    step.debug = err.getvalue()[-12000:]
    for rel in set(_tree(folder)) - before:
        with contextlib.suppress(OSError):
            (folder / rel).unlink()
