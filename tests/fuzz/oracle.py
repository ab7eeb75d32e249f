"""The oracle: the records of a case (``Step``, ``Outcome``) and the rules they must keep.

``violations(outcome)`` lists every ``Violation`` of a case (the rules are listed in the
package's docstring); ``normalise`` blanks paths, names and numbers out of a message so that
messages of one root cause group together.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

LIMIT_MB = 2048            # peak RSS growth allowed per command
LIMIT_S = 60.0             # wall time allowed per command
LIMIT_MESSAGE = 65536      # characters an error message may take
GUARD_BYTES = 4 << 30      # address space a command may add before its allocations fail (MemoryError)
ERROR = "photoncc: error: "


@dataclass
class Step:
    """One command line run in-process, and what it did."""
    argv: list
    code: int | None = None       # None: an exception escaped main() (``escaped``) or the step timed out
    stdout: str = ""
    stderr: str = ""
    stderr_chars: int = 0         # length of the whole stderr (``stderr`` keeps its first 20000 characters)
    escaped: str | None = None    # traceback of an exception that escaped main()
    seconds: float = 0.0
    peak_mb: float = 0.0          # peak RSS growth during the step
    created: list = field(default_factory=list)    # files that appeared (relative to the case folder)
    modified: list = field(default_factory=list)   # files that were there before and changed
    allowed: list = field(default_factory=list)    # outputs it may write on success
    reports: list = field(default_factory=list)    # outputs ``verify`` may also write on exit 1
    nan: str | None = None        # NaN outputs that neither the inputs nor onnxruntime explain
    warnings: list = field(default_factory=list)   # Python warnings raised (informational)
    debug: str | None = None      # stderr of a ``--debug`` rerun after exit 3
    hidden: str | None = None     # an internal error a successful command recorded (a sweep's row)

    @property
    def command(self) -> str:
        return next((a for a in self.argv if not a.startswith("-")), "?")


@dataclass
class Outcome:
    """A case as it ran: its border and seed, what was mutated, and its steps."""
    border: str
    seed: int
    mutation: list                # what was done to the seed material, in words
    steps: list                   # Step, the main command first
    expect_refusal: str | None = None  # why exit 0 would be wrong (None: any of 0/1/2 is fine)
    folder: str = ""

    @property
    def code(self):
        return self.steps[0].code if self.steps else None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: dict) -> "Outcome":
        steps = [Step(**s) for s in data["steps"]]
        return Outcome(**{**data, "steps": steps})


@dataclass(frozen=True)
class Violation:
    """One broken rule of one step."""
    kind: str        # exit-3, escaped, bad-exit, stderr-format, partial-file, stray-temp, input-modified,
                     # memory, time, nan-output, hidden-error, accepted; crash (the process died or hung), harness
    signature: str   # what groups violations of one root cause
    detail: str

    def __str__(self):
        return f"{self.signature}: {self.detail}"


# ---------------------------------------------------------------------- the rules


def violations(outcome: Outcome) -> list:
    """Every way ``outcome`` breaks the oracle (see the module docstring); [] when it is fine."""
    found = []
    for index, step in enumerate(outcome.steps):
        found += _step_violations(step, "" if index == 0 else " (follow-up)")
    first = outcome.steps[0] if outcome.steps else None
    if outcome.expect_refusal and first is not None and first.code == 0:
        found.append(Violation("accepted", f"accepted [{first.command}]: {outcome.expect_refusal}",
                               f"exit 0 for {outcome.expect_refusal}"))
    return found


def _step_violations(step: Step, where: str) -> list:
    found = []
    cmd = f"{step.command}{where}"
    if step.escaped is not None:
        if step.escaped.startswith("HarnessError"):
            found.append(Violation("harness", "harness: building the case failed (a bug of tests/fuzz)",
                                   last_line(step.escaped)))
        elif step.escaped.startswith("WorkerCrash"):
            found.append(Violation("crash", "crash: the process running the case died or hung", step.escaped))
        elif step.escaped.startswith("CaseTimeout"):
            found.append(Violation("time", f"time [{cmd}]: over the time limit", step.escaped))
        else:
            exc, origin = _exception(step.escaped)
            found.append(Violation("escaped", f"escaped [{cmd}] {exc} in {origin}", last_line(step.escaped)))
    elif step.code == 3:
        exc, message = _internal_error(step.stderr)
        origin = _exception(step.debug)[1] if step.debug else "?"
        if exc == "MemoryError":
            found.append(Violation("memory", f"memory [{cmd}]: MemoryError in {origin}",
                                   f"allocation beyond the {GUARD_BYTES >> 30} GiB guard: {message}"))
        else:
            found.append(Violation("exit-3", f"exit 3 [{cmd}] {exc} in {origin}", message))
    elif step.code not in (0, 1, 2) or (step.code == 1 and step.command != "verify"):
        found.append(Violation("bad-exit", f"exit {step.code} [{cmd}]", step.stderr[-300:]))
    if step.code == 2:
        problem = _error_format(step.stderr, step.stdout)
        if step.stderr_chars > LIMIT_MESSAGE:
            problem = "unbounded error message"
        if problem:
            found.append(Violation("stderr-format", f"stderr-format [{cmd}]: {problem}",
                                   f"{step.stderr_chars} characters: {step.stderr[-300:]}"))
    ok = set(step.allowed) if step.code == 0 else set(step.reports) if step.code == 1 else set()
    temps = [p for p in step.created if re.search(r"(^|/)\.[^/]*\.tmp$", p)]
    if temps:
        found.append(Violation("stray-temp", f"stray-temp [{cmd}] exit {step.code}", ", ".join(temps)))
    partial = [p for p in step.created if p not in ok and p not in temps]
    if partial:
        found.append(Violation("partial-file", f"partial-file [{cmd}] exit {step.code}", ", ".join(partial)))
    changed = [p for p in step.modified if p not in ok]
    if changed:
        found.append(Violation("input-modified", f"input-modified [{cmd}]", ", ".join(changed)))
    if step.peak_mb > LIMIT_MB:
        found.append(Violation("memory", f"memory [{cmd}]: peak RSS over {LIMIT_MB} MB", f"{step.peak_mb:.0f} MB"))
    if step.seconds > LIMIT_S and not (step.escaped or "").startswith("CaseTimeout"):
        found.append(Violation("time", f"time [{cmd}]: over {LIMIT_S:g} s", f"{step.seconds:.1f} s"))
    if step.nan:
        found.append(Violation("nan-output", f"nan-output [{cmd}]", step.nan))
    if step.hidden:
        bug = re.search(r"internal error: .*", step.hidden)
        found.append(Violation("hidden-error", f"hidden-error [{cmd}] {normalise(bug.group(0) if bug else step.hidden)}",
                               step.hidden))
    return found


def _error_format(stderr: str, stdout: str) -> str | None:
    """What is wrong with the stderr of an exit-2 command, or None."""
    if "Traceback" in stderr or "Traceback" in stdout:
        return "traceback without --debug"
    lines = stderr.rstrip("\n").split("\n") if stderr.strip() else []
    errors = [i for i, line in enumerate(lines) if line.startswith(ERROR)]
    if len(errors) != 1:
        return f"{len(errors)} 'photoncc: error:' lines"
    first = errors[0]
    before, after = lines[:first], lines[first + 1:]
    if any(not (line.startswith("photoncc: warning: ") or line.startswith("photoncc: no --inputs given"))
           for line in before):
        return "other text before the error line"
    if after and not (re.search(r"\d+ unsupported node\(s\):$", lines[first])
                      and all(line.startswith("  node ") for line in after)):
        return "more than one line"
    if not lines[first][len(ERROR):].strip():
        return "empty error message"
    return None


def _internal_error(stderr: str) -> tuple[str, str]:
    """(exception type, message) of photoncc's internal-error line."""
    found = re.search(r"internal error \(.*?\): ([\w.]+): ?(.*)", stderr)
    return (found.group(1), found.group(2)[:300]) if found else ("?", stderr.strip()[-300:])


def _exception(text: str | None) -> tuple[str, str]:
    """(exception type, innermost photoncc frame ``file:function``) of a Python traceback."""
    if not text:
        return "?", "?"
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
    ours = [(f, fn) for f, _, fn in frames if "/photoncc/" in f]
    origin = "?"
    if ours:
        path, function = ours[-1]
        origin = f"photoncc/{path.split('/photoncc/')[-1]}:{function}"
    elif frames:
        origin = f"{Path(frames[-1][0]).name}:{frames[-1][2]}"
    last = last_line(text)
    exc = re.match(r"([\w.]+)(:|$)", last)
    return (exc.group(1) if exc else "?"), origin


def last_line(text: str) -> str:
    """The last unindented line of a traceback (the exception), cut to 300 characters."""
    lines = [line for line in text.strip().splitlines() if line and not line.startswith(" ")]
    return lines[-1][:300] if lines else ""


def normalise(text: str) -> str:
    """A message with paths, quoted names and numbers blanked out, for grouping."""
    text = re.sub(r"(?<![\w.])(/[^\s'\"():,]+)+", "PATH", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
    return text[:200]
