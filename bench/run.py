"""photoncc benchmark: compile and simulate time, throughput and memory, against onnxruntime.

Usage (from the repository root, with photoncc installed; plain Python, no extra packages):

    python bench/run.py                       # the full set (about half an hour on 2 cores, see below)
    python bench/run.py --quick               # smoke run: MLP and CNN only (a few minutes)
    python bench/run.py --only resnet18       # one model (repeat --only for more)
    python bench/run.py --repeat 5            # every time is the median of up to 5 runs
    python bench/run.py --only resnet18 --cprofile   # where compile and simulate spend their time

Options: ``--repeat N`` runs per measurement, the median is reported (default 3); ``--warmup N``
untimed in-process runs before the timed ones (default 1); ``--budget S`` stop repeating a
measurement once its runs took S seconds (default 120; a warm-up longer than S is used as the only
timed run, so slow measurements run once); ``--timeout S`` kill a process after S seconds and report
``>S`` (default 900); ``--noisy-profile NAME`` (default: the built-in profile whose description
says "realistic noise", on the ``ideal`` profile's architecture); ``--memory-samples N`` (default
10000); ``--workdir DIR`` / ``--keep`` (keep models, inputs and programs; default: a temporary
folder, removed); ``--json FILE`` (every raw number).

Models (``bench/models.py``, built from seed 0, nothing downloaded): ``mlp`` 784-512-512-10,
``cnn`` 2 conv + 2 fc on 1x28x28, ``resnet18`` a ResNet-18-class network at 3x224x224 with a
dynamic batch axis, ``resnet50`` and ``vgg19`` the onnx wheel's ``light`` architectures with seeded
random weights. Batch 256 for mlp and cnn, 16 for the 224x224 models. Calibration: 8 samples (seed
1); the timed batch: one batch (seed 2). ``--quick`` runs mlp and cnn with 2560 memory samples.

Before the first measurement photoncc's modules are compiled to bytecode (``compileall``), as
``pip install`` compiles an installed package: from a checkout run under PYTHONDONTWRITEBYTECODE,
every photoncc process would otherwise compile them from source, which onnxruntime's never do.

Every measurement runs in its own process. Its peak RSS is that process's ``ru_maxrss``, read
with ``os.wait4`` on that child alone; wall times are ``time.perf_counter`` in the parent (whole
process) or in ``bench/worker.py`` (in-process); CPU seconds (all threads) are kept in ``--json``.

* compile (in-process): ``photoncc.compiler.compile_model(path, load_profile(name),
  calibration=feeds)`` with the 8 calibration samples (profile and arrays loaded before the clock);
* simulate (in-process): ``Simulator(program).run_batches(feeds, batch)`` on one batch, the
  program read and the Simulator built before the clock; on ``ideal`` and on the noisy profile
  when ``photoncc profiles`` lists one (otherwise the column says ``n/a`` and the notes say why).
  The noisy program (compiled once) is simulated with both noise models: ``per-read`` (every
  tile read formed) and ``statistical`` (the default of ``photoncc simulate`` since 7e00e99,
  ``Simulator(program, noise_model="statistical")``, each output's read noise drawn once);
* onnxruntime (in-process): ``InferenceSession.run`` on the same batch; session creation is
  reported on its own, not in the ratio;
* GFLOP/s: 2 x the model's multiply-accumulates (counted from its Conv/Gemm/MatMul shapes,
  ``models.macs``) x batch / the ideal simulate time, against the machine's NumPy matmul peak
  measured in the same run (4096 x 4096 float32 and float64 ``np.matmul``). On the ideal
  profile the simulator runs each layer's direct form (one signed float32 product, the model's
  MACs); the figure counts useful work, so unfolding, clipping and electronic ops lower it;
* whole process: ``photoncc simulate PROGRAM --inputs BATCH.npz -o OUT.npz --batch-size B
  --noise-model per-read`` (the noisy program also with ``--noise-model statistical``; wall time,
  peak RSS) against
  ``python bench/ort_run.py infer MODEL BATCH.npz OUT.npz B``, which loads the model in
  onnxruntime, runs the same inputs file and writes the outputs;
* resnet18: compile with 8 samples against ``onnxruntime.quantization.quantize_static`` (QDQ,
  per-channel int8, MinMax, a CalibrationDataReader over the same 8 samples), in-process and as
  whole processes (``photoncc compile MODEL --calibration CALIB.npz`` against
  ``python bench/ort_run.py quantize``);
* cnn: peak RSS of ``photoncc simulate`` on ``--memory-samples`` samples (an inputs file on disk,
  batch 256) against ``ort_run.py infer`` on the same file and batch, also at 256 samples and at a
  tenth of them, to show whether memory stays flat as the sample count grows.

In-process times: median of the timed runs after the warm-up; whole-process times: median of the
processes (inputs in the page cache). Output: Markdown tables, notes, then the issue's targets with
met / not met, judged as the issue states them, on whole processes as a user runs them; each
target's in-process ratio is printed beside its verdict. A run on the reference machine: docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Measured processes are started by bench/launch.py, itself started now while this process is small:
# a child's peak RSS starts at its parent's RSS on Linux (see launch.py).
LAUNCHER = (subprocess.Popen([sys.executable, str(HERE / "launch.py")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True) if __name__ == "__main__" else None)

import numpy as np  # noqa: E402
import onnx  # noqa: E402

sys.path.insert(0, str(HERE))
import models  # noqa: E402

CALIBRATION = 8
NOISE_KEYS = ("weight_sigma", "detector_sigma", "rin_sigma", "crosstalk")
PEAK_SIZE = 4096
COMPILE_TARGET = "resnet18"
MEMORY_MODEL = "cnn"


class Timeout(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"killed after {seconds:.0f} s (--timeout)")
        self.seconds = seconds


# ------------------------------------------------------------------------------------ processes

def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_process(cmd: list, workdir: Path, timeout: float | None = None) -> dict:
    """Run ``cmd`` (through the launcher): wall time, peak RSS (MB, of that process alone), CPU
    seconds, exit code, output. A process still running after ``timeout`` s is killed: Timeout."""
    global LAUNCHER
    if LAUNCHER is None:  # imported, not run: a launcher started now (child RSS may include ours)
        LAUNCHER = subprocess.Popen([sys.executable, str(HERE / "launch.py")], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
    out_path, err_path = workdir / ".stdout", workdir / ".stderr"
    LAUNCHER.stdin.write(json.dumps({"cmd": [str(c) for c in cmd], "stdout": str(out_path),
                                     "stderr": str(err_path), "timeout": timeout}) + "\n")
    LAUNCHER.stdin.flush()
    r = json.loads(LAUNCHER.stdout.readline())
    if r["killed"]:
        raise Timeout(timeout)
    return {"wall": r["wall"], "rss_mb": r["maxrss_kb"] / 1024, "cpu": r["utime"] + r["stime"], "rc": r["rc"],
            "stdout": out_path.read_text(errors="replace"), "stderr": err_path.read_text(errors="replace")}


def _failure(cmd, r) -> RuntimeError:
    lines = [line for line in r["stderr"].strip().splitlines() if line.strip()]
    return RuntimeError(f"`{' '.join(Path(str(c)).name for c in cmd[:3])} ...` exit {r['rc']}: "
                        + (lines[-1] if lines else "no message"))


def worker(args: list, workdir: Path, opts) -> dict:
    """One ``bench/worker.py`` measurement: its JSON result plus the process's wall time and RSS."""
    cmd = [sys.executable, HERE / "worker.py", "--budget", opts.budget, *args]
    r = run_process(cmd, workdir, opts.timeout)
    if r["rc"] != 0:
        raise _failure(cmd, r)
    lines = r["stdout"].strip().splitlines()
    result = {**json.loads(lines[-1]), "rss_mb": r["rss_mb"], "process_wall": r["wall"],
              "text": "\n".join(lines[:-1])}
    if "times" in result:
        result["median"] = statistics.median(result["times"])
    return result


