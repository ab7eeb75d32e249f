"""The ONNX backend node tests through photoncc, and the operator table they fill (docs/operators.md).

    python tools/node_tests.py [--write] [--only OP ...]

The cases are those of onnx/backend/test/data/node, built in memory by the generators the onnx
wheel ships (``onnx.backend.test.case.node.collect_testcases``; nothing is downloaded), NumPy's
global generator seeded first so that their random inputs are the same on every run. A case belongs
to its node's operator; an ``_expanded`` case (the operator's function body, other operators) counts
with its operator. Every case of an operator photoncc claims (the registry's ONNX operators) is

1. prepared: the inputs photoncc needs constant become initializers holding the case's values (the
   setting inputs ``Op.settings``, the weights of the matrix products, which a bank holds: every
   input after the first of Gemm, Conv, ConvTranspose and the recurrent layers; the inputs of Range
   and ConstantOfShape), and so does every other input that is not batched like the first one (rank
   0, or another length of axis 0): it is a parameter of the model. The remaining inputs are the
   data (a MatMul or Einsum of two of them is a product of activations);
2. compiled for the ``ideal`` profile, calibrated on the case's own inputs;
3. run by the simulator (one batch) and compared with the case's expected outputs: the same shape
   and dtype, floats within the case's tolerance (rtol 1e-3, atol 1e-7; NaN equals NaN), the others
   equal.

It passes, fails (wrong values, or an error that is not the model's fault), or is refused (the
error photoncc gives the user: its reason). Axis 0 is the batch for photoncc, so a case that
computes across its first axis is refused, honestly.

Without --write it prints the counts and every case that failed. --write regenerates
docs/operators.md and tests/data/node_tests.json (each case's result, which
tests/test_node_tests.py recomputes: the table cannot go stale silently).
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import re
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's photoncc

from photoncc import ops  # noqa: E402
from photoncc.compiler import compile_model  # noqa: E402
from photoncc.errors import KnownAnswerError, UnsupportedModel, UserError  # noqa: E402
from photoncc.profile import load_profile  # noqa: E402
from photoncc.sim import Simulator  # noqa: E402

DOC = ROOT / "docs" / "operators.md"
RESULTS = ROOT / "tests" / "data" / "node_tests.json"
EXPANDED = re.compile(r"_expanded(_ver\d+)?$")
PRODUCTS = ("Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN")  # every input after the first: weights
FROM_SETTINGS = ("Range", "ConstantOfShape")  # every input a setting
DOMAINS = ("", "ai.onnx.ml")  # the tables' domains
VERIFY_RTOL = 1e-4  # the ideal profile's exact tier: max |error| <= 1e-4 of the output's range
# cases whose expected outputs (onnx's reference implementation) disagree with the operator's
# specification as onnxruntime implements it, which photoncc follows
DISAGREE = dict.fromkeys(
    ("test_resize_downsample_scales_cubic_align_corners", "test_resize_downsample_scales_linear_align_corners"),
    "the expected outputs take align_corners' length_resized as the fractional scale x length; the "
    "specification's text and onnxruntime take the output's (integer) length, as photoncc does")


@functools.lru_cache(maxsize=1)
def all_cases() -> tuple:
    """Every node test case of the installed onnx, as (operator, domain, TestCase), by name."""
    from onnx.backend.test.case.node import collect_testcases
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    own = {c.name: c.model.graph.node[0] for c in cases if not EXPANDED.search(c.name)}
    found = []
    for c in sorted(cases, key=lambda c: c.name):
        node = own.get(EXPANDED.sub("", c.name))
        if node is not None:
            found.append((node.op_type, node.domain or "", c))
    return tuple(found)


def claimed_cases(only=()) -> list:
    return [(op, c) for op, domain, c in all_cases() if ops.accepts(op, domain) and (not only or op in only)]


def _array(value) -> np.ndarray:
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


def _constant_inputs(model: onnx.ModelProto, values: dict) -> set:
    """The graph inputs that become initializers (module docstring, step 1)."""
    names = [v.name for v in model.graph.input]
    if not names:
        return set()
    first = values[names[0]]
    wanted = set()
    for node in model.graph.node:
        found = ops.get(node.op_type)
        if node.op_type in FROM_SETTINGS:
            wanted.update(node.input)
        elif node.op_type in PRODUCTS:
            wanted.update(node.input[1:])
        elif found is not None:
            wanted.update(node.input[1:1 + len(found.settings)])
    wanted.update(name for name in names[1:]
                  if values[name].ndim == 0 or first.ndim == 0 or values[name].shape[0] != first.shape[0])
    return wanted & set(names)


def prepare(case) -> tuple[onnx.ModelProto, dict]:
    """The case's model with its constant inputs made initializers, and the data feeds."""
    model = onnx.ModelProto.FromString(case.model.SerializeToString())
    inputs = case.data_sets[0][0]
    values = {v.name: _array(x) for v, x in zip(model.graph.input, inputs)}
    constant = _constant_inputs(model, values)
    model.graph.initializer.extend(numpy_helper.from_array(values[name], name) for name in sorted(constant))
    if model.ir_version >= 4:  # older files list their initializers among the inputs too
        kept = [v for v in model.graph.input if v.name not in constant]
        del model.graph.input[:]
        model.graph.input.extend(kept)
    return model, {name: value for name, value in values.items() if name not in constant}


