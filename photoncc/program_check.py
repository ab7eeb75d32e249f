"""What a program's manifest must hold, checked when the program is read, after its checksums.

The checksums catch a damaged file; these checks catch a program that was edited and its checksums
recomputed, or written by another tool: the manifest's structure (every key the readers use, of
its type), the recorded profile (the profile schema), the input and output specs, the dataflow
(every value defined once, before it is read), each instruction (a Bank's tensors, their shapes,
dtypes and finiteness and its attributes; an electronic op's attributes against its kernel), the
known-answer test and the compile report. A program that breaks one is refused with one line
naming the program and what is wrong (a ProgramError), never run into an internal error. The
device rules (weights within reach, positive gains...) are the simulator's, checked as it loads.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from . import ops
from .errors import ProgramError, UserError
from .profile import shown, validated
from .devices.mzi_mesh import LAYOUTS, mzi_count
from .program import BANK_INPUTS, MESH_INPUTS, bank_channels, bank_inputs, mesh_inputs, weight_levels

DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
          "uint64", "bool"}
BITS = range(1, 17)  # the profile schema's converter resolutions


class _Bad(Exception):
    """One thing wrong with the manifest (turned into a ProgramError naming the program)."""


def check_manifest(manifest, tensors: dict, where: str) -> None:
    """Raise ProgramError (``where``: the program) unless ``manifest`` is a program's manifest whose
    every part the compiler's readers use is present, of its type and consistent with ``tensors``."""
    try:
        _check(manifest, tensors)
    except _Bad as e:
        raise ProgramError(f"{where}: invalid program: {e}") from None
    except UserError as e:  # the recorded profile
        raise ProgramError(f"{where}: invalid program: {e}") from None


def _need(condition, what: str) -> None:
    if not condition:
        raise _Bad(what)


def _key(mapping, key: str, kind, where: str):
    _need(isinstance(mapping, dict) and key in mapping, f"{where} has no {key!r}")
    value = mapping[key]
    _need(isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)),
          f"{where}.{key} is not {_kind_name(kind)}")
    return value


def _kind_name(kind) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             (int, float): "a number", (str, type(None)): "a string or null"}
    return names.get(kind, str(kind))