def processes(cmd: list, workdir: Path, opts) -> dict:
    """``cmd`` run up to ``--repeat`` times (until ``--budget`` s are spent): median wall, max RSS."""
    runs = []
    while len(runs) < opts.repeat and sum(r["wall"] for r in runs) <= opts.budget:
        r = run_process(cmd, workdir, opts.timeout)
        if r["rc"] != 0:
            raise _failure(cmd, r)
        runs.append(r)
    return {"median": statistics.median(r["wall"] for r in runs), "times": [r["wall"] for r in runs],
            "cpu": [r["cpu"] for r in runs], "rss_mb": max(r["rss_mb"] for r in runs)}


def guarded(what: str, fn, notes: list) -> dict:
    """``fn()``, or {"timeout": s} / {"error": message} (also added to ``notes``) when it fails."""
    try:
        return fn()
    except Timeout as e:
        notes.append(f"{what}: {e}")
        return {"timeout": e.seconds}
    except RuntimeError as e:
        notes.append(f"{what}: {e}")
        return {"error": str(e)}


def photoncc_cmd() -> list:
    """The installed ``photoncc`` console script next to this Python (no shell shim in between)."""
    script = shutil.which("photoncc", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "photoncc"]


# ------------------------------------------------------------------------------------ environment

def compile_bytecode() -> None:
    """Compile photoncc's modules to bytecode, as ``pip install`` does. From a checkout (an editable
    install) under PYTHONDONTWRITEBYTECODE, as on the reference machine, every photoncc process
    would compile them from source again (about 0.04 s), which onnxruntime's installed modules
    never do; the processes still only read the bytecode."""
    import compileall

    import photoncc
    compileall.compile_dir(str(Path(photoncc.__file__).parent), quiet=1)


