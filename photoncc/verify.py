"""verify: onnxruntime on the original model vs the simulator on the program, same inputs; a verdict.

Per output (ref = onnxruntime, dev = simulator):

* max_abs_error  = max |dev - ref|
* relative_error = max_abs_error / scale,  scale = max(ref) - min(ref) (the output's range; max |ref|
  when the output is constant, 1 when it is all zeros)
* top1_agreement = share of samples whose argmax over the last axis agree, for classifier-shaped
  float outputs (N, C) with C >= 2; for integer outputs (labels) the share of equal values.

Tiers (the profile decides; ``--noiseless`` turns a noisy profile's check into the quantised tier):

* exact (float profiles): one run; every output needs relative_error <= rtol and agreement >= top1.
* quantised (quantised, noiseless): one noiseless run; classifier-shaped outputs need agreement >=
  top1 (their relative error is reported, not judged: one flipped sample moves it to ~1), other
  float outputs relative_error <= rtol; rtol ``auto`` = 4 L 2^-b, about four code steps of the
  coarsest converter (b bits) per optical layer (L of them): a heuristic bound, stated as such.
* noisy: ``trials`` seeded runs (seeds seed, seed+1, ...); classifier outputs pass when the lower
  one-sided Wilson bound, at the profile's confidence, of the agreement pooled over every trial and
  sample is >= top1; other float outputs when the median over trials of relative_error <= rtol.

Per layer: for every bank whose output is a value of the original model, the SQNR
10 log10(sum ref^2 / sum (dev - ref)^2) against onnxruntime's value, on the first LAYER_SAMPLES
samples (first trial): it shows where the error comes from. With a ``label`` array, the task
accuracy of model and device is reported for the first classifier-shaped output (mean over trials).
The report schema is docs/verify-report.md.
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np

from . import __version__
from .errors import KnownAnswerError
from .program import Program
from .progress import stage
from .reference import run_onnxruntime
from .sim import DEFAULT_NOISE_MODEL, Simulator
from .sim.saturation import SampleRanges

REPORT_VERSION = 1
SATURATION_INDICES = 20  # saturating samples listed by index in the report
LAYER_SAMPLES = 64
Z = {0.9: 1.2816, 0.95: 1.6449, 0.99: 2.3263}  # one-sided normal quantiles


def thresholds(profile: dict, tier: str, program: Program, rtol=None, top1=None) -> dict:
    """The thresholds of ``tier`` from the profile's ``verify`` section, with command-line overrides."""
    v = profile["verify"]
    if tier == "exact":
        found = {"rtol": v["rtol"], "top1": v["top1"]}
    else:
        q = v["quantised"]
        found = {"rtol": auto_rtol(profile, program) if q["rtol"] == "auto" else q["rtol"], "top1": q["top1"]}
        if tier == "noisy":
            found.update(top1=v["noisy"]["top1"], trials=v["noisy"]["trials"], confidence=v["noisy"]["confidence"])
    if rtol is not None:
        found["rtol"] = rtol
    if top1 is not None:
        found["top1"] = top1
    return found


def auto_rtol(profile: dict, program: Program) -> float:
    bits = [b for b in profile["precision"].values() if b]
    layers = sum(i["op"] in ("Bank", "Mesh") for i in program.instructions)
    return 4.0 * max(layers, 1) * 2.0 ** -min(bits) if bits else profile["verify"]["rtol"]


def wilson_lower(successes: float, total: int, confidence: float) -> float:
    """One-sided lower Wilson score bound of a proportion."""
    if total == 0:
        return 0.0
    z = Z.get(confidence) or float(np.sqrt(2) * _erfinv(2 * confidence - 1))
    p = successes / total
    centre = p + z * z / (2 * total)
    margin = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return float((centre - margin) / (1 + z * z / total))


def _erfinv(y: float) -> float:
    """Inverse error function by bisection (only for confidences not in Z)."""
    import math
    lo, hi = -6.0, 6.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return (lo + hi) / 2