def _integer(value, least: int) -> bool:
    """An int (not a bool: JSON's true is Python's 1) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(manifest, tensors: dict) -> None:
    _need(isinstance(manifest, dict), "the manifest is not a mapping")
    validated(_key(manifest, "profile", dict, "manifest"), "its recorded profile")
    _key(manifest, "photoncc", str, "manifest")
    source = _key(manifest, "source", dict, "manifest")
    _need(isinstance(source.get("source"), (str, type(None))) and isinstance(source.get("sha256"), (str, type(None))),
          "manifest.source does not name the source model")
    batch = manifest.get("batch")
    _need(batch is None or (isinstance(batch, int) and not isinstance(batch, bool) and batch > 0),
          "manifest.batch is not null or a positive integer")
    defined = set(tensors)
    for spec in _key(manifest, "inputs", list, "manifest"):
        _spec(spec, "an input", ranges=True)
        _need(spec["name"] not in defined, f"input {spec['name']!r} is defined twice")
        defined.add(spec["name"])
    for inst in _key(manifest, "instructions", list, "manifest"):
        _instruction(inst, tensors, defined, manifest.get("version"))
    for spec in _key(manifest, "outputs", list, "manifest"):
        _spec(spec, "an output", ranges=False)
        _need(spec["name"] in defined, f"output {spec['name']!r} is computed by no instruction")
    _kat(_key(manifest, "kat", dict, "manifest"), manifest, tensors, defined)
    if "samples" in manifest:
        _samples(_key(manifest, "samples", dict, "manifest"), manifest, tensors)
    if "chip" in manifest:
        chip = _key(manifest, "chip", dict, "manifest")
        for key, kind in (("profile", str), ("kind", str), ("sha256", str)):
            _key(chip, key, kind, "manifest.chip")
    _report(_key(manifest, "report", dict, "manifest"))


def _spec(spec, what: str, ranges: bool) -> None:
    _need(isinstance(spec, dict), f"{what} spec is not a mapping")
    name = _key(spec, "name", str, what)
    shape = _key(spec, "shape", list, f"{what} {name!r}")
    _need(all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape),
          f"{what} {name!r}: its shape is not a list of positive integers")
    _need(isinstance(spec.get("dtype"), str) and spec["dtype"] in DTYPES,
          f"{what} {name!r}: dtype {shown(spec.get('dtype'))} is not a number type")
    if ranges:
        channels = shape[0] if shape else 1  # channels: axis 1 of a batch (the model input's range axis)
        lo, hi = (_key(spec, key, list, f"input {name!r}") for key in ("lo", "hi"))
        _need(len(lo) == len(hi) == channels, f"input {name!r}: lo and hi must hold one value per channel ({channels})")
        unknown = [isinstance(v, float) and math.isnan(v) for v in lo + hi]  # NaN: no range recorded
        _need(all(unknown) or not any(unknown), f"input {name!r}: its range is known for some channels only")
        numbers = [v for v, nan in zip(lo + hi, unknown) if not nan]
        largest = float(np.finfo(spec["dtype"]).max) if np.dtype(spec["dtype"]).kind == "f" else 2.0 ** 64
        _need(all(_finite(v) and abs(v) <= largest for v in numbers),
              f"input {name!r}: its range is not finite numbers of its dtype")
        _need(all(a <= b for a, b in zip(lo, hi) if _finite(a) and _finite(b)), f"input {name!r}: a lo exceeds its hi")


def _instruction(inst, tensors: dict, defined: set, version=1) -> None:
    _need(isinstance(inst, dict), "an instruction is not a mapping")
    name = _key(inst, "name", str, "an instruction")
    where = f"instruction {name!r}"
    op = _key(inst, "op", str, where)
    inputs, outputs = _key(inst, "inputs", list, where), _key(inst, "outputs", list, where)
    attrs = _key(inst, "attrs", dict, where)
    _need(all(isinstance(v, str) for v in inputs + outputs), f"{where}: its inputs and outputs are not names")
    for value in inputs:
        _need(value == "" or value in defined, f"{where} reads {value!r}, which nothing before it defines")
    if op == "Bank":
        _bank(where, inputs, attrs, tensors)
    elif op == "Mesh":
        _need(version == 2, f"{where}: a Mesh instruction needs program format version 2")
        _mesh(where, inputs, attrs, tensors)
    else:
        kernel = ops.kernels().get(op)
        _need(kernel is not None, f"{where}: unknown op {op!r}")
        _kernel_attrs(where, op, kernel, attrs)
    _need(outputs and outputs[0], f"{where} has no output")
    for value in outputs:
        _need(value == "" or value not in defined, f"{where} defines {value!r}, which is defined already")
        defined.add(value)


def _kernel_attrs(where: str, op: str, kernel, attrs: dict) -> None:
    """The attributes must be keyword parameters of the op's kernel (a ufunc takes none)."""
    try:
        parameters = inspect.signature(kernel).parameters
    except (TypeError, ValueError):  # a NumPy ufunc or builtin
        parameters = {}
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(attrs) - {k for k, p in parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)})
    _need(not unknown, f"{where}: {op} takes no attribute {unknown[0]!r}" if unknown else "")


