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
from pathlib import Path

import yaml

from .errors import UserError

FORMAT = 1
_HERE = Path(__file__).resolve().parent
BUILTIN_DIR = next(p for p in (_HERE / "hwprofiles", _HERE.parent / "hwprofiles", _HERE) if p.is_dir())


def _positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer"


def _non_negative(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0"


def _fraction(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1, "a number in [0, 1]"


def _text(v):
    return isinstance(v, str), "a string"


def _one_of(*choices):
    return lambda v: (v in choices, "one of " + ", ".join(repr(c) for c in choices))


def _bits_or_null(v):
    return v is None, "null (float precision; quantised profiles are not supported by this version)"


SCHEMA = {
    "photoncc_profile": _one_of(FORMAT),
    "name": _text,
    "description": _text,
    "extends": _text,
    "architecture": _one_of("incoherent"),
    "bank": {"banks": _positive_int, "rings": _positive_int},
    "precision": {"weight_bits": _bits_or_null, "input_bits": _bits_or_null, "output_bits": _bits_or_null},
    "activation": {"kind": _one_of("electronic")},
    "calibration": {"headroom": _non_negative},
    "verify": {"rtol": _non_negative, "top1": _fraction},
}
REQUIRED = ("photoncc_profile", "name", "architecture", "bank", "calibration", "verify")


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
    _validate(path, data, SCHEMA, "")
    for key in REQUIRED:
        if key not in data:
            raise UserError(f"{path}: missing required key {key!r}")
    return Profile(data)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from e
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
            near = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"; did you mean {prefix + near[0]!r}?" if near else f" (valid: {', '.join(schema)})"
            raise UserError(f"{path}: unknown key {where!r}{hint}")
        rule = schema[key]
        if isinstance(rule, dict):
            if not isinstance(value, dict):
                raise UserError(f"{path}: {where}: expected a mapping with keys {', '.join(rule)}")
            _validate(path, value, rule, where + ".")
        else:
            ok, expected = rule(value)
            if not ok:
                raise UserError(f"{path}: {where}: {value!r} is not {expected}")
