"""Profile border, part 2: damage to a profile's YAML text (aliases and billion laughs, deep
nesting, bytes that are not UTF-8, invalid YAML, other top levels, tags, odd keys)."""
from __future__ import annotations

import random
import re


def billion_laughs(levels: int, fanout: int = 9) -> str:
    """A YAML flow sequence whose aliases expand to fanout**levels strings (small text)."""
    parts = ["&l0 [" + ", ".join(['"lol"'] * fanout) + "]"]
    for i in range(1, levels):
        parts.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * fanout) + "]")
    return "[" + ", ".join(parts) + "]"


def _replace_line(text: str, key: str, value: str) -> str:
    """``text`` with the (first, top-level or indented) line of ``key`` given the YAML ``value``."""
    pattern = re.compile(rf"^(\s*){re.escape(key)}:.*$", re.M)
    if pattern.search(text):
        return pattern.sub(lambda m: f"{m.group(1)}{key}: {value}", text, count=1)
    return text + f"\n{key}: {value}\n"


def profile_text_mutation(text: str, rng: random.Random) -> tuple[bytes, str]:
    """Damage the YAML text: aliases (incl. billion laughs), deep nesting, bad bytes, invalid YAML,
    non-mapping or empty documents, tags, odd keys."""
    choice = rng.choice(["alias", "laughs", "nesting", "non-utf8", "invalid", "top", "empty", "tags", "keys",
                         "bom", "crlf", "merge"])
    if choice == "alias":
        text = _replace_line(text, "weight_sigma", "&s 0.002")
        text = _replace_line(text, rng.choice(["rin_sigma", "detector_sigma", "name", "banks"]), "*s")
        return text.encode(), "anchor &s used by an alias"
    if choice == "laughs":
        levels = rng.choice([3, 5, 7, 7, 8, 9])
        key = rng.choice(["description", "name", "source", "weight_range", "seed", "trials"])
        return _replace_line(text, key, billion_laughs(levels)).encode(), f"billion laughs 9**{levels} under {key}"
    if choice == "nesting":
        depth = rng.choice([10, 100, 900, 5000, 50000])
        opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
        key = rng.choice(["description", "bank", "banks"])
        return _replace_line(text, key, opener * depth + "1" + closer * depth).encode(), f"{key} nested {depth} deep"
    if choice == "non-utf8":
        blob = text.encode()
        at = rng.randrange(len(blob))
        kind = rng.choice(["ff", "latin1", "utf16"])
        if kind == "utf16":
            return text.encode("utf-16"), "UTF-16 file"
        if kind == "latin1":
            # characters latin-1 has no byte for (a ✓ an earlier mutation wrote) become '?'
            return _replace_line(text, "description", "café").encode("latin-1", "replace"), "latin-1 é"
        return blob[:at] + b"\xff\xfe" + blob[at:], "bytes 0xff 0xfe"
    if choice == "invalid":
        snippet = rng.choice(["bank: [1, 2", "\tbanks: 1", "key: : value", "- a\nb: c", "name: *undefined",
                              "a: b: c", "{", "]", "'unterminated", "!!python/object/apply:os.system ['true']"])
        lines = text.splitlines()
        lines.insert(rng.randrange(len(lines) + 1), snippet)
        return "\n".join(lines).encode(), f"invalid YAML {snippet!r}"
    if choice == "top":
        top = rng.choice(["- a\n- b\n", "42\n", "'just a string'\n", "null\n", "[]\n", "~\n", "!!binary aGk=\n"])
        return top.encode(), f"top level {top.strip()!r}"
    if choice == "empty":
        return rng.choice([b"", b"\n", b"# only a comment\n", b"   \n\n", b"---\n", b"---\n...\n---\n"]), "empty"
    if choice == "tags":
        value = rng.choice(["!!binary aGk=", "!!set {a, b}", "!!timestamp 2001-12-14", "!!float .nan",
                            "!!float -.inf", "!!int 0x10", "!!str 12", "!!omap [a: 1]", "!!null ''",
                            "!!python/name:os.system"])
        key = rng.choice(["banks", "rings", "description", "headroom", "weight_bits", "name", "crosstalk"])
        return _replace_line(text, key, value).encode(), f"{key}: {value}"
    if choice == "keys":
        key = rng.choice(["1", "null", "true", "? [a, b]\n", "? {a: 1}\n", "<<", "'': x\nbank2"])
        return (text + f"\n{key}: 1\n").encode(), f"key {key!r}"
    if choice == "bom":
        return b"\xef\xbb\xbf" + text.encode(), "UTF-8 BOM"
    if choice == "crlf":
        return text.replace("\n", "\r\n").encode(), "CRLF line ends"
    base = "base: &base\n  banks: 12\n  rings: 12\n"
    return (base + _replace_line(text, "bank", "\n  <<: *base")).encode(), "merge key <<: *base"
