"""Process launcher for bench/run.py: starts each measured process from a small parent.

Linux carries a parent's resident set into a forked child's peak RSS (``dup_mm`` starts the child's
high-water mark at the parent's RSS, and ``execve`` keeps it in ``ru_maxrss``), so a child
started by the benchmark runner, which holds models of up to ~0.6 GB, would report at least the
runner's size. ``run.py`` therefore starts this script first, while it is still small (standard
library only), and sends it one JSON request per line:

    {"cmd": [...], "stdout": PATH, "stderr": PATH, "timeout": SECONDS or null}

For each it runs the command, waits for it with ``os.wait4`` (the rusage of that child alone) and
answers one JSON line: wall seconds, peak RSS (kB), user and system CPU seconds, exit code, and
whether it was killed at the timeout.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time


CURRENT = []  # the process being measured


def _terminated(signum, frame):
    """run.py was stopped: stop the measured process too, then exit."""
    for proc in CURRENT:
        proc.kill()
    sys.exit(128 + signum)


def run(request: dict) -> dict:
    with open(request["stdout"], "wb") as out, open(request["stderr"], "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(request["cmd"], stdout=out, stderr=err)
        CURRENT[:] = [proc]
        killed = []
        timer = None
        if request.get("timeout"):
            timer = threading.Timer(request["timeout"], lambda: (killed.append(1), proc.kill()))
            timer.daemon = True
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        finally:
            if timer:
                timer.cancel()
            CURRENT.clear()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "maxrss_kb": usage.ru_maxrss, "utime": usage.ru_utime, "stime": usage.ru_stime,
            "rc": proc.returncode, "killed": bool(killed)}


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)
    for line in sys.stdin:
        print(json.dumps(run(json.loads(line))), flush=True)