def _reason(e: Exception, path: Path) -> str:
    """The first line of photoncc's error, without the model's (temporary) path."""
    if isinstance(e, UnsupportedModel):
        return f"{e.problems[0].op}: {e.problems[0].reason}"
    return str(e).split("\n")[0].replace(f"{path}: ", "")


def compare(outputs: list, want: list, got: dict, rtol: float, atol: float) -> str:
    """'' when ``got`` holds every expected output, else what differs first."""
    for name, expected in zip(outputs, want):
        expected, value = _array(expected), got.get(name)
        if value is None:
            return f"no output {name!r}"
        value = np.asarray(value)
        if value.shape != expected.shape or value.dtype != expected.dtype:
            return f"output {name!r} is {value.dtype}{list(value.shape)}, expected {expected.dtype}{list(expected.shape)}"
        if expected.dtype.kind not in "fc":
            if not np.array_equal(value, expected):
                return f"wrong values of output {name!r}"
        elif not np.allclose(value, expected, rtol=rtol, atol=atol, equal_nan=True):
            error = np.nanmax(np.abs(value.astype(np.float64) - expected)) if value.size else 0.0
            if error <= VERIFY_RTOL * (np.nanmax(expected) - np.nanmin(expected)):
                return (f"output {name!r} within {VERIFY_RTOL:g} of its range (verify's exact tier) but not within "
                        f"the node test's tolerance (rtol {rtol:g}, atol {atol:g}): the banks' float32 rounding")
            return f"wrong values of output {name!r}"
    return ""


def run_case(case) -> tuple[str, str]:
    """(status, reason) of one case: pass, fail or refused (module docstring)."""
    inputs, want = case.data_sets[0]
    if any(isinstance(v, (list, dict)) or v is None for v in list(inputs) + list(want)):
        return "refused", "sequence, map or optional inputs or outputs"
    model, feeds = prepare(case)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        onnx.save(model, str(path))
        try:
            with np.errstate(all="ignore"):
                program = compile_model(str(path), load_profile("ideal"), calibration=feeds)
                got = Simulator(program).run(feeds)
        except KnownAnswerError as e:
            return "fail", f"known-answer test: {_reason(e, path)}"
        except UserError as e:
            return "refused", _reason(e, path)
        except Exception as e:  # noqa: BLE001 - a compiler or simulator bug: the case fails, named
            return "fail", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    differs = compare([o.name for o in case.model.graph.output], want, got, case.rtol, case.atol)
    return ("fail", DISAGREE.get(case.name, differs)) if differs else ("pass", "")


def run(only=()) -> dict:
    """name -> [operator, status, reason] for every claimed case (of the operators ``only``)."""
    return {c.name: [op, *run_case(c)] for op, c in claimed_cases(only)}


# ------------------------------------------------------------------------------------- the table

def _operators() -> list[tuple[str, str, bool]]:
    """(domain, name, deprecated) of every operator of DOMAINS, by domain and name."""
    latest = {}
    for schema in onnx.defs.get_all_schemas():
        if schema.domain in DOMAINS:
            latest[(schema.domain, schema.name)] = schema.deprecated
    return [(d, n, dep) for (d, n), dep in sorted(latest.items())]


REFUSALS = (  # why a case is refused, by the words of the reason
    ("for the batch axis", ("batch",)),
    ("for element types photoncc does not compute with (float8, bfloat16, int4, strings...)",
     ("photoncc does not compute with", "which photoncc cannot place", "which photoncc cannot feed")),
)


def _refusals(results: dict) -> list[tuple[str, int]]:
    """(why, count) of the refused cases, by REFUSALS, then the others."""
    counts = collections.Counter()
    for _, status, reason in results.values():
        if status == "refused":
            counts[next((why for why, words in REFUSALS if any(w in reason for w in words)), "for other reasons")] += 1
    return [(why, counts[why]) for why, _ in REFUSALS + (("for other reasons", ()),) if counts[why]]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: dict) -> str:
    """docs/operators.md from the registry and the cases' results."""
    per_op = collections.defaultdict(collections.Counter)
    reasons = collections.defaultdict(collections.Counter)
    for op, status, reason in results.values():
        per_op[op][status] += 1
        if status == "refused":
            reasons[op][reason] += 1
    lines = _introduction(results, per_op)
    for domain in DOMAINS:
        lines += _domain_table(domain, per_op, reasons)
    failed = sorted((op, name, reason) for name, (op, status, reason) in results.items() if status == "fail")
    lines += ["## Failing node tests", ""]
    lines += [f"* `{name}` ({op}): {_cell(reason)}" for op, name, reason in failed] or ["None."]
    return "\n".join(lines) + "\n"


