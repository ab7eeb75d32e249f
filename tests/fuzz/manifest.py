"""Program border, part 2: edits of a program's manifest and tensors (values anywhere,
instructions, attributes, input/output specs, the recorded profile, the known-answer test,
tensor values, dtypes and shapes), written back with their checksums recomputed so that they
get past ``Program.read`` to the checks behind it.

Each mutator edits ``manifest`` and ``tensors`` in place and returns a note (None: nothing to
edit).
"""
from __future__ import annotations

import copy
import random

import numpy as np

from photoncc.ops import kernels
from photoncc.profile import NOISE, SCHEMA

from .data import astype_any


def _json_paths(node, prefix=()):
    """Every path to a value of a JSON document (dict keys and list indices)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _json_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node[:64]):
            yield prefix + (index,)
            yield from _json_paths(value, prefix + (index,))


def _json_parent(doc, path):
    for key in path[:-1]:
        doc = doc[key]
    return doc


JSON_ODD = [None, "", "x", [], {}, True, False, 0, -1, 1, 2**64, 1e308, float("nan"), float("inf"), -float("inf"),
            [1, 2], {"a": 1}, "float32", "Bank", 0.5, -0.5]


def jmut_value(manifest, tensors, rng, ctx):
    """A manifest value (anywhere but the tensors table) deleted, or of another type, or a number
    scaled/negated/NaN."""
    paths = [p for p in _json_paths(manifest) if p[0] not in ("tensors", "format", "version")]
    path = rng.choice(paths)
    parent = _json_parent(manifest, path)
    old = parent[path[-1]]
    r = rng.random()
    if r < 0.25:
        del parent[path[-1]]
        return f"manifest {'.'.join(map(str, path))}: deleted"
    if isinstance(old, (int, float)) and not isinstance(old, bool) and r < 0.7:
        new = rng.choice([old * -1, old * 1e6, old + 1, 0, float("nan"), float("inf"), old / 3, 2**63])
    else:
        new = rng.choice(JSON_ODD)
    parent[path[-1]] = new
    return f"manifest {'.'.join(map(str, path))}: {str(old)[:30]} -> {str(new)[:30]}"


PROGRAM_OPS = sorted(kernels()) + ["Bank"]  # every op an instruction may name


def jmut_instructions(manifest, tensors, rng, ctx):
    """Reorder, remove, duplicate or reverse instructions; change one's op, inputs or outputs."""
    inst = manifest["instructions"]
    if not inst:
        return None
    choice = rng.choice(["swap", "remove", "duplicate", "reverse", "op", "input", "output", "empty"])
    i = rng.randrange(len(inst))
    if choice == "swap" and len(inst) > 1:
        j = rng.randrange(len(inst))
        inst[i], inst[j] = inst[j], inst[i]
    elif choice == "remove":
        del inst[i]
    elif choice == "duplicate":
        inst.insert(rng.randrange(len(inst) + 1), copy.deepcopy(inst[i]))
    elif choice == "reverse":
        inst.reverse()
    elif choice == "op":  # another function: the seed's model no longer explains its outputs (Atanh of 2 is NaN)
        inst[i]["op"] = rng.choice(PROGRAM_OPS + ["Nope", "", "bank"])
        ctx["unexplained"] = True
    elif choice == "input" and inst[i]["inputs"]:
        k = rng.randrange(len(inst[i]["inputs"]))
        inst[i]["inputs"][k] = rng.choice(["", "missing", rng.choice(list(tensors)),
                                           rng.choice(manifest["inputs"])["name"] if manifest["inputs"] else "x"])
    elif choice == "output" and inst[i]["outputs"]:
        others = [o for n in inst for o in n["outputs"]] + [s["name"] for s in manifest["inputs"]] + list(tensors)
        inst[i]["outputs"][0] = rng.choice(others + ["", "new"])
    elif choice == "empty":
        inst.clear()
    else:
        return None
    return f"instructions: {choice} #{i}"


ATTR_ODD = {"shift": [float("nan"), -1.0, 1e30, float("inf"), "1", None],
            "carrier": [0.0, -1.0, float("nan"), 1e30, float("inf")],
            "weight_bits": [0, 1, 17, 64, None, True, "8", 2.5, -8],
            "input_bits": [0, 1, 17, 64, None, True, 2.5],
            "output_bits": [0, 1, 17, 64, None, True, 2.5],
            "signed": [True, False, 1, "yes"],
            "axis": [5, -9, 1.5, None], "perm": [[0], [1, 0], [0, 0]], "shape": [[-1], [0], [7], [2, 2], [10**9]],
            "to": ["bogus", "object", "complex128", "float16", "bool"], "legacy": [None, 2],
            "min": [float("nan"), 1e30], "max": [float("nan"), -1e30], "alpha": [float("nan"), float("inf")],
            "epsilon": [-1.0, float("nan"), 0.0]}


