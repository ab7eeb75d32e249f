"""A fast slice of the border fuzzers (machinery: tests/fuzz/; long campaigns: bench/fuzz.py; docs/fuzzing.md).

For each border (model, profile, data, program, chip, sweep) a fixed range of seeds is run through the real
command line, in-process in worker processes (a hang or a crash of one case cannot stop the
suite), and every case must satisfy the oracle (``fuzz.violations``): exit
0/1/2 only, one ``photoncc: error:`` line on exit 2, no partial or temporary files, bounded time
and memory, no unexplained NaN outputs. A failure lists each distinct violation once, with the
border, the seed and the command that replays it (``python bench/fuzz.py --replay BORDER:SEED``).

Each border also has a test that its cases are diverse (successes and refusals, many different
error messages, the deeper checks reached), so that the slice cannot silently test nothing.
"""
from __future__ import annotations

import os
import re

import pytest

import fuzz
from fuzz import BORDERS, Outcome, Step, describe, normalise, violations

CASES = 250            # seeds per border in the default suite (about 3-5 s of a worker each)
SLOW_CASES = {"chip": 150, "sweep": 100}  # fewer seeds of the borders whose cases run more (about 5 s each)
TIMEOUT = 10.0         # seconds per command in this slice (a campaign allows fuzz.LIMIT_S)
SHOWN = 12             # distinct violations listed in a failure message
JOBS = min(2, os.cpu_count() or 1)  # worker processes


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def outcomes(workdir):
    """border -> the Outcomes of seeds 0 .. CASES-1, run once per module in worker processes
    (``fuzz.run_isolated``: a case that hangs in native code or crashes the interpreter is
    a crash outcome, and the suite goes on)."""
    work = [(border, range(SLOW_CASES.get(border, CASES))) for border in BORDERS]
    everything = fuzz.run_isolated(work, workdir, TIMEOUT, jobs=JOBS)
    return lambda border: [o for o in everything if o.border == border]


def report(found: list) -> str:
    """One paragraph per distinct violation (by signature): how often, and its first case."""
    groups = {}
    for outcome, violation in found:
        groups.setdefault(violation.signature, []).append((outcome, violation))
    lines = [f"{len(found)} violation(s), {len(groups)} distinct:"]
    for signature, cases in list(groups.items())[:SHOWN]:
        outcome, violation = cases[0]
        seeds = ", ".join(str(o.seed) for o, _ in cases[:8])
        lines.append(f"\n[{len(cases)}x] {signature}  (seeds {seeds})\n{describe(outcome, violation)}")
    if len(groups) > SHOWN:
        lines.append(f"\n... and {len(groups) - SHOWN} more distinct violation(s)")
    return "\n".join(lines)


@pytest.mark.parametrize("border", BORDERS)
def test_no_oracle_violations(border, outcomes):
    found = [(o, v) for o in outcomes(border) for v in violations(o)]
    if found:
        pytest.fail(f"border={border}: " + report(found), pytrace=False)


def _error_lines(cases) -> set:
    return {normalise(o.steps[0].stderr.strip().splitlines()[-1]) for o in cases
            if o.code == 2 and o.steps[0].stderr.strip()}


@pytest.mark.parametrize("border", BORDERS)
def test_cases_are_diverse(border, outcomes):
    """Both successes and refusals occur, with many different error messages and mutations."""
    cases = outcomes(border)
    codes = {o.code for o in cases}
    assert {0, 2} <= codes, f"border={border}: exit codes {sorted(map(str, codes))} (want both 0 and 2)"
    errors = _error_lines(cases)
    assert len(errors) >= 15, f"border={border}: only {len(errors)} distinct error messages: {sorted(errors)}"
    mutations = {re.sub(r"[^a-z ]", "", str(o.mutation[-1]).lower())[:20] for o in cases if o.mutation}
    assert len(mutations) >= 20, f"border={border}: only {len(mutations)} kinds of mutation"
    commands = {o.steps[0].command for o in cases if o.steps}
    assert len(commands) >= (1 if border == "sweep" else 3), f"border={border}: commands {commands}"


def test_program_edits_reach_the_simulator_rules(outcomes):
    """Edits with recomputed checksums get past Program.read: the device rules, the known-answer
    test and the simulator itself are exercised, not only the checksums."""
    cases = outcomes("program")
    deep = [o for o in cases if o.code == 2 and re.search(r"layer '|known-answer|instruction|cannot run|"
                                                          r"input|output", o.steps[0].stderr)
            and "checksum" not in o.steps[0].stderr]
    edited = [o for o in cases if any("recomputed" in str(n) for n in o.mutation)]
    assert len(deep) >= 5 and len(edited) >= 20, (len(deep), len(edited))
    assert any(o.code == 0 for o in edited), "no edited program ran to the end"


def test_data_and_model_cases_reach_the_device(outcomes):
    """Some mutated data files and models are accepted and simulated (the follow-up step runs)."""
    for border in ("data", "model", "profile"):
        assert any(len(o.steps) > 1 or o.steps[0].command == "simulate" and o.code == 0
                   for o in outcomes(border)), border