def _introduction(results: dict, per_op: dict) -> list[str]:
    """The page's title and the paragraphs before the tables: the totals, how a case runs, the
    mappings."""
    total = collections.Counter()
    for counts in per_op.values():
        total.update(counts)
    return [
        "# Operators",
        "",
        "<!-- generated by `python tools/node_tests.py --write`; do not edit -->",
        "",
        "Every operator of ONNX's default domain (`ai.onnx`, opset "
        f"{onnx.defs.onnx_opset_version()}) and of `ai.onnx.ml`, with photoncc's mapping (its placement in the "
        "registry, `photoncc/ops/`, as `photoncc ops` prints it) or why it is refused, and how many of the "
        f"ONNX backend node tests of each mapped operator pass through photoncc (onnx {onnx.__version__}).",
        "",
        f"**{total['pass']} of {sum(total.values())} node tests** of the {len(per_op)} mapped operators that "
        f"have tests pass; {total['fail']} fail and {total['refused']} are refused, photoncc's error to the "
        "user: " + ", ".join(f"{count} {why}" for why, count in _refusals(results)) + ". photoncc keeps axis 0 "
        "as the batch and refuses an op that computes across it; most node tests give tensors without a batch "
        "axis, so their axis 0 is taken as one.",
        "",
        "How a case runs (`tools/node_tests.py`): the inputs photoncc needs constant (the setting inputs, "
        "such as Reshape's shape or Resize's scales, the weights of Gemm, Conv, ConvTranspose and the "
        "recurrent layers, the inputs of Range and ConstantOfShape) and every other input not batched like "
        "the first one (rank 0, or another length of axis 0: a parameter) become initializers holding the "
        "case's values; the model is compiled for "
        "`ideal`, calibrated on the case's inputs, run by the simulator and compared with the expected outputs "
        "(same shape and dtype; floats within rtol 1e-3, atol 1e-7). An `_expanded` case (the operator's "
        "function body) counts with its operator. `tests/test_node_tests.py` runs every case again and checks "
        "each result against `tests/data/node_tests.json`.",
        "",
        "Mappings: optical (a matrix product on the photonic banks), folded (into the neighbouring bank, else "
        "electronic), electronic (after the ADC), layout (data movement), compile (evaluated at compile time), "
        "removed (vanishes in inference).",
        "",
    ]


def _domain_table(domain: str, per_op: dict, reasons: dict) -> list[str]:
    """The table of one domain's operators: each one's mapping and node-test counts, or why it is
    refused."""
    available = collections.Counter(op for op, _, _ in all_cases())
    lines = [f"## `{domain or 'ai.onnx'}`", "",
             "| operator | mapping | node tests passed | refused: the most frequent reason | note |",
             "|---|---|---|---|---|"]
    for d, name, deprecated in _operators():
        if d != domain:
            continue
        label = f"{name} (deprecated)" if deprecated else name
        if ops.accepts(name, domain):
            counts = per_op.get(name)
            tests = f"{counts['pass']} / {sum(counts.values())}" if counts else "no tests"
            common = reasons[name].most_common(1)
            why = f"{counts['refused']}: {common[0][0]}" if common else ""
            lines.append(f"| {label} | {ops.get(name).placement} | {tests} | {_cell(why)} | "
                         f"{_cell(ops.get(name).note)} |")
        else:
            reason = ops.REFUSED.get(name, "no mapping yet")
            cases = f"{available[name]} not run" if available[name] else "no tests"
            lines.append(f"| {label} | **refused** | {cases} | | {_cell(reason)} |")
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="regenerate docs/operators.md and the results file")
    parser.add_argument("--only", nargs="*", default=(), metavar="OP", help="only these operators' cases")
    args = parser.parse_args(argv)
    if args.write and args.only:
        parser.error("--write runs every case")
    results = run(args.only)
    counts = collections.Counter(status for _, status, _ in results.values())
    print(f"{len(results)} case(s) of {len({op for op, _, _ in results.values()})} claimed operator(s): "
          f"{counts['pass']} passed, {counts['fail']} failed, {counts['refused']} refused")
    for name, (op, status, reason) in results.items():
        if status == "fail":
            print(f"  FAIL {name} ({op}): {reason}")
    if args.write:
        RESULTS.write_text(json.dumps({"onnx": onnx.__version__, "cases": results}, indent=1, sort_keys=True) + "\n")
        DOC.write_text(render(results))
        print(f"wrote {DOC.relative_to(ROOT)} and {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