CONV_ODD = {"kernel_shape": [[0, 0], [100, 100], [3], [1, 1, 1]], "strides": [[0, 0], [-1, 1], [10**6, 1]],
            "pads": [[-1, -1, -1, -1], [0, 0], [10**6, 0, 0, 0]], "dilations": [[0, 0], [10**6, 1]],
            "group": [0, 2, -1, 1.5]}


def jmut_attrs(manifest, tensors, rng, ctx):
    """An instruction attribute (Bank shift/carrier/bits/signed/conv, axis, perm, shape, Cast to...)
    set to an odd value."""
    insts = [i for i in manifest["instructions"] if i.get("attrs") is not None]
    if not insts:
        return None
    inst = rng.choice(insts)
    attrs = inst["attrs"]
    if "conv" in attrs and isinstance(attrs["conv"], dict) and rng.random() < 0.5:
        key = rng.choice(list(CONV_ODD))
        attrs["conv"][key] = rng.choice(CONV_ODD[key])
        return f"{inst['name']!r} conv.{key} = {attrs['conv'][key]!r}"
    keys = [k for k in attrs if k in ATTR_ODD] or list(ATTR_ODD)
    key = rng.choice(keys)
    attrs[key] = rng.choice(ATTR_ODD.get(key, JSON_ODD))
    return f"{inst['name']!r} attrs.{key} = {attrs[key]!r}"


def jmut_io_spec(manifest, tensors, rng, ctx):
    """A program input/output spec with another shape, dtype, name or range (lo/hi NaN, short, strings)."""
    kind = rng.choice(["inputs", "outputs"])
    specs = manifest[kind]
    if not specs:
        return None
    spec = rng.choice(specs)
    choice = rng.choice(["shape", "dtype", "name", "range"] if kind == "inputs" else ["shape", "dtype", "name"])
    if choice == "shape":
        spec["shape"] = rng.choice([[], [0], [1], [10**6], [-1], [4, 4], spec["shape"] + [1], "4", None])
    elif choice == "dtype":
        spec["dtype"] = rng.choice(["float16", "float64", "int64", "bool", "complex64", "bogus", "object", "", None])
    elif choice == "name":
        spec["name"] = rng.choice(["", "other", specs[0]["name"], None, 3])
    else:
        key = rng.choice(["lo", "hi"])
        spec[key] = rng.choice([[float("nan")] * len(spec[key]), [float("inf")] * len(spec[key]), [], [0.0],
                                ["a"] * len(spec[key]), None, 1.0, [1e308] * len(spec[key])])
    return f"{kind} {spec.get('name')!r}: {choice}"


def jmut_profile(manifest, tensors, rng, ctx):
    """The program's recorded profile changed: bank shape, architecture, precision, noise (NaN,
    inf, negative), verify thresholds, keys removed."""
    p = manifest["profile"]
    choice = rng.choice(["bank", "architecture", "precision", "noise", "verify", "drop", "activation"])
    if choice == "bank":
        p["bank"][rng.choice(["banks", "rings"])] = rng.choice([1, 13, 0, -1, 10**9, None, "12"])
    elif choice == "architecture":
        p["architecture"] = rng.choice(["balanced", "incoherent", "coherent", None])
        if p["architecture"] == "balanced":
            p["bank"].setdefault("weight_range", rng.choice([[-1.0, 1.0], [-0.1, 0.1], None]))
    elif choice == "precision":
        p["precision"][rng.choice(list(SCHEMA["precision"]))] = rng.choice([None, 1, 4, 8, 16, 0, 33])
    elif choice == "noise":
        p["noise"][rng.choice(NOISE + ("seed",))] = rng.choice(
            [0.0, 0.5, 10.0, -0.1, float("nan"), float("inf"), 1e300, -1, 2**64, None])
    elif choice == "verify":
        section = rng.choice(["verify", "quantised", "noisy"])
        target = p["verify"] if section == "verify" else p["verify"].get(section, {})
        if isinstance(target, dict) and target:
            target[rng.choice(list(target))] = rng.choice([0, 1, -1, 10**9, float("nan"), "auto", None, 1.5])
    elif choice == "activation":
        p["activation"] = rng.choice([{"kind": "photonic_sigmoid"}, {"kind": "nope"}, None, {}])
    else:
        section = rng.choice([k for k in p if k not in ("name",)])
        del p[section]
        return f"profile: removed {section}"
    return f"profile: {choice}"