def _bank(where: str, inputs: list, attrs: dict, tensors: dict) -> None:
    _need(5 <= len(inputs) <= len(BANK_INPUTS), f"{where}: a Bank reads x, tiles, gain, lo, alpha (adc, offset)")
    arrays = _arrays(where, bank_inputs(inputs), ("adc", "offset"), tensors)
    tiles, gain, lo, alpha = (arrays[k] for k in ("tiles", "gain", "lo", "alpha"))
    _need(tiles.ndim == 5 and tiles.dtype.kind in "fiu", f"{where}: its tiles are not a 5-D array of weights or codes")
    groups, r, q, b, c = tiles.shape
    _need(gain.ndim == 2 and gain.shape[0] == groups and gain.shape[1] <= r * b,
          f"{where}: its gain is not one value per row of its tiles")
    _need(lo.ndim == 2 and lo.shape[0] == groups and alpha.shape == lo.shape, f"{where}: its lo and alpha differ in shape")
    for key, array in arrays.items():
        _need(array.dtype.kind in ("fiu" if key == "tiles" else "f"), f"{where}: its {key} is not numbers")
        _need(np.isfinite(array).all(), f"{where}: its {key} holds NaN or infinite values")
    if "adc" in arrays:
        _need(arrays["adc"].shape == (groups, r, q, b, 2), f"{where}: its adc is not a range per tile and photodetector")
    if "offset" in arrays:
        _need(arrays["offset"].shape == gain.shape, f"{where}: its offset is not one value per row")
    _need(_finite(attrs.get("shift")) and _finite(attrs.get("carrier", 1.0)) and attrs.get("carrier", 1.0) > 0,
          f"{where}: its shift and carrier must be finite numbers (carrier > 0)")
    _need(isinstance(attrs.get("signed", False), bool), f"{where}: signed is not a boolean")
    for key in ("weight_bits", "input_bits", "output_bits"):
        bits = attrs.get(key)
        _need(bits is None or (isinstance(bits, int) and not isinstance(bits, bool) and bits in BITS),
              f"{where}: {key} is not null or an integer from 1 to 16")
    _need(not attrs.get("weight_bits") or weight_levels(attrs["weight_bits"], bool(attrs.get("signed"))) > 0,
          f"{where}: weight_bits {attrs.get('weight_bits')} leaves a signed ring weight no level besides 0")
    _need(bool(attrs.get("output_bits")) == ("adc" in arrays), f"{where}: an ADC needs its ranges, and ranges an ADC")
    channels = bank_channels(attrs, lo.shape[1]).count
    _need((q - 1) * c < channels <= q * c, f"{where}: its tiles do not hold its {channels} channels")
    if "conv" in attrs:
        _conv(where, attrs["conv"], lo.shape[1])


def _arrays(where: str, named: dict, optional: tuple, tensors: dict) -> dict:
    """An optical instruction's tensors by key (its named inputs but x), each a tensor of the
    program; only the ``optional`` ones may be absent."""
    arrays = {}
    for key, name in list(named.items())[1:]:
        if name:
            _need(name in tensors, f"{where}: its {key} {name!r} is not a tensor of the program")
            arrays[key] = tensors[name]
        else:
            _need(key in optional, f"{where} has no {key}")
    return arrays


def _mesh(where: str, inputs: list, attrs: dict, tensors: dict) -> None:
    _need(8 <= len(inputs) <= len(MESH_INPUTS), f"{where}: a Mesh reads x, phases, screens, atten, gain, bias, lo, alpha (adc)")
    arrays = _arrays(where, mesh_inputs(inputs), ("adc",), tensors)
    ports = attrs.get("ports")
    _need(isinstance(ports, int) and not isinstance(ports, bool) and ports >= 2, f"{where}: ports is not an integer >= 2")
    _need(attrs.get("layout") in LAYOUTS, f"{where}: layout {attrs.get('layout')!r} is not one of {', '.join(LAYOUTS)}")
    _need(_finite(attrs.get("loss_db", 0.0)) and attrs.get("loss_db", 0.0) >= 0, f"{where}: loss_db is not a number >= 0")
    for key in ("phase_bits", "input_bits", "output_bits"):
        bits = attrs.get(key)
        _need(bits is None or (isinstance(bits, int) and not isinstance(bits, bool) and bits in BITS),
              f"{where}: {key} is not null or an integer from 1 to 16")
    phases = arrays["phases"]
    _need(phases.ndim == 6 and phases.shape[3:] == (2, mzi_count(ports), 2),
          f"{where}: its phases are not (G, R, Q, 2, {mzi_count(ports)}, 2): two meshes of {ports} ports")
    groups, r, q = phases.shape[:3]
    shapes = {"screens": (groups, r, q, 2, ports), "atten": (groups, r, q, ports), "gain": (groups, r, q)}
    for key, shape in shapes.items():
        _need(arrays[key].shape == shape, f"{where}: its {key} is not {list(shape)}")
    kind = "u" if attrs.get("phase_bits") else "f"
    for key in ("phases", "screens", "atten"):
        _need(arrays[key].dtype.kind == kind, f"{where}: its {key} are not " +
              ("phase codes" if kind == "u" else "float phases"))
    bias, lo, alpha = arrays["bias"], arrays["lo"], arrays["alpha"]
    _need(bias.ndim == 2 and bias.shape[0] == groups and (r - 1) * ports < bias.shape[1] <= r * ports,
          f"{where}: its bias is not one value per row of its tiles")
    _need(lo.ndim == 2 and lo.shape[0] == groups and alpha.shape == lo.shape and (q - 1) * ports < lo.shape[1] <= q * ports,
          f"{where}: its lo and alpha are not one value per column of its tiles")
    for key, array in arrays.items():
        _need(array.dtype.kind in "fiu", f"{where}: its {key} is not numbers")
        _need(np.isfinite(array).all(), f"{where}: its {key} holds NaN or infinite values")
    if "adc" in arrays:
        _need(arrays["adc"].shape == (groups, r, q, ports, 2), f"{where}: its adc is not a range per tile and port")
    _need(bool(attrs.get("output_bits")) == ("adc" in arrays), f"{where}: an ADC needs its ranges, and ranges an ADC")
    if "conv" in attrs:
        _conv(where, attrs["conv"], lo.shape[1])