def draw_inputs(program: Program, samples: int, seed: int) -> dict:
    """Seeded uniform samples inside the per-channel input ranges recorded in the program."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in program.manifest["inputs"]:
        lo, hi = np.asarray(spec["lo"], np.float64), np.asarray(spec["hi"], np.float64)
        shape = (samples,) + tuple(spec["shape"])
        channel = (1, -1) + (1,) * (len(shape) - 2) if len(shape) > 1 else (1,)
        feeds[spec["name"]] = rng.uniform(lo.reshape(channel), hi.reshape(channel), shape).astype(spec["dtype"])
    return feeds


def kept_samples(program: Program, samples: int) -> dict | None:
    """The first ``samples`` of the calibration samples the program keeps (``emit.keep_samples``),
    by input name; None for a program that keeps none (compiled without calibration data, or by an
    earlier photoncc)."""
    kept = program.manifest.get("samples")
    if not kept:
        return None
    return {name: program.tensors[ref][:samples] for name, ref in kept["inputs"].items()}


def compare(ref: np.ndarray, dev: np.ndarray, scale: float | None = None) -> dict:
    """The metrics of one output (module docstring). Non-finite values are compared by position: a
    NaN where the model has NaN (or the same infinity) agrees; one where the model has another
    value is counted in ``nonfinite_mismatch``, and the errors are taken over the other values."""
    result = {"shape": list(ref.shape), "max_abs_error": None, "output_range": None,
              "relative_error": None, "top1_agreement": None}
    if dev.shape != ref.shape:
        result["error"] = f"shape {list(dev.shape)} differs from the model's {list(ref.shape)}"
        return result
    if ref.dtype.kind != "f":
        result["top1_agreement"] = float(np.mean(ref == dev)) if ref.size else 1.0
        return result
    ref64, dev64 = ref.astype(np.float64), dev.astype(np.float64)
    finite = np.isfinite(ref64) & np.isfinite(dev64)
    same = (ref64 == dev64) | (np.isnan(ref64) & np.isnan(dev64))  # the same infinity, or NaN on both sides
    mismatched = int(np.count_nonzero(~finite & ~same))
    err = float(np.abs(dev64 - ref64, where=finite, out=np.zeros_like(ref64)).max()) if ref.size else 0.0
    if scale is None:  # the output's range (given: the whole output's, for a subset of its samples)
        known = ref64[np.isfinite(ref64)]
        scale = float(np.ptp(known)) if known.size else 0.0
        scale = scale or (float(np.abs(known).max()) if known.size else 0.0) or 1.0
    result.update(max_abs_error=err, output_range=scale, relative_error=err / scale, nonfinite_mismatch=mismatched)
    if ref.ndim == 2 and ref.shape[1] >= 2:
        result["top1_agreement"] = float(np.mean(ref.argmax(axis=1) == dev.argmax(axis=1)))
    return result


def verify(program: Program, model_path: str, feeds: dict, labels=None, *, tier: str, limits: dict,
           seed: int = 0, inputs_note: str = "", program_path: str = "<in memory>", progress=None,
           noise_model: str = DEFAULT_NOISE_MODEL, device: str = "cpu", chip=None) -> dict:
    """Compare and decide at ``tier`` with ``limits`` (see ``thresholds``); returns the report.
    ``noise_model`` says how the noisy tier simulates tile reads (simulator.NOISE_MODELS);
    ``progress(done, total, stage)`` reports each trial's samples, stage "trial i/n" when there
    are several, "" when one (photoncc/progress.py). ``chip``: run every trial on that chip's
    static errors (``photoncc.chip.Chip``) instead of drawing them from the trial's seed."""
    layer_names = comparable_layers(program)
    reference, reference_note = run_onnxruntime(model_path, feeds, extra_outputs=layer_names)
    noise_model = noise_model if tier == "noisy" else "per-read"  # the quantised tier reads every tile
    trials = limits.get("trials", 1) if tier == "noisy" else 1
    runs, clipped = [], {}
    for trial in range(trials):
        step = stage(progress, f"trial {trial + 1}/{trials}" if trials > 1 else "")
        settings = {"seed": seed + trial, "noiseless": tier != "noisy", "noise_model": noise_model, "device": device,
                    **({} if chip is None else {"chip": chip})}
        if trial == 0:  # the known-answer test (noiseless, in this noise model) and the layers' values
            simulator, kat = known_answer(program, program_path, settings)
            simulator.saturation = SampleRanges(program)  # which samples leave the compiled ranges
            run = simulator.run_batches(feeds, progress=step, keep=layer_names, keep_samples=LAYER_SAMPLES)
            excess, excess_layers = simulator.saturation.samples()
            output_names = {spec["name"] for spec in program.manifest["outputs"]}
            inner = {name: run[name][:LAYER_SAMPLES] if name in output_names else run.pop(name) for name in layer_names}
            clipped = {k: v for k, v in sorted(simulator.clipped_fraction().items()) if v > 0}
            saturated = None if simulator.statistical else {  # the statistical model draws no reads
                k: v for k, v in sorted(simulator.adc_saturated_fraction().items()) if v > 0}
            per_read = list(simulator.per_read) if tier == "noisy" and noise_model == "statistical" else None
        else:
            simulator = Simulator(program, **settings)
            run = simulator.run_batches(feeds, progress=step)
        runs.append(run)
        del simulator  # before the next trial's device is loaded
    if tier == "noisy":  # the data's coverage, without the excursions the device's noise adds
        excess, excess_layers = _noiseless_coverage(program, feeds, device)
    outputs = [_judge(spec["name"], reference[spec["name"]], [r[spec["name"]] for r in runs], tier, limits)
               for spec in program.manifest["outputs"]]
    saturation = _split_by_range(outputs, reference, runs, excess, excess_layers, tier, limits)
    layers = [_layer_metrics(name, reference[name][:LAYER_SAMPLES], inner[name])
              for name in layer_names if name in reference]
    accuracy = _accuracy(outputs, reference, runs, labels)
    finite = [o for o in outputs if o["relative_error"] is not None]
    worst = max(finite, key=lambda o: o["relative_error"])["name"] if finite else None
    return {
        "report_version": REPORT_VERSION, "photoncc": __version__, "tier": tier,
        "profile": program.manifest["profile"]["name"], "seed": seed, "trials": trials,
        "noise_model": noise_model if tier == "noisy" else None,  # (per-read below the noisy tier)
        "device": device,
        "per_read_layers": per_read,  # statistical model: the layers it left to the per-read model
        "model": str(model_path), "program": program_path, "reference": reference_note,
        "inputs": {"samples": len(next(iter(feeds.values()))), "source": inputs_note},
        "thresholds": limits,
        "outputs": outputs, "worst_output": worst, "layers": layers, "accuracy": accuracy,
        "clipped_fraction": clipped,
        "adc_saturated_fraction": saturated,
        "known_answer_test": kat,
        "saturation": saturation,
        "cause": _cause(kat, outputs, saturation),
        "passed": kat == "passed" and all(o["passed"] for o in outputs),
    }