def jmut_kat(manifest, tensors, rng, ctx):
    """The known-answer test changed: rtol NaN/negative/huge, inputs or answers pointing elsewhere,
    sections removed."""
    kat = manifest["kat"]
    choice = rng.choice(["rtol", "inputs", "outputs", "drop", "layers"])
    if choice == "rtol":
        kat["rtol"] = rng.choice([float("nan"), -1.0, 1e300, float("inf"), "x", None, 0])
    elif choice in ("inputs", "outputs") and kat.get(choice):
        key = rng.choice(list(kat[choice]))
        kat[choice][key] = rng.choice(["missing", rng.choice(list(tensors)), None, 3])
    elif choice == "drop":
        key = rng.choice(list(kat))
        del kat[key]
        return f"kat: removed {key}"
    elif choice == "layers":
        kat["layers"] = rng.choice([{}, {"nope": rng.choice(list(tensors))}, None])
    else:
        return None
    return f"kat: {choice}"


def _odd_array(a: np.ndarray, rng: random.Random, nrng) -> tuple[np.ndarray, str]:
    """Another array for tensor ``a``: odd values (NaN, inf, negative, > 1, zero, huge) in the same
    shape and dtype, or another dtype, shape or size."""
    choice = rng.choice(["nan", "inf", "negative", "above-one", "zeros", "huge", "tiny", "dtype", "dtype",
                         "shape", "empty", "scalar", "random"])
    b = np.array(a, copy=True)
    if choice in ("nan", "inf", "negative", "above-one", "huge", "tiny") and b.dtype.kind == "f" and b.size:
        value = {"nan": np.nan, "inf": np.inf, "negative": -0.5, "above-one": 1.5, "huge": 1e30, "tiny": 1e-40}[choice]
        flat = b.reshape(-1)
        flat[nrng.random(flat.size) < rng.choice([0.05, 1.0]) if flat.size > 1 else slice(None)] = value
        return b, choice
    if choice == "zeros":
        return np.zeros_like(b), choice
    if choice == "dtype":
        dtype = rng.choice(["float16", "float64", "int32", "int8", "uint8", "bool", "complex64", "<U3",
                            [("a", "<f4")], ">f4"])
        return astype_any(b, dtype) if np.dtype(dtype).names is None else np.zeros(b.shape, dtype), f"dtype {dtype}"
    if choice == "shape":
        if b.ndim >= 2:
            return b.T.copy(), "transposed"
        return b.reshape(b.shape + (1,)), "extra axis"
    if choice == "empty":
        return np.zeros((0,) + b.shape[1:], b.dtype), "empty"
    if choice == "scalar":
        return np.asarray(1.0, b.dtype if b.dtype.kind in "fiub" else np.float32), "scalar"
    if b.dtype.kind in "fc":
        return (nrng.normal(size=b.shape) * 10).astype(b.dtype), "random values"
    return b, "unchanged"


OPTICAL_OPS = ("Bank", "Mesh")  # their settings are checked against the device's rules; other ops' constants are not


def jmut_tensor(manifest, tensors, rng, ctx):
    """A tensor replaced by an array of odd values, another dtype or another shape. A constant of an
    electronic op may hold any value (-inf masks are common), so a NaN it gives the outputs is the
    program's own: the seed model no longer explains them."""
    name = rng.choice(sorted(tensors))
    tensors[name], what = _odd_array(tensors[name], rng, ctx["nrng"])
    if name not in _optical_inputs(manifest):
        ctx["unexplained"] = True
    return f"tensor {name!r}: {what}"


def _optical_inputs(manifest) -> set:
    """The names the Bank and Mesh instructions read (none where earlier edits left no such list)."""
    names = set()
    instructions = manifest.get("instructions") if isinstance(manifest, dict) else None
    for inst in instructions if isinstance(instructions, list) else []:
        inputs = inst.get("inputs") if isinstance(inst, dict) and inst.get("op") in OPTICAL_OPS else None
        if isinstance(inputs, list):
            names.update(x for x in inputs if isinstance(x, str))
    return names


def jmut_tensor_set(manifest, tensors, rng, ctx):
    """A tensor removed from the program, or an extra one added."""
    if rng.random() < 0.6 and tensors:
        name = rng.choice(sorted(tensors))
        del tensors[name]
        return f"tensor {name!r} removed"
    tensors[rng.choice(["extra", "", "a/b", "kat/x"])] = np.zeros((2, 2), np.float32)
    return "extra tensor"


PROGRAM_MUTATORS = {jmut_value: 8, jmut_instructions: 4, jmut_attrs: 5, jmut_io_spec: 4, jmut_profile: 5,
                    jmut_kat: 3, jmut_tensor: 8, jmut_tensor_set: 2}
