"""Errors that are the user's input's fault. The CLI turns them into one line and exit code 2.

Anything else that escapes is a compiler bug and keeps its traceback.
"""


class UserError(Exception):
    """Unusable input: a model, profile, data file, program or option. ``str()`` is the message."""


class UnsupportedModel(UserError):
    """The model has nodes the profile cannot run; ``problems`` lists every one of them."""

    def __init__(self, source: str, problems: list):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} unsupported node(s):"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


class ProgramError(UserError):
    """A device program that is corrupted, truncated or of an unknown format version."""


class KnownAnswerError(ProgramError):
    """A program's known-answer test failed: it no longer computes what was compiled."""


class DeviceError(UserError):
    """The program asks the device for something it cannot do (a negative weight on an incoherent bank)."""


def quoted(e: BaseException, limit: int = 120) -> str:
    """A library's exception as a user error quotes it: its type and its text on one line, at most
    ``limit`` characters of it (NumPy's and zipfile's texts may hold line breaks: np.load's refusal
    of a 65535-byte .npy header did)."""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:limit]}"
