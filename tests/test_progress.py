"""Progress: what compile, simulate and verify report (photoncc/progress.py), how the command line
draws it (cli.common.Progress), and that the commands hand their work's progress to the bar."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli
from photoncc.cli import common
from photoncc.compiler import compile_model, load_calibration
from photoncc.importer import import_model
from photoncc.profile import load_profile
from photoncc.sim import Simulator

DATA = Path(__file__).parent / "data"
CNN = DATA / "torch_legacy_cnn.onnx"
CALIBRATION = DATA / "torch_legacy_cnn.npz"


def stages(calls) -> dict:
    """stage -> its (done, total) calls, stages in the order they began."""
    out = {}
    for done, total, stage in calls:
        out.setdefault(stage, []).append((done, total))
    return out


def assert_counts_up_to_the_total(calls, stage=""):
    done = [d for d, _ in calls]
    assert len({t for _, t in calls}) == 1, (stage, calls)   # one total per stage
    assert done == sorted(done) and done[0] > 0, (stage, done)  # counts up
    assert done[-1] == calls[-1][1], (stage, calls[-1])     # and ends at its total


@pytest.mark.parametrize("profile, expected", [
    ("ideal", ["input ranges", "bank form", "tiling", "loading the device", "known-answer test"]),
    ("mrr-incoherent-8b", ["input ranges", "bank form", "tiling", "quantising weights", "ADC margins", "ADC ranges",
                           "loading the device", "known-answer test", "loading the device (statistical model)",
                           "known-answer test (statistical model)"]),
])
def test_compile_reports_each_long_stage_in_order_each_ending_at_its_total(profile, expected):
    calls = []
    program = compile_model(CNN, load_profile(profile), CALIBRATION, progress=lambda *call: calls.append(call))
    found = stages(calls)
    assert list(found) == expected
    for stage, seen in found.items():
        assert_counts_up_to_the_total(seen, stage)
    banks = sum(i["op"] == "Bank" for i in program.instructions)
    samples = len(next(iter(load_calibration(CALIBRATION, import_model(CNN)).values())))
    totals = {stage: seen[-1][1] for stage, seen in found.items()}
    assert totals["bank form"] == totals["tiling"] == totals["loading the device"] == banks
    assert totals["input ranges"] == samples  # calibration samples
    assert totals["known-answer test"] == len(program.instructions)
    if "ADC ranges" in totals:
        assert totals["quantising weights"] == totals["ADC margins"] == banks
        assert totals["ADC ranges"] == samples


def test_simulate_reports_samples_part_way_through_each_batch():
    program = compile_model(CNN, load_profile("ideal"), CALIBRATION)
    x = np.load(CALIBRATION)
    feeds = {k: np.concatenate([x[k]] * 3)[:7] for k in x.files}
    calls = []
    Simulator(program).run_batches(feeds, batch_size=3, progress=lambda *call: calls.append(call))
    assert all(total == 7 for _, total in calls)
    assert_counts_up_to_the_total(calls)
    assert len(calls) == 3 * len(program.instructions)  # every instruction of each of the 3 batches
    assert any(d != int(d) for d, _ in calls)  # within a batch: a share of its samples
    assert {3, 6, 7} <= {d for d, _ in calls}  # each batch's end


class Recorder:
    """Stands in for cli.common.Progress: records every call the command makes, and its stage."""
    made: list = []

    def __init__(self, what):
        self.what, self.calls = what, []
        Recorder.made.append(self)

    def __call__(self, done, total, stage=""):
        self.calls.append((done, total, stage))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def recorded(monkeypatch):
    Recorder.made = []
    monkeypatch.setattr(common, "Progress", Recorder)
    return Recorder.made


def test_commands_hand_their_progress_to_the_bar(recorded, capsys, tmp_path):
    program = tmp_path / "cnn.pcc"
    code, _, err = run_cli(capsys, "compile", CNN, "--calibration", CALIBRATION, "-p", "mrr-incoherent-8b",
                           "-o", program)
    assert code == 0, err
    code, _, err = run_cli(capsys, "simulate", program, "--inputs", CALIBRATION, "-o", tmp_path / "out.npz",
                           "--batch-size", "2")
    assert code == 0, err
    code, _, err = run_cli(capsys, "verify", program, "--inputs", CALIBRATION, "--trials", "2")
    assert code in (0, 1), err
    compiled, simulated, verified = recorded
    assert (compiled.what, simulated.what, verified.what) == ("compile", "simulate", "verify")
    assert "ADC ranges" in stages(compiled.calls)
    with np.load(CALIBRATION) as data:
        samples = len(data[data.files[0]])
    assert list(stages(simulated.calls)) == [""]
    assert_counts_up_to_the_total(stages(simulated.calls)[""])
    assert simulated.calls[-1] == (samples, samples, "")
    assert list(stages(verified.calls)) == ["trial 1/2", "trial 2/2"]
    for seen in stages(verified.calls).values():
        assert_counts_up_to_the_total(seen)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def on_terminal(monkeypatch):
    """stderr a terminal, and a clock the test sets (called in the test itself: pytest's capture
    would put its own stderr back between a fixture and the test)."""
    screen, clock = Terminal(), [0.0]
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setattr(common.time, "monotonic", lambda: clock[0])
    return screen, clock


def test_the_bar_waits_two_seconds_then_draws_each_stage_on_its_own_line(monkeypatch):
    screen, clock = on_terminal(monkeypatch)
    bar = "[{}{}]".format
    with common.Progress("compile") as progress:
        progress(1, 4, "input ranges")
        assert screen.getvalue() == ""  # work shorter than 2 s shows nothing
        clock[0] = 2.5
        progress(2, 4, "input ranges")
        assert screen.getvalue() == f"\rcompile: input ranges {bar('#' * 15, '.' * 15)} 2/4"
        clock[0] = 2.55
        progress(3, 4, "input ranges")  # redrawn at most every 0.1 s
        assert screen.getvalue().endswith("2/4")
        progress(4, 4, "input ranges")  # the end is always drawn, and ends the line
        assert screen.getvalue().endswith(f"\rcompile: input ranges {bar('#' * 30, '')} 4/4\n")
        clock[0] = 3.0
        progress(0.5, 2, "ADC ranges")  # a fraction done: the bar shows it, the count what is whole
        assert screen.getvalue().endswith(f"\n\rcompile: ADC ranges {bar('#' * 7, '.' * 23)} 0/2")
        clock[0] = 3.5
        progress(1, 3, "known-answer test")  # a new stage ends the open line first
        assert screen.getvalue().endswith(f"0/2\n\rcompile: known-answer test {bar('#' * 10, '.' * 20)} 1/3")
    assert screen.getvalue().endswith("1/3\n")  # leaving the block ends the open line


def test_the_bar_draws_unstaged_work_under_the_command_name(monkeypatch):
    screen, clock = on_terminal(monkeypatch)
    with common.Progress("simulate") as progress:
        clock[0] = 5.0
        progress(32, 64)
        progress(64, 64)
    assert screen.getvalue() == (f"\rsimulate [{'#' * 15}{'.' * 15}] 32/64"
                                 f"\rsimulate [{'#' * 30}] 64/64\n")


def test_the_bar_is_silent_when_stderr_is_not_a_terminal(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setattr(common.time, "monotonic", lambda: 100.0)
    with common.Progress("compile") as progress:
        progress(1, 2, "input ranges")
        progress(2, 2, "input ranges")
    assert screen.getvalue() == ""