def _noiseless_coverage(program: Program, feeds: dict, device: str):
    """Which samples leave the compiled ranges on a noiseless run (``SampleRanges.samples``)."""
    simulator = Simulator(program, noiseless=True, noise_model="statistical", device=device)
    simulator.saturation = SampleRanges(program)
    simulator.run_batches(feeds)
    return simulator.saturation.samples()


def _accuracy(outputs: list, reference: dict, runs: list, labels) -> dict | None:
    """Task accuracy of the model and the device (mean and per trial) on the first classifier
    output, when the inputs have labels."""
    head = next((o for o in outputs if o["classifier"]), None) if labels is not None else None
    if head is None:
        return None
    name = head["name"]
    per_trial = [float(np.mean(r[name].argmax(axis=1) == labels)) for r in runs]
    return {"output": name, "model": float(np.mean(reference[name].argmax(axis=1) == labels)),
            "device": float(np.mean(per_trial)), "device_per_trial": per_trial}


def _split_by_range(outputs: list, reference: dict, runs: list, excess, excess_layers: list, tier: str,
                    limits: dict) -> dict:
    """The samples whose inputs left an optical layer's compiled range (the run of the quantised or
    exact tier; for the noisy tier a noiseless run, so that noise-driven excursions count as the
    device's error, not the data's), and each
    output judged again on the samples inside the ranges (``inside_range``: the program's
    correctness) and measured on the saturating ones (``saturating``: the data's coverage), with the
    output's range over all samples as the scale. Adds those to ``outputs`` when a sample saturates."""
    hit = excess > 0
    count = int(hit.sum())
    found = {"samples": count, "of": int(len(excess)),
             "worst_excess": float(excess.max()) if count else 0.0,
             "worst_layer": excess_layers[int(excess.argmax())] if count else None,
             "indices": [int(i) for i in np.flatnonzero(hit)[:SATURATION_INDICES]],
             "layers": dict(sorted(Counter(layer for layer in excess_layers if layer).items()))}
    if not count:
        return found
    inside = ~hit
    for o in outputs:
        ref = reference[o["name"]]
        devs = [r[o["name"]] for r in runs]
        if "error" in o or len(ref) != len(hit):
            continue
        scale = o.get("output_range")
        judged = _judge(o["name"], ref[inside], [d[inside] for d in devs], tier, limits, scale) if inside.any() else None
        o["inside_range"] = None if judged is None else {
            key: judged.get(key) for key in ("max_abs_error", "relative_error", "top1_agreement", "top1_lower_bound",
                                             "nonfinite_mismatch", "passed")} | {"samples": int(inside.sum())}
        out = compare(ref[hit], devs[0][hit], scale)
        o["saturating"] = {key: out.get(key) for key in ("max_abs_error", "relative_error", "top1_agreement")} | {
            "samples": count}
    return found


