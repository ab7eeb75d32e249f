"""What a sweep runs: its plan (the grid, every point's profile, the model and data checked once)
and one point (compile and verify, the row's metrics), which runs in a worker."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing import util as mp_util
from pathlib import Path

import numpy as np

from .. import __version__
from ..compiler import check_model, compile_model, input_specs, load_calibration
from ..data import load_npz, match_inputs
from ..errors import UserError
from ..profile import Profile
from ..sim import DEFAULT_NOISE_MODEL
from ..verify import thresholds, verify
from .grid import grid, parse_vary, point_profile

# The columns after the varied keys' (one per key, the point's values), in order. RELATIVE_ERROR
# stands for one column per model output, "relative_error:NAME".
RELATIVE_ERROR = "relative_error:"
COLUMNS = ("tier", "trials", "model_accuracy", "device_accuracy", "device_accuracy_min", "device_accuracy_max",
           "top1_agreement", "top1_agreement_min", "top1_agreement_max", RELATIVE_ERROR, "worst_layer",
           "worst_sqnr_db", "tiles", "latency_us", "energy_nj", "passed", "seconds", "error", "sweep")


@dataclass(frozen=True)
class Payload:
    """What every worker needs, sent to it once: the model (a self-contained ONNX file's bytes), the
    calibration and test arrays and how to verify."""
    source: str  # the model's path as given: error messages name it, not the worker's copy
    name: str
    model: bytes
    digest: str
    calibration: dict
    feeds: dict
    labels: np.ndarray | None
    seeds: int
    noise_model: str
    device: str = "cpu"  # where the per-read tile reads run (sim.backend)


@dataclass(frozen=True)
class Plan:
    payload: Payload
    axes: list
    points: list  # the grid: tuples of value indices, one per axis
    profiles: list  # each point's validated profile (a plain dict, pickled to the workers)
    header: list
    sweep_id: str
    profile_name: str
    files: dict  # what the JSON records: model, calibration and inputs paths as given

    def texts(self, index: int) -> tuple:
        """Point ``index``'s values as their canonical texts (its first CSV cells)."""
        return tuple(axis.texts[i] for axis, i in zip(self.axes, self.points[index]))

    def values(self, index: int) -> dict:
        """Point ``index``'s values by key."""
        return {axis.key: axis.values[i] for axis, i in zip(self.axes, self.points[index])}


def plan(model, profile: Profile, calibration, inputs, vary, seeds: int = 1,
         noise_model: str = DEFAULT_NOISE_MODEL, device: str = "cpu") -> Plan:
    """Everything a sweep needs, checked before any point runs: the ``--vary`` axes and every
    point's profile, the model (``check``: its unsupported nodes, all at once), the calibration and
    test data against the model's inputs."""
    axes = parse_vary(vary)
    points = grid(axes)
    profiles = [dict(point_profile(profile, axes, point)) for point in points]
    graph = check_model(model, profile)
    specs = input_specs(graph)
    cal = load_calibration(calibration, graph)
    feeds, labels = match_inputs(inputs, load_npz(inputs), specs)
    header = [axis.key for axis in axes]
    for column in COLUMNS:
        header += [RELATIVE_ERROR + name for name in graph.outputs] if column == RELATIVE_ERROR else [column]
    data = _model_bytes(Path(model))
    digest = hashlib.sha256(data).hexdigest()
    identity = hashlib.sha256()
    for part in (__version__, digest, json.dumps(dict(profile), sort_keys=True), _arrays_digest(cal),
                 _arrays_digest({**feeds, "label": labels} if labels is not None else feeds), str(seeds),
                 noise_model, json.dumps(header)):
        identity.update(part.encode() + b"\0")
    payload = Payload(str(model), Path(model).name, data, digest, cal, feeds, labels, seeds, noise_model, device)
    files = {"model": str(model), "calibration": str(calibration), "inputs": str(inputs)}
    return Plan(payload, axes, points, profiles, header, identity.hexdigest()[:12], profile.name, files)


def _model_bytes(path: Path) -> bytes:
    """The model as one self-contained file: its bytes, or with external data (a ``.onnx.data``
    file beside it) re-serialised with the weights inside, so a worker needs no other file."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    if not any(uses_external_data(t) for t in _get_all_tensors(onnx.load(str(path), load_external_data=False))):
        return path.read_bytes()
    try:
        return onnx.load(str(path)).SerializeToString()
    except ValueError as e:  # protobuf's 2 GB limit
        raise UserError(f"{path}: too large to send to the workers as one file ({e})") from e


def _arrays_digest(arrays: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()




def run_point(payload: Payload, profile: dict) -> dict:
    """Compile and verify one point; its metrics by column name (``COLUMNS``), never an exception:
    a failure is recorded in ``error`` (a UserError's message, or the exception of a bug), with
    the time taken in ``seconds``. ``photoncc`` is the version that ran it."""
    start = time.perf_counter()
    profile = Profile(profile)
    metrics = {"tier": profile.tier()}
    try:
        metrics.update(_measure(payload, profile))
    except UserError as e:
        metrics["error"] = _one_line(str(e), payload)
    except Exception as e:  # a bug in photoncc, met at this point only: recorded, the sweep goes on
        metrics["error"] = f"internal error: {type(e).__name__}: {_one_line(str(e), payload)}"
    metrics["seconds"] = round(time.perf_counter() - start, 3)
    metrics["photoncc"] = __version__
    return metrics


def _measure(payload: Payload, profile: Profile) -> dict:
    model = stage_model(payload)
    program = compile_model(model, profile, calibration=payload.calibration)
    tier = profile.tier()
    limits = thresholds(profile, tier, program)
    if tier == "noisy":
        limits["trials"] = payload.seeds
    report = verify(program, str(model), payload.feeds, payload.labels, tier=tier, limits=limits, seed=0,
                    noise_model=payload.noise_model, device=payload.device)
    return metrics_of(report, program.manifest["report"])


def metrics_of(report: dict, compiled: dict) -> dict:
    """A point's columns from its verify report and compile report: accuracy (mean over the trials
    and their spread), top-1 agreement of the first classifier output (likewise), each output's
    relative error (the median over trials), the optical layer with the lowest SQNR against
    onnxruntime (first samples, first trial), tiles and the latency and energy estimates."""
    head = next((o for o in report["outputs"] if o["classifier"]), None)
    per_trial = (head or {}).get("per_trial") or {}  # verify lists each trial's when there are several
    agreement = head and (per_trial.get("top1_agreement") or [head["top1_agreement"]])
    accuracy = report["accuracy"]
    measured = [layer for layer in report["layers"] if layer["sqnr_db"] is not None]
    worst = min(measured, key=lambda layer: layer["sqnr_db"]) if measured else None
    return {
        "trials": report["trials"],
        "model_accuracy": accuracy and accuracy["model"],
        "device_accuracy": accuracy and accuracy["device"],
        "device_accuracy_min": accuracy and min(accuracy["device_per_trial"]),
        "device_accuracy_max": accuracy and max(accuracy["device_per_trial"]),
        "top1_agreement": head and head["top1_agreement"],
        "top1_agreement_min": agreement and min(agreement),
        "top1_agreement_max": agreement and max(agreement),
        **{RELATIVE_ERROR + o["name"]: o["relative_error"] for o in report["outputs"]},
        "worst_layer": worst and worst["name"],
        "worst_sqnr_db": worst and float(worst["sqnr_db"]),
        "tiles": compiled["tiles"], "latency_us": compiled["latency_us"], "energy_nj": compiled["energy_nj"],
        "passed": report["passed"],
    }


def _one_line(message: str, payload: Payload) -> str:
    """A message as one CSV cell, naming the model as given rather than the worker's copy of it."""
    copy_path = _STAGED.get(payload.digest)
    if copy_path is not None:
        message = message.replace(str(copy_path), payload.source)
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


_STAGED: dict = {}  # model digest -> this process's copy of the model file (compile and onnxruntime read a path)
_STAGING = threading.Lock()  # a Dask worker may run points in threads


def stage_model(payload: Payload) -> Path:
    """This process's copy of the payload's model, written once into a temporary folder that is
    removed when the process exits."""
    with _STAGING:
        path = _STAGED.get(payload.digest)
        if path is None or not path.is_file():
            folder = tempfile.mkdtemp(prefix="photoncc-sweep-")
            path = Path(folder) / payload.name
            path.write_bytes(payload.model)
            _STAGED[payload.digest] = path
            # multiprocessing runs these at a worker's exit (and, through atexit, at this process's)
            mp_util.Finalize(None, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True}, exitpriority=0)
        return path


def unstage_model(payload: Payload) -> None:
    """Remove this process's copy of the model (after an in-process sweep)."""
    with _STAGING:
        path = _STAGED.pop(payload.digest, None)
    if path is not None:
        shutil.rmtree(path.parent, ignore_errors=True)
