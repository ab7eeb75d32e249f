"""Building and running one case: ``build_case(border, seed, workdir)`` writes the case's files
and returns its command lines; ``run_case`` also runs them and returns the ``Outcome``."""
from __future__ import annotations

import shutil
import traceback
import warnings
from pathlib import Path

import numpy as np

from .case import BORDERS, Case, case_rngs
from .chip import build_chip_case
from .data import build_data_case
from .invoke import bounded, debug_rerun, invoke
from .model import build_model_case
from .nan import nan_problem
from .oracle import LIMIT_S, Outcome, Step
from .profile import build_profile_case
from .program import build_program_case
from .seeds import seeds_for
from .sweep import build_sweep_case, hidden_errors

BUILDERS = {"model": build_model_case, "profile": build_profile_case, "data": build_data_case,
            "program": build_program_case, "chip": build_chip_case, "sweep": build_sweep_case}


def run_case(border: str, seed: int, workdir, keep: bool = False, timeout: float = LIMIT_S,
             debug: bool = True) -> Outcome:
    """Build case ``seed`` of ``border`` in ``workdir/<border>-<seed>``, run its commands and
    return the Outcome (judge it with ``violations``). The case folder is removed unless ``keep``."""
    if border not in BUILDERS:
        raise ValueError(f"unknown border {border!r} (borders: {', '.join(BORDERS)})")
    workdir = Path(workdir)
    folder = workdir / f"{border}-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "in").mkdir(parents=True)
    (folder / "out").mkdir()
    try:
        case = build_case(border, seed, workdir)
    except Exception as e:  # noqa: BLE001 - a bug of this harness: reported, never hidden
        shutil.rmtree(folder, ignore_errors=True)
        why = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        return Outcome(border, seed, [f"harness error: {type(e).__name__}: {e}"],
                       [Step(argv=["<building the case>"], escaped=f"HarnessError: {why}")])
    outcome = Outcome(border, seed, case.notes, [], case.expect_refusal, str(folder))
    try:
        for plan in case.plans:
            if plan.follow and (not outcome.steps or outcome.steps[-1].code != 0):
                break
            step = invoke(plan.argv, folder, timeout, plan.allowed, plan.reports)
            if step.code == 0 and plan.nan:
                with bounded(timeout):
                    step.nan = nan_problem(*plan.nan)
            if step.code == 0 and plan.table:
                step.hidden = hidden_errors(plan.table)
            if debug and (step.code == 3):
                debug_rerun(step, folder, timeout)
            outcome.steps.append(step)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return outcome


def build_case(border: str, seed: int, workdir) -> Case:
    """The case's files (under ``workdir/<border>-<seed>``) and command lines, without running them."""
    workdir = Path(workdir)
    seeds = seeds_for(workdir)
    folder = workdir / f"{border}-{seed}"
    (folder / "in").mkdir(parents=True, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    rng, nrng = case_rngs(border, seed)
    case = Case(border, seed, folder)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        BUILDERS[border](case, seeds, rng, nrng)
    return case