def _cause(kat: str, outputs: list, saturation: dict) -> str | None:
    """Why the comparison failed: "known-answer test" (the program was changed), "program" (an
    output fails on the samples inside the compiled ranges: not the data's coverage), "saturation"
    (only through the samples that leave the ranges); None when it passed."""
    if kat != "passed":
        return "known-answer test"
    failed = [o for o in outputs if not o["passed"]]
    if not failed:
        return None
    if saturation["samples"] and all(o.get("inside_range") is None or o["inside_range"]["passed"] for o in failed) \
            and all("inside_range" in o for o in failed):
        return "saturation"
    return "program"


def known_answer(program: Program, program_path: str, device: dict) -> tuple[Simulator, str]:
    """A ``Simulator(program, **device)`` and the verdict of the program's known-answer test in its
    noise model, noiseless: "passed" or "failed: <what differs>". The test runs as the device loads
    (``check``): when it needs a noiseless device of its own, that one is loaded and freed first,
    never beside the noisy one. A failed test is a verdict, not an error: the device is then
    loaded without it."""
    try:
        return Simulator(program, check=program_path, **device), "passed"
    except KnownAnswerError as e:  # the program no longer computes what was compiled
        return Simulator(program, **device), f"failed: {str(e).split('known-answer test failed: ', 1)[-1]}"


def comparable_layers(program: Program) -> list[str]:
    """Bank outputs that still are values of the original model (not the input of a photonic
    activation, whose scale the compiler changed)."""
    photonic_inputs = {i["inputs"][0] for i in program.instructions if i["op"] == "PhotonicSigmoid"}
    return [i["outputs"][0] for i in program.instructions
            if i["op"] in ("Bank", "Mesh") and i["outputs"][0] not in photonic_inputs]


