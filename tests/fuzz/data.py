"""Data border: .npz files for ``compile --calibration``, ``simulate --inputs`` and
``verify --inputs``.

Valid samples for a seed program's inputs get 1-3 array mutations (dtype, values, samples,
shape, order, keys, labels, pickled objects) and sometimes damage at the archive level
(``npz``). Each mutator edits the dict of arrays in place and returns a note (None: nothing to
edit).
"""
from __future__ import annotations

import random

import numpy as np

from .case import Case, Plan, pick, simulate_plan
from .npz import archive_mutation, npy_bytes, savez_bytes, zip_members
from .seeds import Seeds, good_arrays


DTYPES = ["float16", "float32", "float64", "longdouble", "int8", "int16", "int32", "int64", "uint8", "uint16",
          "uint32", "uint64", "bool", "complex64", "complex128", "<U4", "S4", "datetime64[s]", "timedelta64[s]",
          ">f4", ">f8", ">i8", "V4", [("a", "<f4"), ("b", "<f4")], [("x", "<f4", (4,))]]


def astype_any(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` in ``dtype``, whatever it is: zeros for a structured dtype (one record per sample),
    float64 zeros where NumPy cannot convert."""
    try:
        dt = np.dtype(dtype)
        if dt.names:
            return np.zeros(a.shape[:1], dt)
        return a.astype(dt)
    except (TypeError, ValueError, OverflowError, RuntimeError):  # Python ints of an object array; short strings as datetimes
        return np.zeros(a.shape, "float64")


def dmut_dtype(arrays, rng, nrng, ctx):
    """An array stored in another dtype (any: float16..longdouble, ints, bool, complex, strings,
    datetimes, big-endian, void, structured)."""
    key = rng.choice(list(arrays))
    dtype = rng.choice(DTYPES)
    arrays[key] = astype_any(arrays[key], dtype)
    return f"{key!r} as {dtype}"


def dmut_values(arrays, rng, nrng, ctx):
    """Non-finite or extreme values (NaN, inf, 1e38, 1e300 in float64, -0.0, denormals, int max) in an array."""
    key = rng.choice(list(arrays))
    a = arrays[key]
    if a.dtype.kind not in "fiu" or not a.size:
        return None
    if a.dtype.kind == "f":
        a = a.astype(rng.choice([a.dtype, np.float64]))
        value = rng.choice([np.nan, np.inf, -np.inf, 1e38, -1e38, 1e300, -0.0, 1e-45, 1e-310])
    else:
        value = rng.choice([np.iinfo(a.dtype).max, np.iinfo(a.dtype).min, -1])
    a = a.copy()
    flat = a.reshape(-1)
    where = nrng.random(flat.size) < rng.choice([0.01, 0.3, 1.0])
    flat[where] = value
    arrays[key] = a
    return f"{key!r}: {int(where.sum())} values {value}"


def dmut_samples(arrays, rng, nrng, ctx):
    """Another number of samples (0, 1, batch-size boundaries), for one array or all of them."""
    n = rng.choice([0, 1, 2, 63, 64, 65, 129])
    keys = list(arrays) if rng.random() < 0.7 else [rng.choice(list(arrays))]
    for key in keys:
        a = arrays[key]
        if a.ndim == 0:
            continue
        reps = -(-n // max(len(a), 1)) if len(a) else 0
        arrays[key] = np.concatenate([a] * max(reps, 1))[:n] if len(a) else a
    return f"{keys} with {n} samples"


def dmut_shape(arrays, rng, nrng, ctx):
    """A wrong shape: zero-size axis, rank 0/1/extra axis, transposed, flattened."""
    key = rng.choice(list(arrays))
    a = arrays[key]
    choice = rng.choice(["zero-axis", "scalar", "flat", "extra", "transpose", "split"])
    if choice == "zero-axis":
        a = np.zeros((len(a) if a.ndim else 3, 0), a.dtype)
    elif choice == "scalar":
        a = np.asarray(a.reshape(-1)[0] if a.size else 0, a.dtype)
    elif choice == "flat":
        a = a.reshape(-1)
    elif choice == "extra":
        a = a[..., None]
    elif choice == "transpose":
        a = a.T.copy()
    elif a.ndim >= 2 and a.shape[-1] % 2 == 0:
        a = a.reshape(a.shape[:-1] + (2, a.shape[-1] // 2))
    arrays[key] = a
    return f"{key!r}: {choice} -> shape {list(a.shape)}"


def dmut_fortran(arrays, rng, nrng, ctx):
    """Store an array in Fortran order."""
    key = rng.choice(list(arrays))
    arrays[key] = np.asfortranarray(arrays[key])
    return f"{key!r} Fortran order"


def dmut_keys(arrays, rng, nrng, ctx):
    """Rename, drop or add arrays: odd names (empty, a path, unicode, 'label'), extra keys."""
    choice = rng.choice(["rename", "drop", "extra", "extra", "only-label"])
    key = rng.choice(list(arrays))
    if choice == "rename":
        arrays[rng.choice(["", "other", "x.npy", "a/b", "../up", "ü", "label", key.upper(), " " + key])] = arrays.pop(key)
    elif choice == "drop":
        del arrays[key]
    elif choice == "extra":
        arrays[rng.choice(["extra", "x2", "labels"])] = nrng.normal(size=(rng.choice([0, 3, 16]), 2)).astype(np.float32)
    else:
        n = len(arrays[key]) if arrays[key].ndim else 1
        arrays.clear()
        arrays["label"] = np.zeros(n, np.int64)
    return f"keys: {choice} {key!r}"


def dmut_label(arrays, rng, nrng, ctx):
    """A ``label`` array of the wrong dtype, shape or length, or with odd ids."""
    n = next((len(a) for a in arrays.values() if a.ndim), 16)
    choice = rng.choice(["float", "2d", "short", "negative", "huge", "bool", "string", "uint64", "scalar", "nan"])
    labels = {"float": np.zeros(n, np.float32), "2d": np.zeros((n, 2), np.int64), "short": np.zeros(max(n - 1, 0), np.int64),
              "negative": -np.ones(n, np.int64), "huge": np.full(n, 2**62, np.int64), "bool": np.ones(n, bool),
              "string": np.array(["a"] * n), "uint64": np.full(n, 2**64 - 1, np.uint64), "scalar": np.asarray(3),
              "nan": np.full(n, np.nan)}[choice]
    arrays["label"] = labels
    return f"label: {choice}"


def dmut_object(arrays, rng, nrng, ctx):
    """An array of Python objects (pickled in the .npy)."""
    key = rng.choice(list(arrays))
    a = arrays[key]
    obj = np.empty(a.shape, object)
    obj.reshape(-1)[:] = [float(v) if a.dtype.kind in "fiu" else 0 for v in a.reshape(-1)] if a.size else []
    arrays[key] = obj
    return f"{key!r} as pickled objects"


DATA_ARRAY_MUTATORS = {dmut_dtype: 6, dmut_values: 6, dmut_samples: 4, dmut_shape: 4, dmut_fortran: 3,
                       dmut_keys: 4, dmut_label: 4, dmut_object: 2}


DATA_TARGETS = {"mlp@ideal": 4, "mlp@mrr-incoherent-8b": 2, "two@ideal": 2, "intin@ideal": 2, "cnn@ideal": 2,
                "digits@mrr-incoherent-8b": 1, "cnn@harsh-4b": 1}


def build_data_case(case: Case, seeds: Seeds, rng: random.Random, nrng) -> None:
    """Valid samples for a seed program's inputs, 1-3 array mutations and sometimes archive damage;
    used by compile --calibration (then simulate), simulate --inputs or verify --inputs."""
    target = seeds.programs[pick(rng, DATA_TARGETS)]
    seed = target.model
    command = pick(rng, {"simulate": 9, "verify": 5, "compile": 6})
    ctx = {"command": command}
    arrays = good_arrays(seed.specs, rng.choice([1, 4, 16, 70]), nrng)
    if rng.random() < 0.3:
        arrays["label"] = nrng.integers(0, 3, len(next(iter(arrays.values()))))
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        for _attempt in range(5):
            try:
                note = pick(rng, DATA_ARRAY_MUTATORS)(arrays, rng, nrng, ctx) if arrays else None
            except (IndexError, ValueError, TypeError, KeyError, OverflowError):
                note = None  # an earlier edit removed what this one edits (or left a dtype its values overflow)
            if note:
                case.notes.append(note)
                break
    members = [(f"{k}.npy", npy_bytes(v)) for k, v in arrays.items()]
    blob = zip_members(members) if rng.random() < 0.5 else savez_bytes(arrays)
    if command == "compile" and any(a.dtype.kind == "f" and a.size and not np.isfinite(a).all()
                                    for k, a in arrays.items() if k != "label"):
        case.expect_refusal = "non-finite calibration data"
    if rng.random() < 0.3 or not members:
        blob, note = archive_mutation(members or [("x.npy", npy_bytes(np.zeros((2, 4), np.float32)))],
                                      seed.specs, rng, nrng)
        case.notes.append(note)
        case.expect_refusal = None  # the archive no longer holds the arrays as they were
    path = case.folder / "in" / rng.choice(["data.npz", "data.npz", "data.npy", "data"])
    path.write_bytes(blob)
    if rng.random() < 0.02:
        path = case.folder / "in"
        case.notes.append("data path is a folder")
    out = case.folder / "out"
    if command == "simulate":
        case.plans.append(simulate_plan(target.path, path, out / "o.npz", seed.path, seed.specs, rng))
    elif command == "verify":
        argv = ["verify", str(target.path), "--inputs", str(path), "--trials", "1"]
        reports = ()
        if rng.random() < 0.3:
            reports = (out / "v.json", out / "v.xml")
            argv += ["--json", str(reports[0]), "--junit", str(reports[1])]
        case.plans.append(Plan(argv, reports, reports))
    else:
        program = out / "c.pcc"
        argv = ["compile", str(seed.path), "-p", target.profile, "--calibration", str(path), "-o", str(program)]
        case.plans.append(Plan(argv, (program,)))
        case.plans.append(simulate_plan(program, seed.data, out / "sim.npz", seed.path, seed.specs, rng, follow=True))
