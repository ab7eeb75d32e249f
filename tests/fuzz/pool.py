"""Cases in worker processes: a case that hangs in native code (no alarm stops it) or crashes
the interpreter becomes a ``crash`` outcome, and the campaign goes on with a new worker."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from .case import BORDERS
from .oracle import LIMIT_S, Outcome, Step
from .run import run_case
from .seeds import TESTS, seeds_for


def worker(border: str, first: int, count: int, workdir: str, timeout: float) -> None:
    """Run seeds first .. first+count-1 of ``border`` in this process; one JSON line per event on
    the original stdout: {"start": seed} before a case, {"outcome": ...} after it."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the protocol
    seeds_for(workdir)
    for seed in range(first, first + count):
        channel.write(json.dumps({"start": seed}) + "\n")
        channel.flush()
        outcome = run_case(border, seed, workdir, timeout=timeout)
        channel.write(json.dumps({"outcome": outcome.to_json()}, default=str) + "\n")
        channel.flush()


def crash_outcome(border: str, seed: int, why: str) -> Outcome:
    """The Outcome of a case whose worker process died (a signal, an exit) or stopped answering."""
    return Outcome(border, seed, [f"worker: {why}"], [Step(argv=["?"], escaped=f"WorkerCrash: {why}")])


def run_isolated(work: list, workdir, timeout: float = LIMIT_S, jobs: int = 1, on_outcome=None) -> list:
    """The Outcomes of ``work`` (a list of (border, range of seeds)), each range run by a worker
    process (``python -m fuzz BORDER FIRST COUNT WORKDIR TIMEOUT`` in tests/), ``jobs`` at a time.
    A worker that dies, or is silent for 2 x ``timeout`` + 30 s (a native loop no alarm stops),
    is killed; its case becomes a crash outcome and a new worker takes the rest of its range.
    ``on_outcome(outcome)`` is called as each case ends. Workers' stderr goes to
    ``workdir/workers.log``."""
    workdir = Path(workdir).resolve()  # the workers run in tests/ (see start)
    workdir.mkdir(parents=True, exist_ok=True)
    seeds_for(workdir)  # built once, before the workers read it
    log = open(workdir / "workers.log", "a")
    events, pending, running, outcomes = queue.Queue(), list(work), {}, []
    silence = 2 * timeout + 30

    def start(ident, border, seeds):
        # -m fuzz from tests/: the package is found first (bench/fuzz.py, a script of the same
        # name, is not on the path there)
        args = [sys.executable, "-m", "fuzz", border, str(seeds.start), str(len(seeds)), str(workdir), str(timeout)]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, cwd=str(TESTS))
        running[ident] = {"process": process, "border": border, "seeds": seeds, "current": None,
                          "last": time.monotonic()}
        threading.Thread(target=lambda: [events.put((ident, line)) for line in process.stdout] +
                         [events.put((ident, None))], daemon=True).start()

    def finish(outcome):
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    next_id = 0
    try:
        while pending or running:
            while pending and len(running) < jobs:
                border, seeds = pending.pop(0)
                if len(seeds):
                    start(next_id, border, seeds)
                    next_id += 1
            try:
                ident, line = events.get(timeout=1.0)
            except queue.Empty:
                ident = line = None
            now = time.monotonic()
            for state in running.values():
                if state["current"] is not None and now - state["last"] > silence:
                    state["process"].kill()
                    state["last"] = now
            if ident not in running:
                continue
            state = running[ident]
            state["last"] = now
            if line is None:  # the worker ended: done, crashed or killed
                code = state["process"].wait()
                del running[ident]
                if state["current"] is not None:
                    why = f"silent for {silence:.0f} s, killed" if code == -9 else f"exit status {code}"
                    finish(crash_outcome(state["border"], state["current"], why))
                    rest = range(state["current"] + 1, state["seeds"].stop)
                    pending.insert(0, (state["border"], rest))
                continue
            event = json.loads(line)
            if "start" in event:
                state["current"] = event["start"]
            else:
                outcome = Outcome.from_json(event["outcome"])
                state["current"] = None
                state["seeds"] = range(outcome.seed + 1, state["seeds"].stop)
                finish(outcome)
    finally:
        for state in running.values():
            state["process"].kill()
        log.close()
    return sorted(outcomes, key=lambda o: (BORDERS.index(o.border), o.seed))