def _judge(name: str, ref: np.ndarray, devs: list, tier: str, limits: dict, scale: float | None = None) -> dict:
    per_trial = [compare(ref, dev, scale) for dev in devs]
    metrics = {"name": name, **per_trial[0]}
    metrics["classifier"] = ref.dtype.kind == "f" and metrics["top1_agreement"] is not None
    if "error" in metrics:
        metrics["passed"] = False
        return metrics
    rels = [m["relative_error"] for m in per_trial if m["relative_error"] is not None]
    agrees = [m["top1_agreement"] for m in per_trial if m["top1_agreement"] is not None]
    if len(devs) > 1:
        metrics["relative_error"] = float(np.median(rels)) if rels else None
        metrics["top1_agreement"] = float(np.mean(agrees)) if agrees else None
        metrics["per_trial"] = {"relative_error": rels or None, "top1_agreement": agrees or None}
    rel, agree = metrics["relative_error"], metrics["top1_agreement"]
    metrics["nonfinite_mismatch"] = max((m.get("nonfinite_mismatch") or 0 for m in per_trial), default=0) \
        if ref.dtype.kind == "f" else None
    if tier == "noisy" and agree is not None:
        total = len(ref) * len(devs)
        metrics["top1_lower_bound"] = wilson_lower(agree * total, total, limits["confidence"])
        agree_ok = metrics["top1_lower_bound"] >= limits["top1"]
    else:
        agree_ok = agree is None or agree >= limits["top1"]
    judge_rel = rel is not None and (tier == "exact" or not metrics["classifier"])
    metrics["passed"] = bool(agree_ok and (not judge_rel or rel <= limits["rtol"]) and not metrics["nonfinite_mismatch"])
    return metrics


def _layer_metrics(name: str, ref: np.ndarray, dev: np.ndarray) -> dict:
    """SQNR and relative error of one layer, in float64 with one float64 array (the error, exact:
    the difference of two float32 values), not a float64 copy of each operand (64 samples of an
    ImageNet network's early layer are hundreds of MB in float64). Positions where either side is
    NaN or infinite are left out (the outputs' comparison counts them)."""
    err = np.subtract(dev, ref, dtype=np.float64)
    if not np.isfinite(err).all():
        keep = np.isfinite(err)
        err, ref = err[keep], ref[keep]
    largest = max(float(err.max(initial=0.0)), -float(err.min(initial=0.0)))
    noise = float(np.square(err, out=err).sum())
    flat = ref.reshape(-1)
    signal = float(np.einsum("i,i->", flat, flat, dtype=np.float64))
    low, high = (float(ref.min()), float(ref.max())) if ref.size else (0.0, 0.0)
    scale = (high - low) or max(abs(low), abs(high)) or 1.0
    return {"name": name, "sqnr_db": round(10 * np.log10(signal / noise), 2) if noise > 0 and signal > 0 else None,
            "exact": noise == 0, "relative_error": largest / scale}


def junit_xml(report: dict) -> str:
    from xml.sax.saxutils import quoteattr

    cases = []
    for o in report["outputs"]:
        body = ""
        if not o["passed"]:
            message = o.get("error") or (f"{report['tier']} tier: relative error {o['relative_error']} "
                                         f"(rtol {report['thresholds']['rtol']}), top-1 agreement "
                                         f"{o['top1_agreement']} (min {report['thresholds']['top1']})"
                                         + nonfinite_note(o, ", "))
            body = f"<failure message={quoteattr(message)}/>"
        cases.append(f'  <testcase classname="photoncc.verify" name={quoteattr(o["name"])}>{body}</testcase>')
    failures = sum(not o["passed"] for o in report["outputs"])
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("photoncc verify " + report["model"])} '
            f'tests="{len(cases)}" failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n")


def nonfinite_note(output: dict, before: str = "") -> str:
    """The words for an output's ``nonfinite_mismatch`` ("" when there is none)."""
    count = output.get("nonfinite_mismatch")
    return f"{before}{count} value(s) NaN or infinite where the model's are not, or the other way round" if count else ""


def report_json(report: dict) -> str:
    """The report as strict JSON (sorted keys, indent 1, a final newline): a non-finite number,
    which JSON cannot hold, is written as null."""
    def finite(value):
        if isinstance(value, float):
            return value if np.isfinite(value) else None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value
    return json.dumps(finite(report), indent=1, sort_keys=True, allow_nan=False) + "\n"
