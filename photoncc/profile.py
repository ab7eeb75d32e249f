"""Hardware profiles: YAML files describing the photonic device a program is compiled for.

A profile is a built-in name (``photoncc profiles`` lists them; the files are in ``hwprofiles/``) or
a path to a YAML file. A file may ``extends:`` a built-in profile and override some keys. Every key
is checked against ``SCHEMA``: an unknown key is reported with its path and the nearest valid key,
a wrong type or out-of-range value with its path and what is allowed. The field-by-field reference
is docs/profiles.md.
"""
from __future__ import annotations

import copy
import difflib
import math
import reprlib
from pathlib import Path

import yaml

from .devices import ARCHITECTURES
from .devices.mzi_mesh import LAYOUTS
from .errors import UserError
from .program import weight_levels

FORMAT = 1
_HERE = Path(__file__).resolve().parent
BUILTIN_DIR = next(p for p in (_HERE / "hwprofiles", _HERE.parent / "hwprofiles", _HERE) if p.is_dir())


MAX_BANK = 4096  # banks or rings: real chips hold tens to hundreds; beyond this the compile's arrays explode
MAX_SIGMA = 1.0  # a noise sigma is a fraction of full scale


def _is_number(v) -> bool:
    """A finite int or float (YAML's .inf and .nan are not, nor an int beyond float's range;
    booleans are not numbers)."""
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an int of 309 digits or more
        return False


def _trials(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1000, "an integer from 1 to 1000"


def _bank_size(v):
    return (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_BANK,
            f"an integer from 1 to {MAX_BANK}")


def _non_negative(v):
    return _is_number(v) and v >= 0, "a finite number >= 0"


def _sigma(v):
    return _is_number(v) and 0 <= v <= MAX_SIGMA, f"a number in [0, {MAX_SIGMA:g}] (a fraction of full scale)"


def _fraction(v):
    return _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"


def _crosstalk(v):
    # I + c N (devices.rings.crosstalk_matrix) is diagonally dominant, so invertible for every bank, when c < 1/2
    return _is_number(v) and 0 <= v < 0.5, "a number in [0, 0.5) (each neighbour's share; the compensation needs < 0.5)"


def _text(v):
    return isinstance(v, str), "a string"


def _number(v):
    return _is_number(v), "a finite number"


def _positive(v):
    return _is_number(v) and v > 0, "a finite number > 0"


def _open_fraction(v):
    return _is_number(v) and 0 < v < 1, "a number in (0, 1)"


def _percentile(v):
    return _is_number(v) and 50 <= v <= 100, "a percentile in [50, 100]"


def _auto_or_non_negative(v):
    return v == "auto" or _non_negative(v)[0], "'auto' or a finite number >= 0"


def _one_of(*choices):
    return lambda v: (v in choices, "one of " + ", ".join(repr(c) for c in choices))


def _bits_or_null(v):
    ok = v is None or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16)
    return ok, "null (float precision) or an integer number of bits from 1 to 16"


MAX_PORTS = 256  # an MZI mesh's ports (published meshes: 4 to 64; 1000 ports took minutes to decompose)


def _ports(v):
    return (isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= MAX_PORTS,
            f"an integer from 2 to {MAX_PORTS} (the mesh's ports: a tile is N x N)")


def _phase_sigma(v):
    return _is_number(v) and 0 <= v <= math.pi, "a number of radians in [0, pi]"


def _loss_db(v):
    return _is_number(v) and 0 <= v <= 3, "a number of dB in [0, 3]"


def _weight_range(v):
    ok = isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) and -1 <= v[0] < 0 < v[1] <= 1
    return ok, "a list [min, max] with -1 <= min < 0 < max <= 1 (the signed weights a ring can reach)"


ACTIVATIONS = {  # kind -> its parameters and their defaults (docs/profiles.md, activation)
    "electronic": {},
    "photonic_sigmoid": {"A1": 0.060, "A2": 1.005, "x0": 0.145, "d": 0.033},
    "photonic_sinusoidal": {},
    "saturable_absorber": {"OD": 10.0, "I_sat": 1.0},
}

