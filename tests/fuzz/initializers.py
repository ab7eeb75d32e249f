"""Model border, part 2: mutators of a model's initializers (weights) and element types:
declared dims, data types, raw bytes, non-finite or extreme values, external data.

Each mutator edits the ModelProto in place and returns a note of what it did (None: nothing to
edit in this model).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, numpy_helper


def _initializers(model):
    return list(model.graph.initializer)


def _float_inits(model):
    return [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT]


def drop_one(repeated, rng) -> str | None:
    """Remove one entry of a repeated protobuf field; its name, or None when it is empty."""
    if not len(repeated):
        return None
    index = rng.randrange(len(repeated))
    name = repeated[index].name
    del repeated[index]
    return name


def mut_drop_initializer(model, rng, ctx):
    """Remove one initializer (its value is then undefined)."""
    name = drop_one(model.graph.initializer, rng)
    return None if name is None else f"removed initializer {name!r}"


def mut_initializer_dims(model, rng, ctx):
    """Declare other dims on an initializer, keeping its data: huge, zero, negative, extra, permuted."""
    inits = _initializers(model)
    if not inits:
        return None
    t = rng.choice(inits)
    dims = list(t.dims)
    choice = rng.choice(["huge", "zero", "negative", "extra", "drop", "swap", "scalar"])
    if choice == "huge":
        dims = [rng.choice([10**6, 2**31, 10**12, 2**62])] + dims[1:]
    elif choice == "zero":
        dims = [0] + dims[1:]
    elif choice == "negative":
        dims = [-3] + dims[1:]
    elif choice == "extra":
        dims = dims + [1]
    elif choice == "drop":
        dims = dims[:-1]
    elif choice == "swap":
        dims = dims[::-1]
    else:
        dims = []
    del t.dims[:]
    t.dims.extend(dims)
    return f"initializer {t.name!r}: dims {dims} ({choice})"


ELEM_TYPES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 21, 23, 99]


def mut_elem_type(model, rng, ctx):
    """Change the element type of a graph input/output (elem_type) or an initializer (data_type)."""
    new = rng.choice(ELEM_TYPES)
    if rng.random() < 0.5 and len(model.graph.initializer):
        t = rng.choice(list(model.graph.initializer))
        t.data_type = new
        return f"initializer {t.name!r}: data_type {new}"
    values = [v for v in list(model.graph.input) + list(model.graph.output) if v.type.HasField("tensor_type")]
    if not values:
        return None
    value = rng.choice(values)
    value.type.tensor_type.elem_type = new
    return f"{value.name!r}: elem_type {new}"


def _to_raw(t) -> None:
    """Store an initializer's values in raw_data (as exporters usually do)."""
    if not t.HasField("raw_data") and t.data_location != TensorProto.EXTERNAL:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))


def mut_truncate_raw(model, rng, ctx):
    """Cut an initializer's raw_data short (or lengthen it by a few bytes)."""
    inits = [t for t in _initializers(model) if t.data_location != TensorProto.EXTERNAL]
    if not inits:
        return None
    t = rng.choice(inits)
    _to_raw(t)
    raw = t.raw_data
    if rng.random() < 0.8:
        t.raw_data = raw[:rng.randrange(len(raw))] if raw else b""
        return f"initializer {t.name!r}: raw_data cut to {len(t.raw_data)} of {len(raw)} bytes"
    t.raw_data = raw + bytes(rng.choice([1, 3, 4, 8]))
    return f"initializer {t.name!r}: raw_data longer than its dims"


def _inline_float_init(model, rng):
    """One float initializer whose data is in the model file, or None."""
    inits = [t for t in _float_inits(model) if t.data_location != TensorProto.EXTERNAL]
    return rng.choice(inits) if inits else None


def mut_weights(model, rng, ctx):
    """Put NaN, inf, huge or denormal values into a float initializer."""
    t = _inline_float_init(model, rng)
    if t is None:
        return None
    a = numpy_helper.to_array(t).copy()
    if not a.size:
        return None
    value = rng.choice([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, 0.0])
    flat = a.reshape(-1)
    flat[rng.randrange(flat.size) if rng.random() < 0.7 else slice(None)] = value
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    return f"initializer {t.name!r}: values {value}"


def mut_scale_weights(model, rng, ctx):
    """Scale a float initializer by an extreme factor (1e-30, 1e-6, 0, -1, 1e6, 1e30)."""
    t = _inline_float_init(model, rng)
    if t is None:
        return None
    factor = rng.choice([1e-30, 1e-6, 0.0, -1.0, 1e6, 1e30])
    t.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(t) * np.float32(factor)).astype(np.float32), t.name))
    return f"initializer {t.name!r} x {factor:g}"


def mut_external_data(model, rng, ctx):
    """Move initializers to an external data file, then give one entry an odd location (outside the
    model's folder: ``../``, absolute, /etc/passwd, a link out of the folder; missing; a folder) or
    an offset/length beyond the file or not a number."""
    inits = [t for t in _initializers(model) if t.data_location != TensorProto.EXTERNAL]
    if not inits:
        return None
    folder: Path = ctx["folder"]
    chosen = rng.sample(inits, k=rng.randint(1, len(inits)))
    blob = bytearray()
    for t in chosen:
        _to_raw(t)
        raw = t.raw_data
        offset = len(blob)
        blob += raw + bytes(-len(raw) % 16)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(len(raw)))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
    (folder / "weights.bin").write_bytes(bytes(blob))
    victim = rng.choice(chosen)
    entries = {e.key: e for e in victim.external_data}
    what = rng.choice(["valid", "outside", "absolute", "passwd", "link", "missing", "folder", "empty",
                       "offset", "length", "garbage", "traverse-back"])
    outside = folder.parent / "secret.bin"
    if what in ("outside", "absolute", "link"):
        outside.write_bytes(bytes(blob))
    if what == "outside":
        entries["location"].value = "../secret.bin"
        ctx["refuse"] = "external data outside the model's folder (../secret.bin)"
    elif what == "absolute":
        entries["location"].value = str(outside)
        ctx["refuse"] = "external data at an absolute path outside the model's folder"
    elif what == "passwd":
        entries["location"].value = rng.choice(["/etc/passwd", "../../../../../../../../etc/passwd"])
        ctx["refuse"] = "external data from /etc/passwd"
    elif what == "link":
        (folder / "link.bin").unlink(missing_ok=True)  # a second external-data edit of the same case
        (folder / "link.bin").symlink_to(outside)
        entries["location"].value = "link.bin"
    elif what == "missing":
        entries["location"].value = "missing.bin"
    elif what == "folder":
        (folder / "adir").mkdir(exist_ok=True)
        entries["location"].value = rng.choice(["adir", "."])
    elif what == "empty":
        entries["location"].value = ""
    elif what == "offset":
        entries["offset"].value = str(rng.choice([len(blob), len(blob) + 4096, 2**62, -4]))
    elif what == "length":
        entries["length"].value = str(rng.choice([len(blob) * 2, 2**40, 0, -1]))
    elif what == "garbage":
        entries[rng.choice(["offset", "length"])].value = rng.choice(["abc", "1e3", "", " 4"])
    elif what == "traverse-back":
        entries["location"].value = "adir/../weights.bin"
        (folder / "adir").mkdir(exist_ok=True)
    return f"{len(chosen)} initializer(s) external; {victim.name!r}: {what}"
