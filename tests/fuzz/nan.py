"""The NaN rule of the oracle: NaN outputs of ``simulate`` that neither the inputs nor
onnxruntime (same model, same inputs) explain."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def nan_problem(output: Path, model: Path, inputs: Path, specs: dict) -> str | None:
    """NaN values in ``simulate``'s outputs at samples whose inputs are finite and whose
    onnxruntime outputs (same inputs, cast to the model's dtypes) have no NaN; None when none.
    ``specs``: the program's inputs, name -> dtype name."""
    try:
        with np.load(output, allow_pickle=False) as archive:
            outs = {k: archive[k] for k in archive.files}
    except Exception as e:  # noqa: BLE001
        return f"the outputs file does not read back: {type(e).__name__}: {e}"
    bad = {k: np.isnan(v.reshape(len(v), -1)).any(axis=1) for k, v in outs.items()
           if v.dtype.kind in "fc" and v.ndim and len(v)}
    if not any(b.any() for b in bad.values()):
        return None
    feeds = _feeds(inputs, specs)
    if feeds is None:
        return None
    finite = np.ones(len(next(iter(feeds.values()))), bool)
    for v in feeds.values():
        if v.dtype.kind in "fc":
            finite &= np.isfinite(v.reshape(len(v), -1)).all(axis=1)
    ref = onnxruntime_outputs(model, feeds)
    problems = []
    for name, rows in bad.items():
        explained = ~finite
        if name in ref and len(ref[name]) == len(rows) and ref[name].dtype.kind in "fc":
            explained = explained | np.isnan(ref[name].reshape(len(rows), -1)).any(axis=1)
        unexplained = rows & ~explained
        if unexplained.any():
            problems.append(f"output {name!r}: NaN in {int(unexplained.sum())} of {len(rows)} samples "
                            "with finite inputs" + ("" if name in ref else " (no onnxruntime reference)"))
    return "; ".join(problems) or None


def onnxruntime_outputs(model: Path, feeds: dict) -> dict:
    """onnxruntime's outputs for ``feeds`` (a fixed batch axis: that many samples at a time, the
    last batch filled up); {} when onnxruntime cannot run the model."""
    try:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.log_severity_level = 4
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        fixed = [i.shape[0] for i in session.get_inputs() if i.shape and isinstance(i.shape[0], int)]
        total = len(next(iter(feeds.values())))
        step = min(fixed) if fixed else total
        parts = []
        for start in range(0, total, step):
            chunk = {k: v[start:start + step] for k, v in feeds.items()}
            count = len(next(iter(chunk.values())))
            if count < step:
                chunk = {k: np.concatenate([v, np.repeat(v[-1:], step - count, axis=0)]) for k, v in chunk.items()}
            parts.append([np.asarray(o)[:count] for o in session.run(names, chunk)])
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(names)}
    except Exception:  # noqa: BLE001 - onnxruntime cannot tell: judge on the inputs alone
        return {}


def _feeds(path: Path, specs: dict) -> dict | None:
    """The model inputs in an .npz as photoncc reads them (one array under any key for a
    one-input model), cast to the model's dtypes; None when that is not possible."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files if k != "label"}
        if len(specs) == 1 and len(arrays) == 1:
            arrays = {next(iter(specs)): next(iter(arrays.values()))}
        return {name: np.ascontiguousarray(arrays[name], dtype) for name, dtype in specs.items()}
    except Exception:  # noqa: BLE001
        return None
