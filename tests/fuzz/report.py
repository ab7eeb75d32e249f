"""Reporting outcomes: a tally of many (``summarise``), one case in words (``describe``) and the
command that replays it."""
from __future__ import annotations

from .oracle import Outcome, Violation, last_line, normalise, violations


def replay_command(outcome: Outcome) -> str:
    """The command that rebuilds and reruns the case, keeping its files."""
    return f"python bench/fuzz.py --replay {outcome.border}:{outcome.seed}"


def summarise(outcomes: list) -> dict:
    """A tally of outcomes: cases, exit codes, violation counts by kind, and the distinct
    violations (by signature) with their count and first example."""
    tally = {"cases": len(outcomes), "exit": {}, "kinds": {}, "distinct": {}, "warnings": {},
             "slowest_s": 0.0, "peak_mb": 0.0}
    for outcome in outcomes:
        code = "escaped" if outcome.code is None else str(outcome.code)
        tally["exit"][code] = tally["exit"].get(code, 0) + 1
        for step in outcome.steps:
            tally["slowest_s"] = max(tally["slowest_s"], step.seconds)
            tally["peak_mb"] = max(tally["peak_mb"], step.peak_mb)
            for w in step.warnings:
                key = normalise(w)
                tally["warnings"][key] = tally["warnings"].get(key, 0) + 1
        for v in violations(outcome):
            tally["kinds"][v.kind] = tally["kinds"].get(v.kind, 0) + 1
            entry = tally["distinct"].setdefault(v.signature, {"count": 0, "example": outcome, "detail": v.detail})
            entry["count"] += 1
    return tally


def describe(outcome: Outcome, violation: Violation | None = None) -> str:
    """A failure report of one case: border, seed, what was mutated, the commands and how they ended."""
    replay = replay_command(outcome) if outcome.seed >= 0 else "a generated example: see the mutation"
    lines = [f"border={outcome.border} seed={outcome.seed}  (replay: {replay})",
             f"  mutation: {'; '.join(map(str, outcome.mutation))[:600]}"]
    if violation:
        lines.append(f"  violation: {violation}")
    for step in outcome.steps:
        lines.append(f"  $ photoncc {' '.join(step.argv)}")
        lines.append(f"    exit {step.code}, {step.seconds:.2f} s, peak +{step.peak_mb:.0f} MB; "
                     f"stderr: {step.stderr.strip()[-300:]!r}")
        if step.escaped:
            lines.append(f"    escaped: {last_line(step.escaped)}")
    return "\n".join(lines)
