"""The ONNX backend node tests of every operator photoncc claims, compiled for `ideal` and simulated
(tools/node_tests.py): each case gives the result recorded in tests/data/node_tests.json, and
docs/operators.md is the table generated from those results and the registry. Neither can go
stale silently: after a change, `python tools/node_tests.py --write` regenerates both."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import onnx
import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "node_tests.py"
REGENERATE = "regenerate with `python tools/node_tests.py --write`"


@pytest.fixture(scope="module")
def node_tests():
    spec = importlib.util.spec_from_file_location("node_tests", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorded(node_tests):
    found = json.loads(node_tests.RESULTS.read_text())
    if found["onnx"] != onnx.__version__:
        pytest.skip(f"the node tests were recorded with onnx {found['onnx']}; this is onnx {onnx.__version__}")
    return found["cases"]


@pytest.fixture(scope="module")
def results(node_tests, recorded):
    return node_tests.run()


def test_every_node_test_of_the_claimed_operators_gives_its_recorded_result(recorded, results):
    """Every case counted as passed still passes, and no other result changed either (a case that
    starts to pass, a new reason, or a new claimed operator, means the table is out of date)."""
    lost = sorted(name for name, (_, status, _) in recorded.items() if status == "pass"
                  and results.get(name, [None, None])[1] != "pass")
    assert not lost, f"{len(lost)} node test(s) no longer pass: " + ", ".join(
        f"{name} ({results[name][1]}: {results[name][2]})" if name in results else f"{name} (not run)"
        for name in lost[:10])
    changed = sorted(name for name in set(results) | set(recorded) if results.get(name) != recorded.get(name))
    assert not changed, f"{len(changed)} node test result(s) differ from the recorded ones, e.g. " + "; ".join(
        f"{name}: {recorded.get(name, 'not run')} -> {results.get(name, 'not run')}" for name in changed[:5]) \
        + f"; {REGENERATE}"


def test_operators_md_is_the_table_of_the_registry_and_the_recorded_results(node_tests, recorded):
    assert node_tests.DOC.read_text() == node_tests.render(recorded), f"docs/operators.md is out of date; {REGENERATE}"
