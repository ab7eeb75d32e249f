"""The documentation shows what the code does: every `photoncc ... --help` block of docs/cli.md is
the command's help as it prints it (80 columns), and the electronic operators listed in
docs/program-format.md are the registry's. `python tests/test_docs.py --write` rewrites them."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = ROOT / "docs" / "cli.md"
FORMAT_DOC = ROOT / "docs" / "program-format.md"
HELP_BLOCK = re.compile(r"```\n\$ photoncc (?P<command>[a-z ]*?)\s*--help\n(?P<text>.*?)```", re.S)
OPS_LIST = re.compile(r"(The electronic ops of version 1 \(the registry's ops with a kernel, `photoncc.ops.kernels\(\)`\):\n\n)"
                      r"(?P<list>.*?)(\n\n)", re.S)


def help_text(command: str) -> str:
    env = {**os.environ, "COLUMNS": "80"}
    argv = [sys.executable, "-m", "photoncc", *command.split(), "--help"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout


def ops_list() -> str:
    from photoncc import ops
    names = sorted(name for name in ops.kernels() if ops.get(name).onnx_op)
    return "\n".join(textwrap.wrap(", ".join(names) + ".", 100))


def documented(text: str):
    return [(m.group("command"), m.group("text")) for m in HELP_BLOCK.finditer(text)]


def test_every_help_block_of_cli_md_is_the_commands_help():
    blocks = documented(CLI_DOC.read_text())
    assert len(blocks) >= 9
    for command, text in blocks:
        assert text == help_text(command), f"docs/cli.md: `photoncc {command} --help` differs (run tests/test_docs.py --write)"


def test_the_program_format_lists_the_registrys_electronic_ops():
    found = OPS_LIST.search(FORMAT_DOC.read_text())
    assert found and found.group("list") == ops_list(), "docs/program-format.md: the op list differs (--write)"


def write() -> None:
    def block(match) -> str:
        command = match.group("command").strip()
        return f"```\n$ photoncc {command + ' ' if command else ''}--help\n{help_text(command)}```"
    CLI_DOC.write_text(HELP_BLOCK.sub(block, CLI_DOC.read_text()))
    FORMAT_DOC.write_text(OPS_LIST.sub(lambda m: m.group(1) + ops_list() + m.group(3), FORMAT_DOC.read_text()))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