def _conv(where: str, conv, k: int) -> None:
    _need(isinstance(conv, dict), f"{where}: conv is not a mapping")
    kernel = conv.get("kernel_shape")
    _need(isinstance(kernel, list) and kernel and all(_integer(v, 1) for v in kernel),
          f"{where}: conv.kernel_shape is not a list of positive integers")
    rank = len(kernel)
    for key, size in (("strides", rank), ("dilations", rank), ("pads", 2 * rank)):
        value = conv.get(key)
        _need(isinstance(value, list) and len(value) == size and all(_integer(v, 0 if key == "pads" else 1)
                                                                     for v in value),
              f"{where}: conv.{key} is not {size} integers")
    group = conv.get("group")
    _need(_integer(group, 1), f"{where}: conv.group is not a positive integer")
    _need(k % int(np.prod(kernel)) == 0, f"{where}: its columns are not whole kernels")


def _kat(kat: dict, manifest: dict, tensors: dict, defined: set) -> None:
    _need(_finite(kat.get("rtol")) and kat["rtol"] >= 0, "kat.rtol is not a number >= 0")
    names = {spec["name"] for spec in manifest["inputs"]}
    outputs = {spec["name"] for spec in manifest["outputs"]}
    _need(set(_key(kat, "inputs", dict, "kat")) == names, "kat.inputs are not the program's inputs")
    _need(set(_key(kat, "outputs", dict, "kat")) == outputs, "kat.outputs are not the program's outputs")
    for group in ("inputs", "outputs", "layers", "statistical", "statistical_layers"):
        if group in kat:
            refs = _key(kat, group, dict, "kat")
            _need(all(isinstance(ref, str) and ref in tensors for ref in refs.values()),
                  f"kat.{group} names a tensor the program does not hold")
            _need(all(tensors[ref].dtype.kind in "fiub" for ref in refs.values()),
                  f"kat.{group} holds a tensor that is not numbers")
            _need(group in ("inputs", "outputs") or set(refs) <= (outputs if group == "statistical" else defined),
                  f"kat.{group} names a value the program does not compute")
    for name, ref in kat["inputs"].items():
        spec = next(s for s in manifest["inputs"] if s["name"] == name)
        value = tensors[ref]
        _need(value.dtype.kind in "fiub" and list(value.shape[1:]) == spec["shape"],
              f"kat.inputs {name!r} is not a batch of the input's shape")


KEPT_SAMPLES = 32  # the most calibration samples a program keeps (emit.KEEP_SAMPLES)


