"""verify: onnxruntime on the original model vs the simulator on the program, same inputs; a verdict.

Per output (ref = onnxruntime, dev = simulator):

* max_abs_error  = max |dev - ref|
* relative_error = max_abs_error / scale,  scale = max(ref) - min(ref) (the output's range; max |ref|
  when the output is constant, 1 when it is all zeros)
* top1_agreement = share of samples whose argmax over the last axis agree, for classifier-shaped
  float outputs (N, C) with C >= 2; for integer outputs (labels) the share of equal values.

The exact tier (profiles without quantisation or noise) passes when every relative_error <= rtol
and every agreement >= top1. With a ``label`` array, the task accuracy of model and device is
reported for the first classifier-shaped output. The report schema is docs/verify-report.md.
"""
from __future__ import annotations

import numpy as np

from . import __version__
from .errors import ProgramError
from .program import Program
from .reference import run_onnxruntime
from .simulator import Simulator

REPORT_VERSION = 1


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


def compare(ref: np.ndarray, dev: np.ndarray) -> dict:
    result = {"shape": list(ref.shape), "max_abs_error": None, "output_range": None,
              "relative_error": None, "top1_agreement": None}
    if dev.shape != ref.shape:
        result["error"] = f"shape {list(dev.shape)} differs from the model's {list(ref.shape)}"
        return result
    if ref.dtype.kind != "f":
        result["top1_agreement"] = float(np.mean(ref == dev)) if ref.size else 1.0
        return result
    ref64, dev64 = ref.astype(np.float64), dev.astype(np.float64)
    err = float(np.abs(dev64 - ref64).max()) if ref.size else 0.0
    if not np.isfinite(dev64).all():
        err = float("inf")
    scale = float(np.ptp(ref64)) if ref.size else 0.0
    scale = scale or (float(np.abs(ref64).max()) if ref.size else 0.0) or 1.0
    result.update(max_abs_error=err, output_range=scale, relative_error=err / scale)
    if ref.ndim == 2 and ref.shape[1] >= 2:
        result["top1_agreement"] = float(np.mean(ref.argmax(axis=1) == dev.argmax(axis=1)))
    return result


def verify(program: Program, model_path: str, feeds: dict, labels=None, *, rtol: float, top1: float,
           seed: int = 0, inputs_note: str = "", program_path: str = "<in memory>", progress=None) -> dict:
    reference, reference_note = run_onnxruntime(model_path, feeds)
    simulator = Simulator(program, seed=seed)
    try:
        simulator.selftest(program_path)
        kat = "passed"
    except ProgramError as e:  # the program no longer computes what was compiled: a failed check
        kat = f"failed: {str(e).split('known-answer test failed: ', 1)[-1]}"
    device = simulator.run_batches(feeds, progress=progress)
    outputs = []
    for spec in program.manifest["outputs"]:
        name = spec["name"]
        metrics = {"name": name, **compare(reference[name], device[name])}
        rel, agree = metrics["relative_error"], metrics["top1_agreement"]
        metrics["passed"] = ("error" not in metrics and (rel is None or rel <= rtol)
                             and (agree is None or agree >= top1))
        outputs.append(metrics)
    accuracy = None
    if labels is not None:
        first = next((o for o in outputs if o["top1_agreement"] is not None and o.get("relative_error") is not None),
                     None)
        if first:
            accuracy = {"output": first["name"],
                        "model": float(np.mean(reference[first["name"]].argmax(axis=1) == labels)),
                        "device": float(np.mean(device[first["name"]].argmax(axis=1) == labels))}
    finite = [o for o in outputs if o["relative_error"] is not None]
    worst = max(finite, key=lambda o: o["relative_error"])["name"] if finite else None
    return {
        "report_version": REPORT_VERSION, "photoncc": __version__, "tier": "exact",
        "profile": program.manifest["profile"]["name"], "seed": seed,
        "model": str(model_path), "program": program_path, "reference": reference_note,
        "inputs": {"samples": len(next(iter(feeds.values()))), "source": inputs_note},
        "thresholds": {"rtol": rtol, "top1": top1},
        "outputs": outputs, "worst_output": worst, "accuracy": accuracy,
        "clipped_fraction": {k: v for k, v in sorted(simulator.clipped_fraction().items()) if v > 0},
        "known_answer_test": kat,
        "passed": kat == "passed" and all(o["passed"] for o in outputs),
    }


def junit_xml(report: dict) -> str:
    from xml.sax.saxutils import quoteattr

    cases = []
    for o in report["outputs"]:
        body = ""
        if not o["passed"]:
            message = o.get("error") or (f"relative error {o['relative_error']} (rtol {report['thresholds']['rtol']}), "
                                         f"top-1 agreement {o['top1_agreement']} (min {report['thresholds']['top1']})")
            body = f"<failure message={quoteattr(message)}/>"
        cases.append(f'  <testcase classname="photoncc.verify" name={quoteattr(o["name"])}>{body}</testcase>')
    failures = sum(not o["passed"] for o in report["outputs"])
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("photoncc verify " + report["model"])} '
            f'tests="{len(cases)}" failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n")
