"""The ``photoncc`` command line (contract: docs/cli.md). The only package that prints.

Exit codes: 0 success; 1 ``verify`` ran and the outputs are not equivalent; 2 unusable input (one
line ``photoncc: error: ...`` on stderr, or a list for unsupported nodes; no traceback unless
``--debug``); 3 an internal error (a bug in photoncc).

Modules: ``app`` (the command group and ``main``: exit codes and error lines), ``common`` (what
the commands share: options, readers, stderr lines, the progress bar), and one module per command
or pair of commands: ``compile`` (compile, check), ``simulate``, ``verify``, ``listings`` (inspect,
profiles, ops), ``sweep``, ``chips`` (chip, calibrate), ``finetune``.
"""
from . import chips, compile, finetune, listings, simulate, sweep, verify  # noqa: F401  (each registers its commands)
from .app import cli, main

__all__ = ["cli", "main"]
