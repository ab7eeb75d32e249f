"""The ``photoncc`` command group and ``main``, which runs it and turns every error into its exit
code and one line (docs/cli.md): 1 verify found the outputs not equivalent, 2 unusable input,
3 an internal error."""
from __future__ import annotations

import sys
import traceback
import warnings

import click
import numpy as np

from .. import __version__
from ..errors import UserError
from . import common

DEBUG_FLAG = "--debug"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="photoncc")
@click.option(DEBUG_FLAG, is_flag=True, help="Show Python tracebacks for errors.")
def cli(debug):
    """Compile ONNX neural networks for photonic accelerators, simulate the device, verify the result.

    \b
    Typical use:
      photoncc compile model.onnx -p ideal --calibration calib.npz   # -> model.pcc
      photoncc verify model.pcc --inputs test.npz                    # exit 0 = equivalent
      photoncc simulate model.pcc --inputs test.npz -o out.npz
      photoncc inspect model.pcc

    Exit codes: 0 success, 1 verify found the outputs not equivalent, 2 unusable input,
    3 internal error (a bug in photoncc).
    """


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    if debug:  # a group option, but accepted anywhere on the line (`photoncc compile m.onnx --debug`)
        argv = [DEBUG_FLAG] + [a for a in argv if a != DEBUG_FLAG]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():  # the program speaks for itself: its own
            warnings.simplefilter("ignore", RuntimeWarning)         # warnings, not NumPy's
            cli.main(args=argv, prog_name="photoncc", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        common.say("photoncc: aborted")
        return 2
    except click.UsageError as e:
        if debug:
            traceback.print_exc()
        command = f" {e.ctx.command_path.split(' ', 1)[1]}" if e.ctx and " " in e.ctx.command_path else ""
        common.say(f"photoncc: error: {one_line(e.format_message())} (see `photoncc{command} --help`)")
        return 2
    except UserError as e:
        if debug:
            traceback.print_exc()
        common.say(f"photoncc: error: {e}")  # one line, or by design a list (UnsupportedModel: a node a line)
        return 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    except Exception as e:  # a bug in photoncc, not in the user's input: exit 3, never 1 or 2
        if debug:
            traceback.print_exc()
        common.say(f"photoncc: internal error (a bug in photoncc; please report it, run with --debug for the "
             f"traceback): {type(e).__name__}: {one_line(str(e))}")
        return 3
    return 0


def one_line(message: str) -> str:
    """A message on one line (an internal error's or click's text may hold line breaks)."""
    return " ".join(message.splitlines())
