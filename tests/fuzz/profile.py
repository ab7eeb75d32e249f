"""Profile border: hardware profile files for ``compile -p``, ``check -p``, ``verify -p`` and
``profiles FILE``.

A built-in profile, as a document, gets 1-3 mutations: half the cases only values its schema
accepts, at the extremes (they reach the compiler and the simulator), the others anything
(wrong types, deleted keys, unknown keys, odd ``extends``); then sometimes damage to the text
(``profile_text``). ``profile_documents`` is the same idea as a Hypothesis strategy.
"""
from __future__ import annotations

import copy
import random
import shutil
from pathlib import Path

import yaml

from photoncc.profile import ACTIVATIONS, BUILTIN_DIR, SCHEMA

from .case import Case, Plan, pick, simulate_plan
from .invoke import debug_rerun, invoke
from .nan import nan_problem
from .oracle import Outcome
from .profile_text import profile_text_mutation
from .seeds import BUILTIN_PROFILES, Seeds, seeds_for


def schema_leaves(schema=None, prefix=()):
    """(path, rule) of every leaf key of photoncc.profile.SCHEMA."""
    if schema is None:
        schema = SCHEMA
    for key, rule in schema.items():
        if isinstance(rule, dict):
            yield from schema_leaves(rule, prefix + (key,))
        else:
            yield prefix + (key,), rule


ODD_VALUES = [None, True, False, 0, 1, -1, 2, 0.5, -0.5, 1e-300, 1e300, 10**30, -(10**30), 2**63, 2**64,
              float("nan"), float("inf"), float("-inf"), "", "12", "abc", "auto", "incoherent", "balanced",
              "electronic", "photonic_sigmoid", [], [1, 2], [-1.0, 1.0], [-0.5, 0.25], [0, 1], [-1, 0],
              [float("nan"), 1.0], {}, {"a": 1}, [[1]], "x" * 5000]


# values some rule accepts: each leaf draws the ones its own rule accepts (valid but extreme)
EXTREME_POOL = [0, 1, 2, 3, 7, 16, 17, 50, 99.999, 100, 1000, 10**6, 10**30, 2**63, 1e-300, 1e-12, 0.999999,
                0.5, 1e300, float("inf"), "auto", "incoherent", "balanced", "electronic", "photonic_sigmoid",
                "photonic_sinusoidal", "saturable_absorber", [-1.0, 1.0], [-1.0, 1e-9], [-1e-9, 1.0],
                [-1, 0.001], None, "x" * 2000, "ünïcödé ✓"]


def extreme_values(rule) -> list:
    """The values of EXTREME_POOL that ``rule`` accepts."""
    good = []
    for v in EXTREME_POOL:
        try:
            if rule(v)[0]:
                good.append(v)
        except Exception:  # noqa: BLE001
            pass
    return good


def _get(doc, path):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _set(doc: dict, path, value) -> bool:
    for key in path[:-1]:
        if not isinstance(doc.get(key), dict):
            doc[key] = {}
        doc = doc[key]
    doc[path[-1]] = value
    return True


def _delete(doc: dict, path) -> bool:
    parent = _get(doc, path[:-1]) if len(path) > 1 else doc
    if isinstance(parent, dict) and path[-1] in parent:
        del parent[path[-1]]
        return True
    return False


def _paths(doc, prefix=()):
    """Every key path of a nested mapping."""
    for key, value in doc.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


def pmut_odd_value(doc, rng):
    """A schema leaf gets a value of the wrong type or out of range (string, list, bool, NaN, 10**30...)."""
    path, _ = rng.choice(list(schema_leaves()))
    value = rng.choice(ODD_VALUES)
    _set(doc, path, value)
    return f"{'.'.join(path)} = {str(value)[:40]!r}"


def pmut_extreme_value(doc, rng):
    """A schema leaf gets a value its rule accepts, chosen from the extremes (inf noise, 10**30 banks...)."""
    path, rule = rng.choice(list(schema_leaves()))
    values = extreme_values(rule)
    if not values or path == ("extends",):
        return None
    value = rng.choice(values)
    _set(doc, path, value)
    return f"{'.'.join(path)} = {str(value)[:40]!r} (accepted by its rule)"