def environment() -> dict:
    import onnxruntime

    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    blas = "unknown"
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{deps.get('name')} {deps.get('version')} ({deps.get('openblas configuration', '').strip()})"
    except Exception:  # NumPy < 1.26 has no mode="dicts"
        pass
    runtime = ""
    try:
        from threadpoolctl import threadpool_info
        runtime = "; ".join(f"{i['internal_api']} {i['version']} core type {i.get('architecture', '?')}, "
                            f"{i['num_threads']} threads" for i in threadpool_info())
    except ImportError:
        pass
    import photoncc
    source = Path(photoncc.__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(source), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(mem_kb / 1024 ** 2, 1),
            "python": platform.python_version(), "numpy": np.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "photoncc": photoncc.__version__,
            "photoncc_source": f"{source} ({commit or 'not a git checkout'})",
            "blas": blas, "blas_runtime": runtime, "platform": platform.platform()}


def profiles(workdir: Path) -> dict:
    """Built-in profiles from ``photoncc profiles``; the noisy ones with their noise and description."""
    import yaml

    listing = run_process(photoncc_cmd() + ["profiles"], workdir)
    if listing["rc"] != 0:
        raise SystemExit(f"`photoncc profiles` failed: {listing['stderr'].strip()}")
    found = {}
    for line in listing["stdout"].splitlines():
        if line.strip():
            name = line.split()[0]
            shown = run_process(photoncc_cmd() + ["profiles", name], workdir)
            found[name] = yaml.safe_load(shown["stdout"]) if shown["rc"] == 0 else {}
    noisy = {}
    for name, data in found.items():
        noise = (data or {}).get("noise") or {}
        active = {k: noise[k] for k in NOISE_KEYS if isinstance(noise.get(k), (int, float)) and noise[k] > 0}
        if active:
            noisy[name] = {"noise": active, "description": data.get("description", ""),
                           "architecture": data.get("architecture"),
                           "activation": (data.get("activation") or {}).get("kind")}
    ideal = found.get("ideal") or {}
    return {"names": list(found), "noisy": noisy, "ideal_architecture": ideal.get("architecture")}


def pick_noisy(prof: dict) -> tuple[str | None, str]:
    """The realistic noisy profile: described as realistic, same architecture as ideal, electronic
    activations; (None, why) when there is none."""
    if not prof["noisy"]:
        return None, (f"`photoncc profiles` lists only {', '.join(prof['names'])}, none with noise "
                      f"({', '.join(NOISE_KEYS)} all 0)")

    def score(item):
        name, p = item
        return ("realistic" in p["description"].lower(), p["architecture"] == prof["ideal_architecture"],
                p["activation"] == "electronic")
    name, p = max(prof["noisy"].items(), key=score)
    return name, f"{name}: {p['description']} (noise {p['noise']})"


# ------------------------------------------------------------------------------------ measurements

def prepare(name: str, workdir: Path) -> dict:
    model = models.build(name)
    path = workdir / f"{name}.onnx"
    onnx.save(model, str(path))
    inp = models.data_input(model)
    batch = models.SPECS[name][1]
    calib, data = workdir / f"{name}.calib.npz", workdir / f"{name}.batch.npz"
    np.savez(calib, **{inp: models.inputs(name, CALIBRATION, seed=1)})
    np.savez(data, **{inp: models.inputs(name, batch, seed=2)})
    return {"path": path, "input": inp, "batch": batch, "calib": calib, "data": data,
            "macs": models.macs(model)["total"]}