def _samples(samples: dict, manifest: dict, tensors: dict) -> None:
    """The calibration samples a program keeps for verify (``emit.keep_samples``): one batch per
    input, of the input's shape and dtype, all of ``count`` samples."""
    count = _key(samples, "count", int, "samples")
    _need(1 <= count <= KEPT_SAMPLES, f"samples.count is not from 1 to {KEPT_SAMPLES}")
    _key(samples, "source", str, "samples")
    refs = _key(samples, "inputs", dict, "samples")
    _need(set(refs) == {spec["name"] for spec in manifest["inputs"]}, "samples.inputs are not the program's inputs")
    for spec in manifest["inputs"]:
        ref = refs[spec["name"]]
        _need(isinstance(ref, str) and ref in tensors, "samples.inputs names a tensor the program does not hold")
        value = tensors[ref]
        _need(value.dtype.name == spec["dtype"] and list(value.shape) == [count] + spec["shape"],
              f"samples.inputs {spec['name']!r} is not {count} samples of the input's shape and dtype")
        _need(value.dtype.kind not in "fc" or np.isfinite(value).all(), f"samples.inputs {spec['name']!r} holds NaN or infinite values")


def _report(report: dict) -> None:
    """The keys ``inspect`` and the CLI read."""
    mesh = report.get("architecture") == "mzi"
    for key, kind in (("profile", str), ("ports" if mesh else "ring_count", int), ("layers", list), ("electronic_ops", dict),
                      ("optical_layers", int), ("tiles", int), ("latency_us", (int, float)), ("energy_nj", (int, float))):
        _key(report, key, kind, "report")
    macs = report.get("macs")
    _need(macs is None or (isinstance(macs, dict) and all(_integer(macs.get(k), 0) for k in ("optical", "electronic"))
                           and (macs.get("optical_share") is None or _finite(macs["optical_share"]))
                           and isinstance(macs.get("electronic_products") or {}, dict)
                           and all(isinstance(op, str) and _integer(count, 0)
                                   for op, count in (macs.get("electronic_products") or {}).items())),
          "report.macs is not counts of optical and electronic MACs")
    activations = report.get("activations", [])
    _need(isinstance(activations, list) and all(isinstance(a, dict) and all(isinstance(a.get(k), str) for k in
                                                                            ("name", "op", "placement"))
                                                for a in activations), "report.activations is not a list of layers")
    for layer in report["layers"]:
        _need(isinstance(layer, dict), "a report layer is not a mapping")
        layer_keys = ((("mzis", int), ("ports", int)) if mesh else
                      (("rings_used", int), ("ring_count", int), ("shift", (int, float))))
        for key, kind in (("name", str), ("kind", str), ("matrix", list), ("tiles", int), ("alpha", list),
                          ("placement", str)) + layer_keys:
            _key(layer, key, kind, "a report layer")
        _need(len(layer["matrix"]) == 2 and len(layer["alpha"]) == 2 and all(_finite(v) for v in layer["alpha"]),
              "a report layer's matrix or alpha is not a pair of numbers")
        _need(layer.get("sqnr_db") is None or _finite(layer["sqnr_db"]), "a report layer's sqnr_db is not a number")
        if mesh:
            phases = _key(layer, "phases", dict, "a report layer")
            _need(all(_finite(phases.get(k)) for k in ("theta_mean", "theta_std", "near_bar_or_cross")),
                  "a report layer's phases are not three numbers")
            if "chip" in layer:
                _chip_facts(_key(layer, "chip", dict, "a report layer"), "a report layer's chip")
    if mesh and "chip" in report:
        _chip_facts(_key(report, "chip", dict, "report"), "report.chip")


def _chip_facts(facts: dict, where: str) -> None:
    """What error-aware programming found (``report._mesh_report``); the tile errors are absent
    from programs compiled before they were reported."""
    for key in ("unreachable_mzis", "refine_steps"):
        _key(facts, key, int, where)
    _need(all(_finite(facts.get(k)) for k in ("fidelity_before", "fidelity_after")), f"{where}'s fidelity is not numbers")
    _need(("tile_error_before" in facts) == ("tile_error_after" in facts)
          and all(_finite(facts[k]) for k in ("tile_error_before", "tile_error_after") if k in facts),
          f"{where}'s tile error is not a pair of numbers")
