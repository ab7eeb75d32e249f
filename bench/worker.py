"""One in-process measurement per process, run by ``bench/run.py`` (which reads the process's peak RSS).

    python bench/worker.py COMMAND ARGS...

prints one JSON line (the last line of stdout) with the timings in seconds (``times``: wall clock
of each timed run; ``cpu``: CPU seconds of all threads in each). ``--budget S`` before the command
stops repeating once the timed runs took S seconds, and uses a warm-up run longer than S as the
only timed run. Commands:

* ``compile MODEL CALIB.npz PROFILE OUT.pcc REPEAT``: ``photoncc.compiler.compile_model(MODEL,
  load_profile(PROFILE), calibration=feeds)``, REPEAT times; the profile and the calibration arrays
  are loaded before the clock starts. Writes the last program to OUT.pcc (not timed).
* ``simulate PROGRAM INPUTS.npz BATCH REPEAT WARMUP [NOISE_MODEL]``: ``Simulator(program,
  noise_model=NOISE_MODEL).run_batches(feeds, BATCH)`` (NOISE_MODEL: ``per-read``, the default, or
  ``statistical``); the program is read and the Simulator built before the clock starts (its build
  time is reported as ``setup``); WARMUP untimed runs, then REPEAT timed ones.
* ``ort MODEL INPUTS.npz BATCH REPEAT WARMUP``: ``InferenceSession(MODEL)`` (timed as ``setup``),
  WARMUP untimed runs, then REPEAT timed ``session.run`` over the samples in batches of BATCH.
* ``quantize MODEL CALIB.npz OUT.onnx REPEAT``: ``onnxruntime.quantization.quantize_static`` as
  ``ort_run.py quantize`` calls it, REPEAT times (imports before the clock).
* ``peak SIZE REPEAT``: GFLOP/s of ``np.matmul`` on SIZE x SIZE float32 and float64 matrices (best
  of REPEAT, one warm-up each): the machine's NumPy matmul peak.
* ``cprofile-compile MODEL CALIB.npz PROFILE TOP`` / ``cprofile-simulate PROGRAM INPUTS.npz BATCH TOP``:
  one run under cProfile; prints the TOP functions by cumulative time (to stdout, before the JSON).
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # before NumPy loads OpenBLAS, as the photoncc command sets it
import numpy as np  # noqa: E402


def _load(path: str) -> dict:
    with np.load(path) as archive:
        return {k: archive[k] for k in archive.files}


BUDGET = float("inf")  # seconds: stop repeating once the timed runs took this long (--budget)
CPU = []  # CPU seconds (every thread of the process) of the timed runs, in order


def _timed(fn, repeat: int, warmup: int = 0) -> list[float]:
    """Wall seconds of ``repeat`` runs after ``warmup`` untimed ones. A run longer than BUDGET stops
    the series: a warm-up that long becomes the only timed run (no second, slower pass)."""
    times = []
    for index in range(warmup + repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        elapsed = time.perf_counter() - start
        if index >= warmup or elapsed > BUDGET:
            times.append(elapsed)
            CPU.append(time.process_time() - cpu)
        if sum(times) > BUDGET or (index < warmup and elapsed > BUDGET):
            break
    return times


def compile_(model: str, calib: str, profile: str, out: str, repeat: str) -> dict:
    from photoncc.compiler import compile_model
    from photoncc.profile import load_profile

    prof, feeds = load_profile(profile), _load(calib)
    result = {}
    times = _timed(lambda: result.__setitem__("program", compile_model(model, prof, calibration=feeds)), int(repeat))
    result["program"].write(out)
    return {"times": times}


def simulate(program: str, inputs: str, batch: str, repeat: str, warmup: str, noise_model: str = "per-read") -> dict:
    from photoncc.program import Program
    from photoncc.sim import Simulator

    prog, feeds = Program.read(program), _load(inputs)
    start = time.perf_counter()
    sim = Simulator(prog, noise_model=noise_model)
    setup = time.perf_counter() - start
    times = _timed(lambda: sim.run_batches(feeds, int(batch)), int(repeat), int(warmup))
    return {"times": times, "setup": setup}


def ort(model: str, inputs: str, batch: str, repeat: str, warmup: str) -> dict:
    import onnxruntime

    feeds = _load(inputs)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    start = time.perf_counter()
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    setup = time.perf_counter() - start
    (name, x), = feeds.items()
    b = int(batch)

    def run():
        for s in range(0, len(x), b):
            session.run(None, {name: x[s:s + b]})
    times = _timed(run, int(repeat), int(warmup))
    return {"times": times, "setup": setup}


def quantize(model: str, calib: str, out: str, repeat: str) -> dict:
    import onnxruntime.quantization  # noqa: F401  (imported before the clock)
    import ort_run

    times = _timed(lambda: ort_run.quantize(model, calib, out), int(repeat))
    return {"times": times}


def peak(size: str, repeat: str) -> dict:
    n = int(size)
    result = {}
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        times = _timed(lambda: np.matmul(a, b), int(repeat), 1)
        result[dtype] = 2.0 * n ** 3 / min(times) / 1e9
    return result


def _cprofile(fn, top: int) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def cprofile_compile(model: str, calib: str, profile: str, top: str) -> dict:
    from photoncc.compiler import compile_model
    from photoncc.profile import load_profile

    prof, feeds = load_profile(profile), _load(calib)
    _cprofile(lambda: compile_model(model, prof, calibration=feeds), int(top))
    return {}


def cprofile_simulate(program: str, inputs: str, batch: str, top: str) -> dict:
    from photoncc.program import Program
    from photoncc.sim import Simulator

    sim, feeds = Simulator(Program.read(program)), _load(inputs)
    _cprofile(lambda: sim.run_batches(feeds, int(batch)), int(top))
    return {}


COMMANDS = {"compile": compile_, "simulate": simulate, "ort": ort, "quantize": quantize, "peak": peak,
            "cprofile-compile": cprofile_compile, "cprofile-simulate": cprofile_simulate}

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--budget":
        BUDGET = float(args[1])
        args = args[2:]
    command, *args = args
    result = COMMANDS[command](*args)
    if CPU:
        result["cpu"] = CPU
    print(json.dumps(result), flush=True)