def measure_model(name: str, noisy: str | None, noisy_reason: str, opts, workdir: Path, notes: list) -> dict:
    log(f"{name}: building")
    m = prepare(name, workdir)
    r = {"model": name, "batch": m["batch"], "macs": m["macs"], "input": m["input"]}
    rep, warm = opts.repeat, opts.warmup
    profiles_ = {"ideal": "ideal", "noisy": noisy}
    for kind, profile in profiles_.items():
        # result key -> noise model: the noisy program is simulated with both noise models
        sims = {"sim_ideal": "per-read"} if kind == "ideal" else {"sim_noisy": "per-read", "sim_stat": "statistical"}
        if profile is None:
            r[f"compile_{kind}"] = {"na": noisy_reason}
            r.update({key: {"na": noisy_reason} for key in sims})
            continue
        program = workdir / f"{name}.{profile}.pcc"
        log(f"{name}: compile for {profile} (in-process, {CALIBRATION} calibration samples)")
        r[f"compile_{kind}"] = c = guarded(f"{name}: compile for {profile}", lambda: worker(
            ["compile", m["path"], m["calib"], profile, program, rep], workdir, opts), notes)
        if "median" not in c:
            r.update({key: {"na": f"compile for {profile} failed"} for key in sims})
            continue
        for key, noise_model in sims.items():
            r[key] = measure_simulate(name, m, profile, program, noise_model, opts, workdir, notes)
    log(f"{name}: onnxruntime (in-process)")
    o = guarded(f"{name}: onnxruntime in-process", lambda: worker(
        ["ort", m["path"], m["data"], m["batch"], rep, warm], workdir, opts), notes)
    log(f"{name}: onnxruntime (whole process)")
    cmd = [sys.executable, HERE / "ort_run.py", "infer", m["path"], m["data"], workdir / f"{name}.ort.out.npz", m["batch"]]
    r["ort"] = {**o, "process": guarded(f"{name}: ort_run.py infer", lambda: processes(cmd, workdir, opts), notes)}
    if name == COMPILE_TARGET:
        r["quantize"] = measure_quantize(name, m, opts, workdir, notes)
    return r


def measure_simulate(name: str, m: dict, profile: str, program: Path, noise_model: str, opts, workdir: Path,
                     notes: list) -> dict:
    """``program`` simulated with ``noise_model``: in-process (worker) and whole process (``photoncc simulate``)."""
    what = profile if noise_model == "per-read" else f"{profile} --noise-model {noise_model}"
    log(f"{name}: simulate {what} (in-process)")
    s = guarded(f"{name}: simulate {what} in-process", lambda: worker(
        ["simulate", program, m["data"], m["batch"], opts.repeat, opts.warmup, noise_model], workdir, opts), notes)
    if "timeout" in s:
        notes.append(f"{name}: photoncc simulate {what} (whole process) not run: the in-process run timed out")
        return {**s, "process": {"timeout": s["timeout"], "skipped": True}}
    log(f"{name}: photoncc simulate {what} (whole process)")
    cmd = photoncc_cmd() + ["simulate", program, "--inputs", m["data"], "-o", workdir / f"{name}.{profile}.{noise_model}.out.npz",
                            "--batch-size", m["batch"], "--noise-model", noise_model]  # explicit: the default changed
    return {**s, "process": guarded(f"{name}: photoncc simulate {what}", lambda: processes(cmd, workdir, opts), notes)}


def measure_quantize(name: str, m: dict, opts, workdir: Path, notes: list) -> dict:
    out = workdir / f"{name}.qdq.onnx"
    log(f"{name}: quantize_static (in-process)")
    q = guarded(f"{name}: quantize_static in-process", lambda: worker(
        ["quantize", m["path"], m["calib"], out, opts.repeat], workdir, opts), notes)
    log(f"{name}: quantize_static (whole process)")
    qw = guarded(f"{name}: ort_run.py quantize", lambda: processes(
        [sys.executable, HERE / "ort_run.py", "quantize", m["path"], m["calib"], out], workdir, opts), notes)
    log(f"{name}: photoncc compile (whole process)")
    cw = guarded(f"{name}: photoncc compile", lambda: processes(
        photoncc_cmd() + ["compile", m["path"], "--calibration", m["calib"], "-o", workdir / f"{name}.cli.pcc"],
        workdir, opts), notes)
    return {**q, "process": qw, "compile_process": cw}