def test_chip_edits_reach_the_devices(outcomes):
    """Chips edited with their checksum recomputed get past the reader: compiled for, simulated on
    and calibrated from (exit 0), and refused by the reader's own rules, not only the checksum."""
    cases = outcomes("chip")
    accepted = [o for o in cases if "(format kept)" in o.mutation and o.code == 0 and len(o.mutation) > 2]
    assert len({o.steps[0].command for o in accepted}) >= 3, {o.steps[0].command for o in accepted}
    assert any(len(o.steps) > 1 and o.steps[1].code == 0 for o in accepted), "no follow-up ran on an edited chip"
    deep = {re.sub(r"--\w+ \S+: ", "", o.steps[0].stderr.strip().splitlines()[-1])[:40] for o in cases
            if o.code == 2 and "checksum" not in o.steps[0].stderr and "chip" in o.steps[0].stderr}
    assert len(deep) >= 10, sorted(deep)


def test_sweeps_run_their_points(outcomes):
    """Some fuzzed grids run (exit 0), with one or more varied keys; resumed sweeps run too."""
    cases = outcomes("sweep")
    ran = [o for o in cases if o.code == 0]
    assert len(ran) >= 10, len(ran)
    assert any(o.steps[0].argv.count("--vary") > 1 for o in ran), "no grid of two keys ran"
    assert any(len(o.steps) > 1 and o.steps[1].code == 0 for o in ran), "no sweep was resumed"


def test_cases_replay_identically(workdir):
    """A case is a function of its border and seed: the same mutations and command lines."""
    for border in BORDERS:
        a = fuzz.build_case(border, 7, workdir / "replay-a")
        b = fuzz.build_case(border, 7, workdir / "replay-b")
        assert a.notes == b.notes, border
        assert [p.argv[0] for p in a.plans] == [p.argv[0] for p in b.plans], border


def test_program_cases_check_nans_unless_an_edit_changed_what_the_program_computes(workdir):
    """The NaN rule compares a program's outputs with its seed model's. An edit that gives an
    instruction another op (Relu -> Atanh: NaN past 1; seed 903020 of the ninth campaign) or new
    values to an electronic op's constant (a NaN std; seed 1006030 of the tenth) leaves the seed
    model no reference, so such a case has no NaN check; every other simulate keeps it, edits of
    the optical settings included (the device's rules check those)."""
    checked = changed = 0
    for seed in list(range(40)) + [903020, 1006030]:
        case = fuzz.build_case("program", seed, workdir / "nan-rule")
        op_edit = any(note.startswith("instructions: op") for note in case.notes)
        tensor_edit = any(note.startswith("tensor ") and not note.endswith("removed") for note in case.notes)
        for plan in (p for p in case.plans if p.argv[0] == "simulate"):
            if op_edit or seed == 1006030:
                assert plan.nan is None, (seed, case.notes)
            if not (op_edit or tensor_edit):
                assert plan.nan is not None, (seed, case.notes)
            checked += plan.nan is not None
            changed += plan.nan is None
    assert checked and changed, (checked, changed)


def test_the_oracle_flags_what_it_should():
    """The oracle itself: exit 3, escaped exceptions, bad stderr, partial and temporary files."""
    def outcome(**step):
        return Outcome("model", 0, [], [Step(argv=["compile", "m.onnx"], **step)])
    kinds = lambda o: {v.kind for v in violations(o)}  # noqa: E731
    assert kinds(outcome(code=0, allowed=["out/m.pcc"], created=["out/m.pcc"])) == set()
    assert kinds(outcome(code=2, stderr="photoncc: error: m.onnx: bad\n")) == set()
    assert kinds(outcome(code=2, stderr="photoncc: error: m.onnx: 2 unsupported node(s):\n  node 'a' (X): r\n"
                                        "  node 'b' (Y): r\n")) == set()
    assert kinds(outcome(code=3, stderr="photoncc: internal error (a bug): ValueError: x\n")) == {"exit-3"}
    assert kinds(outcome(code=None, escaped="Traceback...\nKeyError: 'x'")) == {"escaped"}
    assert kinds(outcome(code=2, stderr="Traceback (most recent call last):\nphotoncc: error: x\n")) == {"stderr-format"}
    assert kinds(outcome(code=2, stderr="photoncc: error: x\nsecond line\n")) == {"stderr-format"}
    assert kinds(outcome(code=2, stderr="photoncc: error: x\n", created=["out/m.pcc"])) == {"partial-file"}
    assert kinds(outcome(code=0, created=["out/.m.pcc.abc.tmp"])) == {"stray-temp"}
    assert kinds(outcome(code=0, modified=["in/m.onnx"])) == {"input-modified"}
    assert kinds(outcome(code=0, peak_mb=3000.0)) == {"memory"}
    assert kinds(outcome(code=0, nan="output 'y': NaN")) == {"nan-output"}
    assert kinds(outcome(code=0, hidden="1 point(s): internal error: KeyError: 'bank'")) == {"hidden-error"}
    assert kinds(outcome(code=1, stderr="")) == {"bad-exit"}  # exit 1 is verify's alone


def test_profiles_from_the_schema_hypothesis(workdir):
    """Profiles generated from photoncc.profile.SCHEMA by Hypothesis (shrunk on failure to a
    minimal document, printed as YAML): compile, then simulate the program."""
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzz.profile_documents())
    def check(doc):
        outcome = fuzz.run_profile_document(doc, workdir)
        found = violations(outcome)
        if found:
            raise AssertionError("border=profile (hypothesis)\n" + describe(outcome, found[0]))
    check()