def pmut_delete_key(doc, rng):
    """Delete one key at any depth (none when an earlier edit left no key)."""
    paths = list(_paths(doc))
    if not paths:
        return None
    path = rng.choice(paths)
    _delete(doc, path)
    return f"deleted {'.'.join(map(str, path))}"


def pmut_unknown_key(doc, rng):
    """Add an unknown key (a typo of a real one, a number, null, a boolean) at some depth."""
    paths = [p for p in _paths(doc) if isinstance(_get(doc, p), dict)] + [()]
    where = rng.choice(paths)
    target = _get(doc, where) if where else doc
    key = rng.choice(["bnks", "rings ", "Bank", "weight-bits", "", 1, None, True, 3.5, "extends2", "ü"])
    target[key] = rng.choice([1, "x", None])
    return f"unknown key {key!r} under {'.'.join(map(str, where)) or 'top'}"


def pmut_section(doc, rng):
    """Replace a whole section (bank, noise, verify...) by a scalar, a list or null."""
    keys = [k for k, v in doc.items() if isinstance(v, dict)]
    if not keys:
        return None
    key = rng.choice(keys)
    doc[key] = rng.choice([None, 1, "bank", [1, 2], [], True])
    return f"section {key} = {doc[key]!r}"


def pmut_activation(doc, rng):
    """Switch the activation kind, with parameters of another kind, A2 <= A1, or extreme parameters."""
    kind = rng.choice(list(ACTIVATIONS))
    params = {}
    every = [name for kind_params in ACTIVATIONS.values() for name in kind_params]  # A1 A2 x0 d OD I_sat
    for name in rng.sample(every, rng.randint(0, 3)):
        params[name] = rng.choice([0.0, 1.0, -1.0, 1e-300, 1e300, float("inf"), 0.06, 1.005, 10**30])
    doc["activation"] = {"kind": kind, **params}
    return f"activation {doc['activation']}"


def pmut_extends(doc, rng):
    """Use ``extends``: a built-in with only a few overrides, or an unknown/odd base (itself, a file,
    another case, a number, a list)."""
    base = rng.choice(BUILTIN_PROFILES)
    keep = rng.sample(list(doc), k=rng.randint(0, min(3, len(doc))))
    for key in list(doc):
        if key not in keep:
            del doc[key]
    doc["extends"] = rng.choice([base, base, base, "PROFILE_SELF", "ideal.yaml", "IDEAL", " ideal", "nope",
                                 str(BUILTIN_DIR / "ideal.yaml"), 5, None, [base], {"a": 1}])
    return f"extends {doc['extends']!r}, keeping {keep}"


PROFILE_DOC_MUTATORS = {pmut_odd_value: 6, pmut_extreme_value: 8, pmut_delete_key: 3, pmut_unknown_key: 2,
                        pmut_section: 1, pmut_activation: 3, pmut_extends: 3}


PROFILE_MODELS = {"mlp": 6, "sig": 3, "cnn": 2}


def write_profile(case: Case, seeds: Seeds, rng: random.Random) -> Path:
    """A built-in profile as a file, either with 1-3 values its schema accepts but at the extremes
    (half the cases: they reach the compiler and the simulator) or with 1-3 mutations of any
    kind, and sometimes damaged as text."""
    base = rng.choice(BUILTIN_PROFILES)
    doc = copy.deepcopy(seeds.profiles[base])
    extreme = rng.random() < 0.5
    case.notes.append(f"base {base}" + (" (accepted values only)" if extreme else ""))
    mutators = {pmut_extreme_value: 1} if extreme else PROFILE_DOC_MUTATORS
    for _ in range(rng.choice([1, 1, 2, 3])):
        for _attempt in range(5):
            note = pick(rng, mutators)(doc, rng)
            if note:
                case.notes.append(note)
                break
    path = case.folder / "in" / rng.choice(["profile.yaml", "profile.yaml", "profile.yml", "profile.txt", "profile"])
    if doc.get("extends") == "PROFILE_SELF":
        doc["extends"] = str(path)
    try:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        text = yaml.safe_dump(seeds.profiles[base], sort_keys=False)
    blob = text.encode()
    if not extreme and rng.random() < 0.45:
        blob, note = profile_text_mutation(text, rng)
        case.notes.append(note)
    path.write_bytes(blob)
    return path


