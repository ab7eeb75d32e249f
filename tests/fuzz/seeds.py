"""The seed material every border mutates: tiny models built here, models copied from
tests/data, valid data for each, programs compiled from them by the real command line, and the
built-in profiles as documents. Built once per work folder (``seeds_for``) and shared by the
worker processes."""
from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

from photoncc.cli import main
from photoncc.profile import BUILTIN_DIR, builtin_names

TESTS = Path(__file__).resolve().parent.parent
DATA = TESTS / "data"
# The built-in profiles in the order the cases draw them from: the five the first campaigns knew in
# their order, then any other photoncc ships. builtin_names() alone is sorted, and drawing from that
# order would give most profile seeds another base profile than their earlier runs and reports name.
FIRST_PROFILES = ("ideal", "mrr-incoherent-8b", "mrr-balanced-8b", "mrr-sigmoid-8b", "harsh-4b")
BUILTIN_PROFILES = tuple([n for n in FIRST_PROFILES if n in builtin_names()] +
                         [n for n in builtin_names() if n not in FIRST_PROFILES])


def vinfo(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    """A checked opset-17 model; ``inits`` (name, array) pairs; outputs given by name get the type
    onnx's shape inference finds."""
    graph = helper.make_graph(nodes, "g", inputs, [], [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="photoncc-fuzz")
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    known = {v.name: v for v in list(inferred.value_info) + list(inferred.output)}
    model.graph.output.extend(known[o] for o in outputs)
    onnx.checker.check_model(model)
    return model


def _tiny_models() -> dict:
    """Small models built with onnx.helper (seeded weights): name -> (ModelProto, {input: (shape, dtype)})."""
    r = np.random.default_rng(0)

    def w(*shape):
        return r.normal(size=shape).astype(np.float32)
    f32 = TensorProto.FLOAT
    models = {
        "mlp": make_model(
            [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1"), helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("Gemm", ["a", "W2", "b2"], ["logits"], name="fc2"),
             helper.make_node("Softmax", ["logits"], ["y"], axis=1)],
            [vinfo("x", ["N", 4])], ["y"], [("W1", w(4, 5)), ("b1", w(5)), ("W2", w(5, 3)), ("b2", w(3))]),
        "sig": make_model(
            [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1"), helper.make_node("Sigmoid", ["h"], ["s"]),
             helper.make_node("Gemm", ["s", "W2", "b2"], ["y"], name="fc2")],
            [vinfo("x", ["N", 4])], ["y"], [("W1", w(4, 5)), ("b1", w(5)), ("W2", w(5, 3)), ("b2", w(3))]),
        "two": make_model(
            [helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Gemm", ["c", "W", "bias"], ["y"], name="fc")],
            [vinfo("a", ["N", 3]), vinfo("b", ["N", 2])], ["y"], [("W", w(5, 2)), ("bias", w(2))]),
        "intin": make_model(
            [helper.make_node("Cast", ["i"], ["f"], to=f32), helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="fc")],
            [vinfo("i", ["N", 4], TensorProto.INT64)], ["y"], [("W", w(4, 3)), ("b", w(3))]),
        "cnn": make_model(
            [helper.make_node("Conv", ["x", "K", "kb"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="fc")],
            [vinfo("x", ["N", 1, 4, 4])], ["y"], [("K", w(2, 1, 3, 3)), ("kb", w(2)), ("W", w(32, 3)), ("b", w(3))]),
    }
    specs = {"mlp": {"x": ((4,), "float32")}, "sig": {"x": ((4,), "float32")},
             "two": {"a": ((3,), "float32"), "b": ((2,), "float32")}, "intin": {"i": ((4,), "int64")},
             "cnn": {"x": ((1, 4, 4), "float32")}}
    return {name: (models[name], specs[name]) for name in models}


def good_arrays(specs: dict, count: int, rng: np.random.Generator) -> dict:
    """Valid samples for inputs ``specs`` (name -> (shape, dtype)): normal floats, small ints."""
    arrays = {}
    for name, (shape, dtype) in specs.items():
        if np.dtype(dtype).kind == "f":
            arrays[name] = rng.normal(size=(count,) + tuple(shape)).astype(dtype)
        else:
            arrays[name] = rng.integers(0, 5, (count,) + tuple(shape)).astype(dtype)
    return arrays


@dataclass
class SeedModel:
    """A model every border may start from, with valid data for it."""
    name: str
    path: Path
    data: Path                 # valid samples (also the calibration data)
    specs: dict                # input name -> (per-sample shape, dtype)
    companions: tuple = ()     # files that travel with the model (external data)


@dataclass
class SeedProgram:
    """A program compiled from a seed model for a profile (named ``MODEL@PROFILE``; ``profile``: what
    ``-p`` took, a built-in name or a file of the seed folder)."""
    name: str
    path: Path
    model: SeedModel
    profile: str


class Seeds:
    """The seed material of every border, built once into ``folder``: small models (built here and
    copied from tests/data), their data, and programs compiled from them by the real CLI."""

    FIXTURES = {"digits": ("digits_mlp.onnx", "digits_calibration.npz", 32),
                "dynamo_mlp": ("torch_dynamo_mlp.onnx", "torch_dynamo_mlp.npz", 8),
                "tanh9": ("torch_legacy_mlp_tanh.onnx", "torch_legacy_mlp_tanh.npz", 8),
                "skl_mlp": ("skl2onnx_mlp.onnx", "skl2onnx_mlp.npz", 16)}
    PROGRAMS = (("mlp", "ideal"), ("mlp", "mrr-incoherent-8b"), ("mlp", "mrr-balanced-8b"),
                ("sig", "mrr-sigmoid-8b"), ("cnn", "ideal"), ("cnn", "harsh-4b"), ("two", "ideal"),
                ("intin", "ideal"), ("digits", "ideal"), ("digits", "mrr-incoherent-8b"),
                # for the chip border: every architecture, and MZI meshes small enough to calibrate fast
                ("mlp", "mrr-sigmoid-8b"), ("mlp", "harsh-4b"), ("mlp", "mzi-ideal"), ("mlp", "mzi-8b"),
                ("mlp", "mzi-dat"), ("mlp", "mzi-4p"), ("mlp", "dat-8p"), ("cnn", "mzi-4p"), ("two", "mzi-8b"),
                ("mlp", "reck-6p"))
    # small MZI profiles (files in the seed folder): calibrate is slow on big meshes
    PROFILE_FILES = {"mzi-4p": {"extends": "mzi-8b", "name": "mzi-4p", "mesh": {"ports": 4}},
                     "dat-8p": {"extends": "mzi-dat", "name": "dat-8p", "mesh": {"ports": 8}},
                     "reck-6p": {"extends": "mzi-8b", "name": "reck-6p", "mesh": {"ports": 6, "layout": "reck"}}}

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.models = {}
        rng = np.random.default_rng(1)
        for name, (proto, specs) in _tiny_models().items():
            path = self.folder / f"{name}.onnx"
            path.write_bytes(proto.SerializeToString())
            data = self.folder / f"{name}.npz"
            np.savez(data, **good_arrays(specs, 16, rng))
            self.models[name] = SeedModel(name, path, data, specs)
        for name, (model_file, data_file, count) in self.FIXTURES.items():
            path = self.folder / model_file
            shutil.copy(DATA / model_file, path)
            companions = []
            if (DATA / f"{model_file}.data").exists():
                shutil.copy(DATA / f"{model_file}.data", self.folder / f"{model_file}.data")
                companions.append(self.folder / f"{model_file}.data")
            with np.load(DATA / data_file) as archive:
                arrays = {k: archive[k][:count] for k in archive.files if k != "label"}
            data = self.folder / f"{name}.npz"
            np.savez(data, **arrays)
            specs = {k: (v.shape[1:], v.dtype.name) for k, v in arrays.items()}
            self.models[name] = SeedModel(name, path, data, specs, tuple(companions))
        # profile name -> what -p takes (a built-in name, or the path of a file in the seed folder)
        self.profile_specs = {name: name for name in BUILTIN_PROFILES}
        for name, doc in self.PROFILE_FILES.items():
            path = self.folder / f"{name}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            self.profile_specs[name] = str(path)
        self.programs = {}
        for model, profile in self.PROGRAMS:
            self._compile(self.models[model], profile)
        self.profiles = {name: yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text())
                         for name in BUILTIN_PROFILES}


    def _compile(self, seed: SeedModel, profile: str) -> None:
        path = self.folder / f"{seed.name}@{profile}.pcc"
        spec = self.profile_specs[profile]
        if not path.exists():
            with contextlib.redirect_stderr(io.StringIO()) as err, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code = main(["compile", str(seed.path), "-p", spec, "--calibration", str(seed.data), "-o", str(path)])
            if code != 0:
                raise RuntimeError(f"seed program {path.name} does not compile: {err.getvalue()}")
        self.programs[path.stem] = SeedProgram(path.stem, path, seed, spec)


_SEEDS: dict = {}


def seeds_for(workdir: Path) -> Seeds:
    """The seed material under ``workdir/_seeds``, built on first use in this process."""
    key = str(Path(workdir).resolve())
    if key not in _SEEDS:
        _SEEDS[key] = Seeds(Path(key) / "_seeds")
    return _SEEDS[key]
