"""Chip border, part 1: chip files (``photoncc/chip.py``) taken apart and written back by hand.

A chip is held as its ``meta`` (a dict, or any value once damaged), its arrays (any dtype, shape
or key) and its checksum; ``chip_bytes`` writes them as an .npz, the checksum recomputed over what
is written (``photoncc.chip``'s rule) or kept as it was, so that an edit reaches the reader's
checks behind the checksum. Each mutator edits the chip in place and returns a note (None:
nothing to edit).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from photoncc.chip import _digest, draw

from .data import astype_any
from .npz import npy_bytes, zip_members


@dataclass
class ChipParts:
    """A chip as its parts: ``meta`` (what the JSON holds), ``arrays``, and how it is written."""
    meta: object
    arrays: dict
    text: str | None = None        # the meta member's text when edited as text (else json.dumps(meta))
    meta_array: object = None      # the meta member itself when it is not a 0-d string
    sha: object = None             # the checksum member when edited (else recomputed or the original's)
    recompute: bool = True         # the checksum recomputed over what is written

    def meta_text(self) -> str:
        if self.text is not None:
            return self.text
        try:
            return json.dumps(self.meta, sort_keys=True)
        except (TypeError, ValueError):
            return json.dumps(str(self.meta))


def parts_of(profile, seed: int) -> ChipParts:
    """The chip ``photoncc chip PROFILE --seed SEED`` writes, as parts."""
    chip = draw(profile, seed)
    meta = json.loads(chip.text)
    return ChipParts(meta, {k: np.asarray(v, np.float64) for k, v in chip.arrays.items()}, sha=None)


def chip_bytes(parts: ChipParts, original_sha: str | None = None) -> bytes:
    """The chip file of ``parts``: its checksum recomputed over the arrays as written when
    ``parts.recompute`` (else ``original_sha``, the checksum of the chip before the edits)."""
    text = parts.meta_text()
    meta = parts.meta_array if parts.meta_array is not None else np.array(text)
    if parts.sha is not None:
        sha = parts.sha
    elif parts.recompute:
        try:
            sha = np.array(_digest(text, parts.arrays))
        except (TypeError, ValueError, UnicodeError):
            sha = np.array("0" * 64)
    else:
        sha = np.array(original_sha or "0" * 64)
    members = {"meta": meta, "sha256": sha, **parts.arrays}
    return zip_members([(f"{key}.npy", npy_bytes(np.asarray(value))) for key, value in sorted(members.items())])


# ---------------------------------------------------------------------- array mutators

ODD_FLOATS = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e6, -1e6, 2 * math.pi, 100.0, -0.0, 5e-324, 1.0, -1.0,
              1.0000001, 1.5, -2.0, 1e10]


def as_floats(value) -> np.ndarray | None:
    """A float64 copy of an array an earlier mutation left, or None where it holds no numbers
    (objects, strings, ragged sequences: chips 4132 and 8717 of the second and third campaigns)."""
    try:
        return np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        return None


def amut_values(parts, rng, nrng, ctx):
    """Odd values in one array: NaN, inf, 1e300, 1e6, 2 pi, denormals, just past 1, -2... (in
    ``ctx["accepted"]`` cases finite ones only)."""
    key = rng.choice(sorted(parts.arrays))
    a = as_floats(parts.arrays[key])
    if a is None:
        return None
    value = rng.choice(ODD_FLOATS[3:] if ctx.get("accepted") else ODD_FLOATS)
    flat = a.reshape(-1)
    if flat.size:
        where = nrng.random(flat.size) < rng.choice([0.01, 0.2, 1.0])
        where[rng.randrange(flat.size)] = True
        flat[where] = value
    parts.arrays[key] = a
    return f"{key}: values {value}"


def amut_splitter(parts, rng, nrng, ctx):
    """Splitting errors at or past their physical range [-1, 1] (a coupler passing more than all
    of its light, or none)."""
    keys = [k for k in ("e1", "e2") if k in parts.arrays]
    if not keys:
        return None
    key = rng.choice(keys)
    a = as_floats(parts.arrays[key])
    if a is None or not a.size:
        return None
    value = rng.choice([1.0, -1.0, 1.0 + 1e-12, 1.5, -1.5, 3.0, -40.0])
    a.reshape(-1)[rng.randrange(a.size)] = value
    parts.arrays[key] = a
    return f"{key}: one splitting error {value}"


def amut_scale(parts, rng, nrng, ctx):
    """One array scaled far beyond its profile's errors (phase offsets of radians, losses of
    hundreds of dB, ring offsets beyond the weight range)."""
    key = rng.choice(sorted(parts.arrays))
    factor = rng.choice([0.0, -1.0, 50.0, 1e4, 1e8, 1e-300])
    a = as_floats(parts.arrays[key])
    if a is None:
        return None
    parts.arrays[key] = a * factor + rng.choice([0.0, 1.0, -3.0, 300.0])
    return f"{key}: scaled by {factor}"


DTYPES = ["float32", "float16", "longdouble", "int64", "int8", "uint8", "bool", "complex128", ">f8", "<U4", "S4",
          "V8", "datetime64[s]", [("a", "<f8")], "object"]


def amut_dtype(parts, rng, nrng, ctx):
    """One array stored in another dtype (float32, ints, complex, big-endian, strings, structured,
    Python objects)."""
    key = rng.choice(sorted(parts.arrays))
    dtype = rng.choice(DTYPES)
    a = np.asarray(parts.arrays[key])
    if dtype == "object":
        obj = np.empty(a.shape, object)
        obj.reshape(-1)[:] = list(a.reshape(-1))
        parts.arrays[key] = obj
    else:
        parts.arrays[key] = astype_any(a, dtype)
    return f"{key} as {dtype}"


def amut_shape(parts, rng, nrng, ctx):
    """One array of another shape: transposed, flattened, an extra axis, a row short, empty, 0-d."""
    key = rng.choice(sorted(parts.arrays))
    a = np.asarray(parts.arrays[key])
    choice = rng.choice(["transpose", "flat", "extra", "short", "long", "empty", "scalar", "one"])
    if choice == "transpose":
        a = a.T.copy()
    elif choice == "flat":
        a = a.reshape(-1)
    elif choice == "extra":
        a = a[..., None]
    elif choice == "short" and a.ndim:
        a = a[..., :-1]
    elif choice == "long" and a.ndim:
        a = np.concatenate([a, a[..., :1]], axis=-1)
    elif choice == "empty":
        a = np.zeros(a.shape[:-1] + (0,) if a.ndim else (0,))
    elif choice == "scalar":
        a = np.asarray(a.reshape(-1)[0] if a.size else 0.0)
    else:
        a = a.reshape((1,) + a.shape)
    parts.arrays[key] = a
    return f"{key}: {choice} -> shape {list(a.shape)}"


def amut_keys(parts, rng, nrng, ctx):
    """An array dropped, renamed or added (the other architecture's, an unknown one, 'meta2')."""
    choice = rng.choice(["drop", "rename", "extra", "other-family"])
    key = rng.choice(sorted(parts.arrays))
    if choice == "drop":
        del parts.arrays[key]
    elif choice == "rename":
        parts.arrays[rng.choice(["Theta", "theta ", "x", "sha256x", "offsets", ""])] = parts.arrays.pop(key)
    elif choice == "extra":
        parts.arrays[rng.choice(["gain", "extra", "meta2", "label"])] = np.zeros(3)
    else:
        other = {"offset": np.zeros((12, 12)), "crosstalk": np.array(0.01)} if "theta" in parts.arrays else \
            {k: np.zeros((2, 120)) for k in ("theta", "phi", "e1", "e2", "loss_db")} | {"screen": np.zeros((2, 16))}
        parts.arrays.update(rng.choice([other, dict([next(iter(other.items()))])]))
    return f"arrays: {choice} {key!r}"


def amut_crosstalk(parts, rng, nrng, ctx):
    """A ring chip's crosstalk at or past its bound [0, 0.5), or of another shape."""
    if "crosstalk" not in parts.arrays:
        return None
    if ctx.get("accepted"):
        value, shape = rng.choice([0.0, 0.4999999, 1e-320, float(np.nextafter(0.5, 0)), 0.3]), ()
    else:
        value = rng.choice([0.0, 0.4999999, 0.5, 0.75, -1e-300, -0.01, 1e-320, float(np.nextafter(0.5, 0))])
        shape = () if rng.random() < 0.8 else (1,)
    parts.arrays["crosstalk"] = np.full(shape, value)
    return f"crosstalk {value!r}"


ARRAY_MUTATORS = {amut_values: 5, amut_splitter: 3, amut_scale: 3, amut_dtype: 3, amut_shape: 3, amut_keys: 2,
                  amut_crosstalk: 2}


# ---------------------------------------------------------------------- meta mutators

ODD_META = [None, "", 0, 1, 2, -1, 1.5, True, 2**64, 10**30, float("nan"), float("inf"), [], {}, [1], {"a": 1},
            "x" * 3000, "mzi", "incoherent", "balanced", "photoncc-chip", "estimate", "drawn", "ü"]


def mmut_field(parts, rng, nrng, ctx):
    """A meta key set to a value of any type (format, version, profile, architecture, seed, kind...)."""
    if not isinstance(parts.meta, dict):
        return None
    key = rng.choice(["format", "version", "profile", "architecture", "seed", "kind", "measurements", "photoncc",
                      "sizes"])
    parts.meta[key] = rng.choice(ODD_META)
    return f"meta.{key} = {str(parts.meta[key])[:30]!r}"


def mmut_sizes(parts, rng, nrng, ctx):
    """The meta's sizes: floats, booleans, strings, the other family's, huge, negative, extra keys,
    mesh layouts (another, unknown, not a string)."""
    if not isinstance(parts.meta, dict):
        return None
    parts.meta["sizes"] = rng.choice([{"ports": 16.0}, {"ports": 4}, {"ports": True}, {"ports": "16"},
                                      {"ports": 2**62}, {"ports": -3}, {"ports": 0}, {"ports": 1e300},
                                      {"banks": 12, "rings": 12}, {"banks": 12.0, "rings": 12.0},
                                      {"banks": 0, "rings": 5}, {"ports": 16, "extra": 1}, [], None, {}, "16",
                                      {"ports": [16]}, {"ports": float("nan")}, {"ports": 6, "layout": "reck"},
                                      {"ports": 16, "layout": "clements"}, {"ports": 16, "layout": "hexagon"},
                                      {"ports": 16, "layout": None}, {"ports": 16, "layout": ["reck"]}])
    return f"meta.sizes = {parts.meta['sizes']!r}"


def mmut_relabel(parts, rng, nrng, ctx):
    """The meta claims the case's profile (name, architecture and sizes) whatever the arrays are:
    a chip of another profile or size passing as this one."""
    if not isinstance(parts.meta, dict):
        return None
    target = ctx["profile"]
    from photoncc.chip import sizes
    parts.meta.update({"profile": target["name"], "architecture": target["architecture"], "sizes": sizes(target)})
    return f"meta relabelled as {target['name']!r}"


def mmut_keys(parts, rng, nrng, ctx):
    """A meta key deleted, or an unknown one added."""
    if not isinstance(parts.meta, dict) or not parts.meta:
        return None
    if rng.random() < 0.6:
        key = rng.choice(sorted(parts.meta))
        del parts.meta[key]
        return f"meta: deleted {key!r}"
    parts.meta[rng.choice(["extra", "", "Format", "sizes2"])] = rng.choice(ODD_META)
    return "meta: an unknown key"


def mmut_text(parts, rng, nrng, ctx):
    """The meta text itself: invalid or truncated JSON, another top level, NaN literals, a
    5000-digit number, nesting 100000 deep, lone surrogates."""
    text = parts.meta_text()
    choice = rng.choice(["truncate", "array", "string", "number", "nan", "digits", "deep", "deep-dict", "surrogate",
                         "empty", "duplicate-key"])
    parts.text = {
        "truncate": text[:rng.randrange(max(len(text), 1))],
        "array": "[1, 2, 3]", "string": '"photoncc-chip"', "number": "1",
        "nan": text.replace('"seed": ', '"seed": NaN, "x": ') if '"seed": ' in text else "NaN",
        "digits": text.replace('"version": 1', '"version": 1' + "0" * 5000),
        "deep": "[" * 100000 + "]" * 100000,
        "deep-dict": '{"a": ' * 50000 + "1" + "}" * 50000,
        "surrogate": text.replace('"profile": "', '"profile": "\\ud800'),
        "empty": "",
        "duplicate-key": text[:-1] + ', "format": "other"}' if text.endswith("}") else text,
    }[choice]
    return f"meta text: {choice}"


def mmut_member(parts, rng, nrng, ctx):
    """The meta or checksum member of another dtype or shape (bytes, 1-d, a number), or missing."""
    which = rng.choice(["meta", "sha256"])
    text = parts.meta_text() if which == "meta" else "0" * 64
    value = rng.choice([np.array(text.encode("utf-8", "replace")), np.array([text]), np.array(3.0),
                        np.array([text, text]), np.zeros((0,), "<U1")])
    if which == "meta":
        parts.meta_array = value
    else:
        parts.sha = value
    return f"{which} member: {value.dtype} shape {list(value.shape)}"


# edits that keep the file's format (finite float64 arrays of the right shapes): what they do to
# the compiler, the simulator and calibration is what is tested
ACCEPTED_MUTATORS = {amut_values: 4, amut_splitter: 3, amut_scale: 3, amut_crosstalk: 1, mmut_relabel: 1}

META_MUTATORS = {mmut_field: 4, mmut_sizes: 3, mmut_relabel: 3, mmut_keys: 2, mmut_text: 2, mmut_member: 1}