def measure_memory(program: Path, inp: str, samples: int, batch: int, workdir: Path, opts) -> list[dict]:
    """Peak RSS of ``photoncc simulate`` and ``ort_run.py infer`` on growing sample counts."""
    rows = []
    model = workdir / f"{MEMORY_MODEL}.onnx"
    for count in sorted({batch, max(batch, samples // 10), samples}):
        data = workdir / f"{MEMORY_MODEL}.{count}.npz"
        np.savez(data, **{inp: models.inputs(MEMORY_MODEL, count, seed=3)})
        log(f"memory: {count} samples, batch {batch}")
        row = {"samples": count, "batch": batch, "input_mb": data.stat().st_size / 2 ** 20}
        for key, cmd in (("sim", photoncc_cmd() + ["simulate", program, "--inputs", data, "-o",
                                                   workdir / "mem.sim.npz", "--batch-size", batch]),
                         ("ort", [sys.executable, HERE / "ort_run.py", "infer", model, data,
                                  workdir / "mem.ort.npz", batch])):
            res = run_process(cmd, workdir, opts.timeout)
            if res["rc"] != 0:
                raise _failure(cmd, res)
            row.update({f"{key}_rss_mb": res["rss_mb"], f"{key}_wall": res["wall"]})
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ report

def get(r, *keys):
    for k in keys:
        if not isinstance(r, dict) or k not in r:
            return None
        r = r[k]
    return r


def value(m) -> tuple[float | None, bool]:
    """(seconds, is a lower bound) of a measurement dict: its median, or its timeout."""
    if not isinstance(m, dict):
        return None, False
    if m.get("median") is not None:
        return m["median"], False
    if m.get("timeout") is not None:
        return m["timeout"], True
    return None, False


def show(m, spec=".3f") -> str:
    v, bound = value(m)
    if v is None:
        return "error" if isinstance(m, dict) and "error" in m else "n/a"
    return (">" if bound else "") + format(v, spec)


def cpu(m) -> str:
    """Median CPU seconds (all threads) of a measurement's timed runs."""
    values = get(m, "cpu")
    return f"{statistics.median(values):.3f}" if values else "n/a"


def ratio(a, b) -> tuple[float | None, bool]:
    (x, xb), (y, yb) = value(a), value(b)
    if x is None or y is None or yb or not y:
        return None, False
    return x / y, xb


def show_ratio(a, b, spec=".1f") -> str:
    v, bound = ratio(a, b)
    return "n/a" if v is None else (">" if bound else "") + format(v, spec)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def report(results: dict) -> str:
    env, peak, rows = results["environment"], results["peak"], results["models"]
    noisy = results["noisy"] or "n/a"
    out = ["## Machine", ""]
    out += [f"* CPU: {env['cpu']}, {env['cores']} cores, {env['ram_gb']} GB RAM ({env['platform']})",
            f"* Python {env['python']}, NumPy {env['numpy']}, onnx {env['onnx']}, onnxruntime {env['onnxruntime']}, "
            f"photoncc {env['photoncc']} from {env['photoncc_source']}",
            f"* BLAS: {env['blas']}" + (f"; at run time: {env['blas_runtime']}" if env["blas_runtime"] else ""),
            f"* NumPy matmul peak ({PEAK_SIZE}x{PEAK_SIZE}): float32 {peak['float32']:.1f} GFLOP/s, "
            f"float64 {peak['float64']:.1f} GFLOP/s",
            f"* profiles: {', '.join(results['profiles']['names'])}; noisy profile: {results['noisy_reason']}",
            f"* repeat {results['repeat']} (median; budget {results['budget']:.0f} s per measurement), "
            f"warm-up {results['warmup']}, timeout {results['timeout']:.0f} s",
            *[f"* run {r['started']} to {r.get('finished', '?')}, load average (1/5/15 min) {r['load_before']} "
              f"before, {r.get('load_after', '?')} after: `{r['command']}`" for r in results["runs"]], ""]
    out += [f"## In-process, one batch (seconds; noisy = {noisy})", ""]
    trs = []
    for r in rows:
        b, macs = r["batch"], r["macs"]
        ideal, _ = value(r["sim_ideal"])
        ort, _ = value(r["ort"])
        gflops = 2 * macs * b / ideal / 1e9 if ideal else None
        ort_gflops = 2 * macs * b / ort / 1e9 if ort else None
        pct = "n/a" if gflops is None else f"{100 * gflops / peak['float32']:.1f} / {100 * gflops / peak['float64']:.1f}"
        trs.append([r["model"], f"{macs / 1e9:.3f}", str(b), show(r["compile_ideal"]), show(r["compile_noisy"]),
                    show(r["sim_ideal"]), show(r["sim_noisy"]), show(get(r, "sim_stat")), show(r["ort"]),
                    show({"median": get(r, "ort", "setup")}), show_ratio(r["sim_ideal"], r["ort"]),
                    show_ratio(r["sim_noisy"], r["ort"]), show_ratio(get(r, "sim_stat"), r["ort"]),
                    "n/a" if gflops is None else f"{gflops:.2f}", pct,
                    "n/a" if ort_gflops is None else f"{ort_gflops:.1f}"])
    out.append(table(["model", "GMAC/sample", "batch", "compile ideal (8 cal)", "compile noisy", "simulate ideal",
                      "simulate noisy per-read", "simulate noisy statistical", "ort run", "ort session", "ideal/ort",
                      "noisy/ort", "stat/ort", "sim GFLOP/s", "% of f32 / f64 peak", "ort GFLOP/s"], trs))
    out += ["", "## Whole process, one batch (wall seconds; peak RSS MB)", ""]
    trs = []
    for r in rows:
        si, sn, ss = get(r, "sim_ideal", "process"), get(r, "sim_noisy", "process"), get(r, "sim_stat", "process")
        o = get(r, "ort", "process")
        trs.append([r["model"], str(r["batch"]), show(si), show(sn), show(ss), show(o), show_ratio(si, o),
                    show_ratio(sn, o), show_ratio(ss, o), show({"median": get(si, "rss_mb")}, ".0f"),
                    show({"median": get(sn, "rss_mb")}, ".0f"), show({"median": get(ss, "rss_mb")}, ".0f"),
                    show({"median": get(o, "rss_mb")}, ".0f")])
    out.append(table(["model", "batch", "photoncc simulate ideal", "photoncc simulate noisy per-read",
                      "photoncc simulate noisy statistical", "ort_run.py infer", "ideal/ort", "noisy/ort", "stat/ort",
                      "RSS simulate ideal", "RSS simulate noisy", "RSS simulate noisy statistical", "RSS ort"], trs))
    out += ["", "Peak RSS of the in-process workers (MB; compile ideal / simulate ideal / simulate noisy / "
            "simulate noisy statistical / ort): "
            + "; ".join(f"{r['model']} " + " / ".join(show({"median": get(r, k, "rss_mb")}, ".0f") for k in
                                                       ("compile_ideal", "sim_ideal", "sim_noisy", "sim_stat", "ort"))
                        for r in rows)]
    q = next((r for r in rows if "quantize" in r), None)
    if q:
        qq = q["quantize"]
        out += ["", f"## Compile vs quantize_static ({q['model']}, {CALIBRATION} calibration samples; seconds, peak RSS MB)", ""]
        out.append(table(["", "photoncc compile (ideal)", "quantize_static", "compile/quantize"], [
            ["in-process", show(q["compile_ideal"]), show(qq), show_ratio(q["compile_ideal"], qq, ".2f")],
            ["whole process", show(qq.get("compile_process")), show(qq.get("process")),
             show_ratio(qq.get("compile_process"), qq.get("process"), ".2f")],
            ["CPU seconds, in-process", cpu(q["compile_ideal"]), cpu(qq), ""],
            ["CPU seconds, whole process", cpu(qq.get("compile_process")), cpu(qq.get("process")), ""],
            ["peak RSS, whole process", show({"median": get(qq, "compile_process", "rss_mb")}, ".0f"),
             show({"median": get(qq, "process", "rss_mb")}, ".0f"), ""]]))
    if results.get("memory"):
        mem = results["memory"]
        out += ["", f"## Memory: {MEMORY_MODEL} on ideal, inputs file on disk, batch {mem[0]['batch']} (peak RSS MB; wall s)", ""]
        out.append(table(["samples", "inputs file MB", "photoncc simulate RSS", "ort_run.py RSS", "simulate/ort",
                          "photoncc simulate wall", "ort_run.py wall"],
                         [[str(m["samples"]), f"{m['input_mb']:.1f}", f"{m['sim_rss_mb']:.0f}", f"{m['ort_rss_mb']:.0f}",
                           f"{m['sim_rss_mb'] / m['ort_rss_mb']:.2f}", f"{m['sim_wall']:.2f}", f"{m['ort_wall']:.2f}"]
                          for m in mem]))
    if results["notes"]:
        out += ["", "## Notes", ""] + [f"* {n}" for n in results["notes"]]
    out += ["", "## Targets", ""] + [f"* {t}" for t in targets(results)]
    return "\n".join(out)


def targets(results: dict) -> list[str]:
    rows = {r["model"]: r for r in results["models"]}
    lines = []
    r = rows.get(COMPILE_TARGET)

    def verdict(*checks):
        if any(c is None for c in checks):
            return "**not measured**"
        return "**met**" if all(checks) else "**not met**"

    def within(a, b, limit):
        v, bound = ratio(a, b)
        return None if v is None else (v <= limit and not bound)

    def beside(a, b, limit, digits=".1f"):  # the in-process figure, printed beside the verdict
        ok = within(a, b, limit)
        where = "" if ok is None else f", {'within' if ok else 'over'} {limit}x"
        return f"in-process beside it: {show(a)} s vs {show(b)} s ({show_ratio(a, b, digits)}x{where})"

    if r:
        stat = " with --noise-model statistical (the default)"
        for key, limit, extra in (("sim_ideal", 2, ""), ("sim_noisy", 3, " with --noise-model per-read"),
                                  ("sim_stat", 3, stat)):
            sim, ort = r.get(key) or {}, r["ort"]
            if key != "sim_ideal" and "na" in sim:
                lines.append(f"simulate with a realistic noisy profile{extra}, at most {limit}x onnxruntime: "
                             f"n/a ({sim['na']})")
                continue
            pin, pw = get(sim, "process"), get(ort, "process")
            lines.append(f"simulate, {'ideal' if key == 'sim_ideal' else results['noisy']} profile{extra}, "
                         f"{COMPILE_TARGET} 224x224 batch 16, at most {limit}x onnxruntime: whole process "
                         f"{show(pin)} s vs {show(pw)} s ({show_ratio(pin, pw)}x): "
                         f"{verdict(within(pin, pw, limit))}; {beside(sim, ort, limit)}")
        q = r.get("quantize")
        if q:
            c = r["compile_ideal"]
            cw, qw = q.get("compile_process"), q.get("process")
            lines.append(f"compile {COMPILE_TARGET} with {CALIBRATION} calibration samples no slower than quantize_static: "
                         f"whole process {show(cw)} s vs {show(qw)} s ({show_ratio(cw, qw, '.2f')}x): "
                         f"{verdict(within(cw, qw, 1))}; {beside(c, q, 1, '.2f')}")
    else:
        lines.append(f"the {COMPILE_TARGET} targets: not measured (model not selected)")
    mem = results.get("memory")
    if mem:
        first, last = mem[0], mem[-1]
        growth, extra = last["sim_rss_mb"] - first["sim_rss_mb"], last["input_mb"] - first["input_mb"]
        flat = growth <= 1.1 * extra
        under = last["sim_rss_mb"] < 2 * last["ort_rss_mb"]
        lines.append(f"simulate memory, {last['samples']} samples of {MEMORY_MODEL}, flat and under 2x onnxruntime: "
                     f"peak RSS {last['sim_rss_mb']:.0f} MB vs {last['ort_rss_mb']:.0f} MB "
                     f"({last['sim_rss_mb'] / last['ort_rss_mb']:.2f}x, under 2x: {'yes' if under else 'no'}); "
                     f"from {first['samples']} to {last['samples']} samples it grows {growth:+.0f} MB for "
                     f"{extra:.0f} MB more input data, which both programs read whole (flat = growth at most "
                     f"1.1x that: {'yes' if flat else 'no'}): {verdict(flat and under)}")
    return lines


# ------------------------------------------------------------------------------------ main

def cprofile(names: list[str], opts, workdir: Path) -> None:
    for name in names:
        m = prepare(name, workdir)
        program = workdir / f"{name}.ideal.pcc"
        worker(["compile", m["path"], m["calib"], "ideal", program, 1], workdir, opts)
        for title, args in (("compile", ["cprofile-compile", m["path"], m["calib"], "ideal", 15]),
                            ("simulate", ["cprofile-simulate", program, m["data"], m["batch"], 15])):
            log(f"{name}: cProfile {title}")
            text = worker(args, workdir, opts)["text"].strip()
            print(f"### {name}: {title} (ideal) under cProfile\n\n```\n{text}\n```\n", flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _terminated(signum, frame):
    log(f"terminated by signal {signum}; the models measured so far are in --json (continue with --resume)")
    if LAUNCHER is not None and LAUNCHER.poll() is None:
        LAUNCHER.terminate()  # it stops the process being measured
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="MLP and CNN only (a smoke run)")
    p.add_argument("--only", action="append", choices=list(models.BUILDERS), metavar="NAME",
                   help=f"only this model (repeatable): {', '.join(models.BUILDERS)}")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed in-process runs before the timed ones")
    p.add_argument("--budget", type=float, default=120.0, help="seconds after which a measurement stops repeating")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds after which a process is killed")
    p.add_argument("--noisy-profile", help="the noisy profile [default: the realistic built-in one]")
    p.add_argument("--memory-samples", type=int)
    p.add_argument("--workdir", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the workdir")
    p.add_argument("--json", type=Path, help="write every raw number to this file")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --json: measure only the models it lacks")
    p.add_argument("--cprofile", action="store_true", help="only profile compile and simulate (cProfile)")
    opts = p.parse_args(argv)
    if opts.repeat < 1 or opts.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    names = opts.only or (list(models.QUICK) if opts.quick else list(models.BUILDERS))
    samples = opts.memory_samples or (2560 if opts.quick else 10000)
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="photoncc-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if opts.resume and not (opts.json and opts.json.is_file()):
        p.error("--resume needs --json FILE from an earlier run")
    signal.signal(signal.SIGTERM, _terminated)
    try:
        if opts.cprofile:
            cprofile(names, opts, workdir)
            return 0
        run = {"command": " ".join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": _load()}
        if opts.resume:
            results = json.loads(opts.json.read_text())
            results["runs"].append(run)
            noisy, reason = results["noisy"], results["noisy_reason"]
            log(f"resuming {opts.json}: {', '.join(r['model'] for r in results['models'])} already measured")
        else:
            results = {"runs": [run], "repeat": opts.repeat, "warmup": opts.warmup, "budget": opts.budget,
                       "timeout": opts.timeout, "notes": [], "models": []}
            log("environment")
            results["environment"] = environment()
            compile_bytecode()
            log(f"NumPy matmul peak ({PEAK_SIZE}x{PEAK_SIZE})")
            peak = worker(["peak", PEAK_SIZE, 3], workdir, opts)
            results["peak"] = {k: peak[k] for k in ("float32", "float64")}
            results["profiles"] = prof = profiles(workdir)
            if opts.noisy_profile:
                if opts.noisy_profile not in prof["names"] and not Path(opts.noisy_profile).is_file():
                    p.error(f"--noisy-profile {opts.noisy_profile!r}: not a built-in profile "
                            f"({', '.join(prof['names'])})")
                noisy, reason = opts.noisy_profile, f"{opts.noisy_profile} (--noisy-profile)"
            else:
                noisy, reason = pick_noisy(prof)
            results["noisy"], results["noisy_reason"] = noisy, reason
            log(f"noisy profile: {reason}")

        def save():
            if opts.json:
                opts.json.write_text(json.dumps(results, indent=1, default=str))
        done = {r["model"] for r in results["models"]}
        for name in names:
            if name not in done:
                results["models"].append(measure_model(name, noisy, reason, opts, workdir, results["notes"]))
                save()
        mem_row = next((r for r in results["models"] if r["model"] == MEMORY_MODEL), None)
        if MEMORY_MODEL in names and not results.get("memory") and mem_row and "median" in mem_row["compile_ideal"]:
            program = workdir / f"{MEMORY_MODEL}.ideal.pcc"
            if not program.is_file():  # resumed in a new workdir
                m = prepare(MEMORY_MODEL, workdir)
                worker(["compile", m["path"], m["calib"], "ideal", program, 1], workdir, opts)
            results["memory"] = guarded("memory", lambda: measure_memory(
                program, mem_row["input"], samples, mem_row["batch"], workdir, opts), results["notes"])
            if not isinstance(results["memory"], list):
                results["memory"] = None
        run["load_after"] = _load()
        run["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        save()
        commands = "\n".join(f"    {r['command']}" for r in results["runs"])
        print(f"# photoncc benchmark\n\n{commands}\n\n{report(results)}", flush=True)
        return 0
    finally:
        if LAUNCHER is not None:
            try:
                LAUNCHER.stdin.close()
            except OSError:
                pass
            LAUNCHER.wait()
        if not opts.keep and not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