def build_profile_case(case: Case, seeds: Seeds, rng: random.Random, nrng) -> None:
    """A mutated profile file used by compile (then simulate), check, verify or profiles."""
    path = write_profile(case, seeds, rng)
    r = rng.random()
    if r < 0.03:
        path = case.folder / "in"          # a folder, not a file
        case.notes.append("profile path is a folder")
    elif r < 0.05:
        path = Path(rng.choice(["idael", "mrr-incoherent-8", "no/such/file.yaml", "", "ideal.yaml"]))
        case.notes.append(f"profile spec {str(path)!r}")
    seed = seeds.models[pick(rng, PROFILE_MODELS)]
    out = case.folder / "out"
    command = pick(rng, {"compile": 13, "check": 4, "verify": 2, "profiles": 1})
    if command == "compile":
        program = out / "p.pcc"
        argv = ["compile", str(seed.path), "-p", str(path), "--calibration", str(seed.data), "-o", str(program)]
        case.plans.append(Plan(argv, (program,)))
        case.plans.append(simulate_plan(program, seed.data, out / "sim.npz", seed.path, seed.specs, rng, follow=True))
    elif command == "check":
        case.plans.append(Plan(["check", str(seed.path), "-p", str(path)]))
    elif command == "verify":
        argv = ["verify", str(seed.path), "-p", str(path), "--inputs", str(seed.data), "--trials", "2"]
        if rng.random() < 0.5:
            argv += ["--noise-model", "statistical"]
        case.plans.append(Plan(argv))
    else:
        case.plans.append(Plan(["profiles", str(path)]))


# ---------------------------------------------------------------------- Hypothesis


def profile_documents():
    """A Hypothesis strategy of profile documents: a built-in profile with 1-4 keys (schema leaves,
    sections, unknown keys) set to values of any type, or deleted."""
    from hypothesis import strategies as st
    leaves = [path for path, _ in schema_leaves()]
    sections = sorted({path[:1] for path in leaves if len(path) > 1})
    paths = st.sampled_from(leaves + sections + [("bnk",), ("bank", "ring"), ("extends",)])
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                        st.sampled_from(EXTREME_POOL[:-2]))
    values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=2),
                       st.just("__delete__"))
    edits = st.lists(st.tuples(paths, values), min_size=1, max_size=4)

    def build(args):
        base, changes = args
        doc = copy.deepcopy(yaml.safe_load((BUILTIN_DIR / f"{base}.yaml").read_text()))
        for path, value in changes:
            if value == "__delete__":
                _delete(doc, path)
            else:
                _set(doc, path, value)
        return doc
    return st.tuples(st.sampled_from(BUILTIN_PROFILES), edits).map(build)


def run_profile_document(doc: dict, workdir, name: str = "hyp") -> Outcome:
    """Compile the tiny MLP for profile ``doc`` (then simulate the program); the Outcome of both."""
    workdir = Path(workdir)
    seeds = seeds_for(workdir)
    folder = workdir / f"profile-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "out").mkdir(parents=True)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    path = folder / "profile.yaml"
    path.write_text(text)
    seed = seeds.models["mlp"]
    program = folder / "out" / "p.pcc"
    plans = [Plan(["compile", str(seed.path), "-p", str(path), "--calibration", str(seed.data), "-o", str(program)],
                  (program,)),
             simulate_plan(program, seed.data, folder / "out" / "sim.npz", seed.path, seed.specs, random.Random(0),
                           follow=True)]
    outcome = Outcome("profile", -1, [text], [], None, str(folder))
    for plan in plans:
        if plan.follow and outcome.steps[-1].code != 0:
            break
        step = invoke(plan.argv, folder, 20.0, plan.allowed, plan.reports)
        if step.code == 0 and plan.nan:
            step.nan = nan_problem(*plan.nan)
        if step.code == 3:
            debug_rerun(step, folder, 20.0)
        outcome.steps.append(step)
    shutil.rmtree(folder, ignore_errors=True)
    return outcome
