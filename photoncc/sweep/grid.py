"""The grid of a sweep: ``--vary KEY=V1,V2,...`` options checked against the profile schema, and
each point's profile (the base profile with the keys set), validated as a profile file is."""
from __future__ import annotations

import copy
import difflib
import itertools
import json
from dataclasses import dataclass

import yaml

from ..errors import UserError
from ..profile import ACTIVATIONS, SCHEMA, Profile, short, shown, validated

FIXED_KEYS = {"photoncc_profile", "extends"}  # resolved when the base profile was loaded: nothing to vary


@dataclass(frozen=True)
class Axis:
    """One ``--vary``: a profile key, its values (parsed) and their canonical texts (the CSV cells)."""
    key: str
    values: tuple
    texts: tuple


def leaf_keys(schema: dict = SCHEMA, prefix: str = "") -> list[str]:
    """Every dotted key of ``schema`` that holds a value (not a section)."""
    keys = []
    for key, rule in schema.items():
        keys += leaf_keys(rule, f"{prefix}{key}.") if isinstance(rule, dict) else [prefix + key]
    return keys


def _rule(key: str, spec: str):
    """The schema's check of dotted ``key``; a UserError naming ``--vary spec`` for a key that is not
    one (with the nearest key), a section or a key resolved on loading."""
    if key in FIXED_KEYS:
        raise UserError(f"--vary {shown(spec)}: {key!r} cannot be varied (it is resolved when the profile is loaded)")
    node = SCHEMA
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        inner = ", ".join(f"{key}.{k}" for k in node)
        raise UserError(f"--vary {shown(spec)}: {key!r} is a section of the profile, not a key (its keys: {inner})")
    if node is None:
        near = difflib.get_close_matches(key, [k for k in leaf_keys() if k not in FIXED_KEYS], n=1)
        hint = f"; did you mean {near[0]!r}?" if near else " (`photoncc profiles NAME` shows the keys)"
        raise UserError(f"--vary {shown(spec)}: unknown profile key {shown(key)}{hint}")
    return node


def _split_values(text: str) -> list[str]:
    """``text`` cut at the commas outside brackets (``[-1, 1],[-0.5, 0.5]`` is two values)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [part.strip() for part in parts + [text[start:]]]


def parse_value(text: str):
    """One value as YAML reads it (``8``, ``0.004``, ``null``, ``[-1, 1]``), and a number that YAML
    1.1 leaves a string (``1e-3``) as that number."""
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, AttributeError, RecursionError):
        return text  # not YAML, or a tag PyYAML cannot construct (!!float abc, !!timestamp x): the text itself
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def value_text(value) -> str:
    """The canonical text of a profile value: a CSV cell and the key a resumed row is matched by."""
    if value is None or isinstance(value, list):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def parse_vary(specs) -> list[Axis]:
    """The axes of ``--vary KEY=V1,V2,...`` options: each key a value of the profile schema, given
    once; each value checked against the key's rule and given once. Raises UserError naming the
    option (with a did-you-mean hint for an unknown key)."""
    axes = []
    for spec in specs:
        key, sep, listed = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--vary {shown(spec)}: expected KEY=V1,V2,... (a dotted profile key such as "
                            "precision.weight_bits and the values it takes)")
        rule = _rule(key, spec)
        if any(axis.key == key for axis in axes):
            raise UserError(f"--vary {shown(spec)}: {key!r} is varied twice; give all its values in one --vary")
        texts = _split_values(listed)
        if "" in texts:
            raise UserError(f"--vary {shown(spec)}: an empty value (values are separated by commas)")
        values = [parse_value(text) for text in texts]
        for value in values:
            ok, expected = rule(value)
            if not ok:
                raise UserError(f"--vary {shown(spec)}: {key}: {shown(value)} is not {expected}")
        canonical = [value_text(v) for v in values]
        twice = sorted({t for t in canonical if canonical.count(t) > 1})
        if twice:
            raise UserError(f"--vary {shown(spec)}: value {short(twice[0])} is given twice")
        axes.append(Axis(key, tuple(values), tuple(canonical)))
    if not axes:
        raise UserError("--vary: give at least one KEY=V1,V2,...")
    return axes


def grid(axes: list[Axis]) -> list[tuple]:
    """The points, each a tuple of value indices (one per axis): every combination of the axes'
    values, the first axis varying slowest."""
    return list(itertools.product(*(range(len(axis.values)) for axis in axes)))


def point_profile(base: Profile, axes: list[Axis], point: tuple) -> Profile:
    """``base`` with each axis's key set to its value at ``point`` (value indices), validated as
    ``load_profile`` validates a file (keys, values, required keys, the rules between keys). When the activation
    kind is varied, the parameters of other kinds are dropped (``base`` holds its own kind's) and
    the defaults of the point's kind filled in. A UserError names the point."""
    data = copy.deepcopy(dict(base))
    for axis, index in zip(axes, point):
        *sections, leaf = axis.key.split(".")
        node = data
        for section in sections:  # a section of the other architecture family is not in the base
            node = node.setdefault(section, {})
        node[leaf] = axis.values[index]
    varied = {axis.key for axis in axes}
    if "activation.kind" in varied:
        kind = data["activation"]["kind"]
        data["activation"] = {k: v for k, v in data["activation"].items()
                              if k == "kind" or k in ACTIVATIONS[kind] or f"activation.{k}" in varied}
    where = short("--vary point " + ", ".join(f"{axis.key}={axis.texts[index]}" for axis, index in zip(axes, point)), 200)
    return validated(data, where)