SCHEMA = {
    "photoncc_profile": _one_of(FORMAT),
    "name": _text,
    "description": _text,
    "source": _text,
    "extends": _text,
    "architecture": _one_of(*ARCHITECTURES),
    "bank": {"banks": _bank_size, "rings": _bank_size, "weight_range": _weight_range},
    "mesh": {"ports": _ports, "layout": _one_of(*LAYOUTS), "loss_db": _loss_db},
    "precision": {"weight_bits": _bits_or_null, "phase_bits": _bits_or_null, "input_bits": _bits_or_null,
                  "output_bits": _bits_or_null},
    "noise": {"weight_sigma": _sigma, "crosstalk": _crosstalk, "phase_sigma": _phase_sigma, "splitter_sigma": _fraction,
              "loss_sigma_db": _loss_db, "detector_sigma": _sigma,
              "rin_sigma": _sigma, "seed": lambda v: (isinstance(v, int) and not isinstance(v, bool)
                                                      and 0 <= v < 2 ** 63, "an integer from 0 to 2^63 - 1")},
    "activation": {"kind": _one_of(*ACTIVATIONS), "A1": _number, "A2": _number, "x0": _number,
                   "d": _positive, "OD": _non_negative, "I_sat": _positive},
    "timing": {"clock_ghz": _positive, "reprogram_us": _non_negative},
    "energy": {"mac_pj": _non_negative, "dac_pj": _non_negative, "adc_pj": _non_negative,
               "reprogram_nj": _non_negative},
    "calibration": {"headroom": _non_negative, "percentile": _percentile},
    "verify": {"rtol": _non_negative, "top1": _fraction,
               "quantised": {"rtol": _auto_or_non_negative, "top1": _fraction},
               "noisy": {"trials": _trials, "top1": _fraction, "confidence": _open_fraction}},
}
# keys of one family of architectures only (required there, refused elsewhere: ``_check_consistency``)
RINGS = ("incoherent", "balanced")
FAMILY_KEYS = {
    "rings": ("bank", "bank.banks", "bank.rings", "precision.weight_bits", "noise.weight_sigma", "noise.crosstalk"),
    "mzi": ("mesh", "mesh.ports", "mesh.layout", "mesh.loss_db", "precision.phase_bits", "noise.phase_sigma",
            "noise.splitter_sigma", "noise.loss_sigma_db"),
}
OPTIONAL = {"description", "source", "extends", "bank.weight_range", "noise.seed",
            "activation.A1", "activation.A2", "activation.x0", "activation.d", "activation.OD", "activation.I_sat"}
NOISE = ("weight_sigma", "crosstalk", "detector_sigma", "rin_sigma")  # the ring profiles' noise (see ``noisy``)
STATIC_MZI = ("phase_sigma", "splitter_sigma", "loss_sigma_db")  # an mzi chip's static errors


class Profile(dict):
    """A validated profile: the resolved YAML mapping, with shortcuts for what the compiler reads."""

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def banks(self) -> int:
        return self["bank"]["banks"]

    @property
    def rings(self) -> int:
        return self["bank"]["rings"]

    @property
    def ports(self) -> int:
        return self["mesh"]["ports"]

    @property
    def quantised(self) -> bool:
        return any(v is not None for v in self["precision"].values())

    @property
    def noisy(self) -> bool:
        return any(self["noise"].get(k, 0) > 0 for k in NOISE + STATIC_MZI)

    def tier(self, noiseless: bool = False) -> str:
        """The verification tier this profile's programs are judged at (docs/verify-report.md)."""
        if self.noisy and not noiseless:
            return "noisy"
        return "quantised" if self.quantised else "exact"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def short(text: str, limit: int = 80) -> str:
    """``text`` within ``limit`` characters."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown(value) -> str:
    """The repr of a value read from YAML, within 80 characters: one built from aliases can be
    gigabytes long once written out, so it is never written out whole."""
    return short(_REPR.repr(value))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_profile(spec: str | Path) -> Profile:
    """Load a built-in profile by name or a YAML file by path, resolving ``extends``."""
    spec = str(spec)
    if spec in builtin_names():
        path = BUILTIN_DIR / f"{spec}.yaml"
    else:
        path = Path(spec)
        if not path.is_file():
            near = difflib.get_close_matches(spec, builtin_names(), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (built-in: {', '.join(builtin_names())})"
            raise UserError(f"profile {spec!r}: not a built-in profile name nor a file{hint}")
    data = _read_yaml(path)
    base = data.get("extends")
    if base is not None:
        if base not in builtin_names():
            raise UserError(f"{path}: extends: {base!r} is not a built-in profile "
                            f"(built-in: {', '.join(builtin_names())})")
        data = _merge(_read_yaml(BUILTIN_DIR / f"{base}.yaml"), data)
    return validated(data, path)


def validated(data: dict, where) -> Profile:
    """``data`` checked against the schema and the rules between keys (a UserError naming ``where``
    and the key otherwise), with the activation's parameter defaults filled in."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: a profile is a mapping of keys, got {type(data).__name__}")
    _validate(where, data, SCHEMA, "")
    _require(where, data, SCHEMA, "")
    _check_consistency(where, data)
    return Profile(data)


def _require(path: Path, data: dict, schema: dict, prefix: str) -> None:
    """Every key not OPTIONAL is required, except those of the other family of architectures
    (FAMILY_KEYS: refused by ``_family_keys``)."""
    family = "mzi" if data.get("architecture") == "mzi" else "rings"
    other = FAMILY_KEYS["rings" if family == "mzi" else "mzi"]
    _require_keys(path, data, schema, prefix, set(other))


def _require_keys(path: Path, data: dict, schema: dict, prefix: str, skip: set) -> None:
    for key, rule in schema.items():
        where = f"{prefix}{key}"
        if where in skip:
            continue
        if key not in data:
            if where not in OPTIONAL:
                raise UserError(f"{path}: missing required key {where!r}")
        elif isinstance(rule, dict):
            _require_keys(path, data[key], rule, where + ".", skip)


def _family_keys(path: Path, data: dict) -> None:
    """The keys of the other family of architectures (FAMILY_KEYS) are refused."""
    family = "mzi" if data["architecture"] == "mzi" else "rings"
    other = "rings" if family == "mzi" else "mzi"
    for key in FAMILY_KEYS[other]:
        parent, _, leaf = key.partition(".")
        if parent in data and (not leaf or leaf in data[parent]):
            what = ("the ring architectures ('incoherent', 'balanced')" if other == "rings" else "architecture 'mzi'")
            raise UserError(f"{path}: {key} applies only to {what}, not to {data['architecture']!r}")


def _check_consistency(path: Path, data: dict) -> None:
    """Rules between keys; fills the activation's parameter defaults."""
    _family_keys(path, data)
    balanced = data["architecture"] == "balanced"
    if balanced and "weight_range" not in data["bank"]:
        raise UserError(f"{path}: bank.weight_range is required for architecture 'balanced' "
                        "(the signed weights a ring reaches, e.g. [-1.0, 1.0])")
    if not balanced and "weight_range" in data.get("bank", {}):
        raise UserError(f"{path}: bank.weight_range applies only to architecture 'balanced' "
                        "(an incoherent ring's weight is its transmission in [0, 1])")
    if balanced and data["precision"].get("weight_bits") and weight_levels(data["precision"]["weight_bits"], True) < 1:
        raise UserError(f"{path}: precision.weight_bits: 1 leaves a signed ring weight no level besides 0 "
                        "(architecture 'balanced' needs 2 bits or more, or null)")
    activation = data["activation"]
    params = ACTIVATIONS[activation["kind"]]
    for key in activation:
        if key != "kind" and key not in params:
            owners = [k for k, p in ACTIVATIONS.items() if key in p]
            raise UserError(f"{path}: activation.{key} is a parameter of kind {owners[0]!r}, "
                            f"not of {activation['kind']!r}")
    data["activation"] = {"kind": activation["kind"], **params, **activation}
    if activation["kind"] == "photonic_sigmoid" and not data["activation"]["A2"] > data["activation"]["A1"]:
        raise UserError(f"{path}: activation.A2 must exceed activation.A1 (the curve rises from A1 to A2)")


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); save the profile as UTF-8") from e
    except RecursionError as e:
        raise UserError(f"{path}: not a profile: its YAML is nested too deeply") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from e
    except (ValueError, TypeError, OverflowError) as e:  # a tag PyYAML cannot construct (!!float abc)
        raise UserError(f"{path}: not valid YAML: {short(str(e))}") from e
    except AttributeError as e:  # PyYAML's !!timestamp on text that is not a date
        raise UserError(f"{path}: not valid YAML: a tagged value cannot be constructed (e.g. !!timestamp on text "
                        "that is not a date)") from e
    if not isinstance(data, dict):
        raise UserError(f"{path}: a profile is a YAML mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, over: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate(path: Path, data: dict, schema: dict, prefix: str) -> None:
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in schema:
            near = difflib.get_close_matches(key if isinstance(key, str) else shown(key), list(schema), n=1)
            hint = f"; did you mean {prefix + near[0]!r}?" if near else f" (valid: {', '.join(schema)})"
            raise UserError(f"{path}: unknown key {shown(where)}{hint}")
        rule = schema[key]
        if isinstance(rule, dict):
            if not isinstance(value, dict):
                raise UserError(f"{path}: {where}: expected a mapping with keys {', '.join(rule)}")
            if len(where.split(".")) > 3:  # the schema is three levels deep
                raise UserError(f"{path}: {where}: nested deeper than any profile key")
            _validate(path, value, rule, where + ".")
        else:
            ok, expected = rule(value)
            if not ok:
                raise UserError(f"{path}: {where}: {shown(value)} is not {expected}")
