#!/usr/bin/env python3
"""Regenerate the exporter-written ONNX fixtures in ``tests/data/``.

The test suite only *reads* the committed ``.onnx`` / ``.onnx.data`` / ``.npz``
files; it never imports torch or skl2onnx.  This script is run by hand when
the fixtures have to be rebuilt.

Requirements (CPU-only torch wheel; a plain ``pip install torch`` pulls CUDA)::

    pip install torch==2.13.0  (the CPU build)
    pip install onnxscript skl2onnx scikit-learn
    # already required by photoncc: onnx==1.23.2 onnxruntime==1.32.0

The committed fixtures were made with torch 2.13.0+cpu, onnxscript 0.7.2,
onnx-ir 1.1.0, skl2onnx 1.20.0, scikit-learn 1.9.1, onnx 1.23.2,
onnxruntime 1.32.0, numpy 2.4.6 (see FIXTURES.md).

Usage::

    python tests/data/make_fixtures.py            # writes into tests/data/
    python tests/data/make_fixtures.py --check    # only re-check existing files

Everything is seeded (torch.manual_seed / numpy default_rng / sklearn
random_state), so reruns give the same weights and inputs; the torch files
are byte-identical on rerun.  Exceptions: skl2onnx names each graph with a
random uuid and may order ``opset_import`` differently (only that differs
between reruns), and the dynamo exporter
records source locations (this file's absolute path and line numbers) in node
metadata, so the ``torch_dynamo_*`` bytes change if this file moves or is
edited.

Fixtures (each with ``<name>.npz`` holding float32 inputs under the model's
input names; no expected outputs, tests run onnxruntime):

* ``torch_legacy_cnn.onnx``        TorchScript exporter (dynamo=False), opset 13,
  CNN on 3x16x16 with Conv+BN+ReLU, MaxPool, residual add, BN after the add
  (cannot be folded into a Conv, so a BatchNormalization node survives),
  depthwise Conv, LeakyReLU, AdaptiveAvgPool2d(1), Flatten, Linear.
* ``torch_legacy_cnn_nofold.onnx`` same model, ``do_constant_folding=False``.
* ``torch_legacy_mlp_tanh.onnx``   TorchScript exporter, opset 9, MLP
  20->32->16->5 with Tanh and LeakyReLU, ``x.view(x.size(0), -1)`` at the
  start (-> Shape/Gather/Unsqueeze/Concat/Reshape with Constant nodes);
  inputs are standardised features.
* ``torch_dynamo_mlp.onnx`` (+ ``.onnx.data``) dynamo exporter, external data,
  MLP with ReLU and a final Softmax.
* ``torch_dynamo_cnn.onnx`` (+ ``.onnx.data``) dynamo exporter, external data,
  Conv+BN+ReLU, MaxPool, residual add + BN (survives as BatchNormalization),
  ``x.view(x.size(0), -1)`` flatten, Linear.
* ``skl2onnx_mlp.onnx``        Pipeline(StandardScaler, MLPClassifier) on
  load_digits, zipmap=False (outputs: label tensor + probabilities tensor).
* ``skl2onnx_mlp_zipmap.onnx`` same pipeline, default zipmap=True.
* ``skl2onnx_logreg.onnx``     LogisticRegression (ai.onnx.ml LinearClassifier).
  The skl2onnx npz files hold 32 held-out digits under the input name plus an
  int64 ``label`` array with the true classes.

All models have a dynamic batch dimension: ``dim_param`` "batch" for the torch
ones, an anonymous dimension (no dim_value/dim_param) for the skl2onnx ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BATCH = 8


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _save_inputs(name: str, arrays: dict[str, np.ndarray]) -> None:
    np.savez(HERE / f"{name}.npz", **arrays)


def _verify(name: str, feeds: dict[str, np.ndarray], expected: list) -> None:
    """Run the written file with onnxruntime and compare with the source model."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(HERE / f"{name}.onnx"),
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-4, atol=1e-5,
                                   err_msg=f"{name}: onnxruntime != source model")


def _verify_torch(name: str, model, x, input_name: str) -> None:
    import torch

    with torch.no_grad():
        ref = model(x).numpy()
    _verify(name, {input_name: x.numpy()}, [ref])


def _remove(*names: str) -> None:
    for n in names:
        p = HERE / n
        if p.exists():
            p.unlink()


# --------------------------------------------------------------------------
# torch models
# --------------------------------------------------------------------------
def _torch_models():
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        """3x16x16 -> 10 logits."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv_res = nn.Conv2d(8, 8, 3, padding=1)
            # pre-activation style BN after the residual add: not foldable
            self.bn2 = nn.BatchNorm2d(8)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise
            self.pw = nn.Conv2d(8, 16, 1)
            self.act = nn.LeakyReLU(0.1)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))  # 8x16x16
            x = self.pool(x)  # 8x8x8
            x = x + self.conv_res(x)  # residual
            x = self.bn2(x)
            x = self.act(self.dw(x))
            x = self.act(self.pw(x))  # 16x8x8
            x = self.flatten(self.gap(x))  # 16
            return self.fc(x)

    class MLPTanh(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(20, 32),
                nn.Tanh(),
                nn.Linear(32, 16),
                nn.LeakyReLU(0.05),
                nn.Linear(16, 5),
            )

        def forward(self, x):
            # the common hand-written flatten at the start of an MLP; a no-op
            # on (N, 20) input, but the TorchScript exporter writes the
            # Shape->Gather->Unsqueeze->Concat->Reshape subgraph for it
            x = x.view(x.size(0), -1)
            return self.net(x)

    class MLPSoftmax(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(16, 32),
                nn.ReLU(),
                nn.Linear(32, 16),
                nn.ReLU(),
                nn.Linear(16, 4),
                nn.Softmax(dim=-1),
            )

        def forward(self, x):
            return self.net(x)

    class DynamoCNN(nn.Module):
        """1x12x12 -> 6 logits."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(6)  # directly after a Conv: gets folded
            self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(6)  # after the residual add: survives
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(6 * 3 * 3, 6)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn1(self.conv1(x))))  # 6x6x6
            x = self.bn2(x + self.conv2(x))  # residual
            x = self.pool(torch.relu(x))  # 6x3x3
            x = x.view(x.size(0), -1)  # the usual hand-written flatten
            return self.fc(x)

    return SmallCNN, MLPTanh, MLPSoftmax, DynamoCNN


def _randomise_bn(module, seed: int) -> None:
    """Non-trivial BatchNorm affine parameters (gamma != 1, beta != 0)."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))


def _warm_up_bn(model, shape, seed: int, steps: int = 20) -> None:
    """Non-trivial running stats from a few train-mode passes, then eval()."""
    import torch

    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            # shifted / scaled so running_mean != 0 and running_var != 1
            model(1.5 * torch.randn(*shape, generator=g) + 0.3)
    model.eval()


def make_torch_legacy_cnn() -> None:
    import torch

    SmallCNN, *_ = _torch_models()
    torch.manual_seed(1)
    model = SmallCNN()
    _randomise_bn(model, 11)
    _warm_up_bn(model, (16, 3, 16, 16), seed=12)
    x = torch.from_numpy(_rng(13).standard_normal((BATCH, 3, 16, 16)).astype(np.float32))
    for name, fold in (("torch_legacy_cnn", True), ("torch_legacy_cnn_nofold", False)):
        torch.onnx.export(
            model,
            (x,),
            str(HERE / f"{name}.onnx"),
            dynamo=False,
            opset_version=13,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=fold,
        )
        _save_inputs(name, {"image": x.numpy()})
        _verify_torch(name, model, x, "image")


def make_torch_legacy_mlp_tanh() -> None:
    import torch

    _, MLPTanh, *_ = _torch_models()
    torch.manual_seed(2)
    model = MLPTanh().eval()
    raw = _rng(21).normal(loc=3.0, scale=[0.5 + i for i in range(20)], size=(BATCH, 20))
    feats = ((raw - raw.mean(0)) / raw.std(0)).astype(np.float32)  # standardised
    x = torch.from_numpy(feats)
    torch.onnx.export(
        model,
        (x,),
        str(HERE / "torch_legacy_mlp_tanh.onnx"),
        dynamo=False,
        opset_version=9,  # ONNX_BASE_OPSET of the TorchScript exporter (min is 7)
        input_names=["features"],
        output_names=["scores"],
        dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}},
    )
    _save_inputs("torch_legacy_mlp_tanh", {"features": feats})
    _verify_torch("torch_legacy_mlp_tanh", model, x, "features")


def _export_dynamo(model, x, name: str, input_name: str, output_name: str) -> None:
    import onnx
    import torch

    _remove(f"{name}.onnx", f"{name}.onnx.data")
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(
        model,
        (x,),
        str(HERE / f"{name}.onnx"),
        dynamo=True,
        external_data=True,
        input_names=[input_name],
        output_names=[output_name],
        dynamic_shapes=({0: batch},),
    )
    m = onnx.load(str(HERE / f"{name}.onnx"), load_external_data=False)
    ext = [
        t.name
        for t in m.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    n_inline = len(m.graph.initializer) - len(ext)
    print(f"[{name}] exporter wrote {len(ext)} initializers external, {n_inline} inline")
    # onnx_ir.save (used by the exporter) keeps tensors below 256 bytes inline,
    # so a small model ends up *mixed*: big weights in .onnx.data, biases inline.
    # That is the exporter's real layout and is kept.  Only if nothing at all
    # was externalised, force every tensor out.
    if not ext:
        print(f"[{name}] nothing externalised; re-saving with all tensors external")
        m = onnx.load(str(HERE / f"{name}.onnx"))
        _remove(f"{name}.onnx.data")
        onnx.save_model(
            m,
            str(HERE / f"{name}.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            size_threshold=0,
            location=f"{name}.onnx.data",
        )


def make_torch_dynamo_mlp() -> None:
    import torch

    _, _, MLPSoftmax, _ = _torch_models()
    torch.manual_seed(3)
    model = MLPSoftmax().eval()
    x = torch.from_numpy(_rng(31).standard_normal((BATCH, 16)).astype(np.float32))
    _export_dynamo(model, x, "torch_dynamo_mlp", "x", "probs")
    _save_inputs("torch_dynamo_mlp", {"x": x.numpy()})
    _verify_torch("torch_dynamo_mlp", model, x, "x")


def make_torch_dynamo_cnn() -> None:
    import torch

    *_, DynamoCNN = _torch_models()
    torch.manual_seed(4)
    model = DynamoCNN()
    _randomise_bn(model, 41)
    _warm_up_bn(model, (16, 1, 12, 12), seed=42)
    x = torch.from_numpy(_rng(43).standard_normal((BATCH, 1, 12, 12)).astype(np.float32))
    _export_dynamo(model, x, "torch_dynamo_cnn", "image", "logits")
    _save_inputs("torch_dynamo_cnn", {"image": x.numpy()})
    _verify_torch("torch_dynamo_cnn", model, x, "image")


# --------------------------------------------------------------------------
# scikit-learn / skl2onnx
# --------------------------------------------------------------------------
def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y
    )
    return X_tr, X_te[:32], y_tr, y_te[:32].astype(np.int64)


def make_skl2onnx() -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X_tr, X_te, y_tr, y_te = _digits()
    initial_types = [("input", FloatTensorType([None, X_tr.shape[1]]))]
    inputs = {"input": X_te, "label": y_te}

    clf = MLPClassifier(
        hidden_layer_sizes=(16,), activation="relu", max_iter=400, random_state=0
    )
    pipe = Pipeline([("scaler", StandardScaler()), ("mlp", clf)]).fit(X_tr, y_tr)
    print(f"[skl2onnx_mlp] held-out accuracy on the 32 npz samples: "
          f"{(pipe.predict(X_te) == y_te).mean():.3f}")

    onx = convert_sklearn(pipe, initial_types=initial_types,
                          options={id(clf): {"zipmap": False}})
    (HERE / "skl2onnx_mlp.onnx").write_bytes(onx.SerializeToString())
    _save_inputs("skl2onnx_mlp", inputs)
    _verify("skl2onnx_mlp", {"input": X_te},
            [pipe.predict(X_te), pipe.predict_proba(X_te)])

    onx = convert_sklearn(pipe, initial_types=initial_types)  # default zipmap=True
    (HERE / "skl2onnx_mlp_zipmap.onnx").write_bytes(onx.SerializeToString())
    _save_inputs("skl2onnx_mlp_zipmap", inputs)
    _verify("skl2onnx_mlp_zipmap", {"input": X_te}, [pipe.predict(X_te)])

    logreg = LogisticRegression(max_iter=2000, random_state=0).fit(X_tr, y_tr)
    onx = convert_sklearn(logreg, initial_types=initial_types,
                          options={id(logreg): {"zipmap": False}})
    (HERE / "skl2onnx_logreg.onnx").write_bytes(onx.SerializeToString())
    _save_inputs("skl2onnx_logreg", inputs)
    _verify("skl2onnx_logreg", {"input": X_te},
            [logreg.predict(X_te), logreg.predict_proba(X_te)])


# --------------------------------------------------------------------------
# checking + summary
# --------------------------------------------------------------------------
FIXTURES = {  # name -> how it was written
    "torch_legacy_cnn": "torch.onnx.export(dynamo=False), do_constant_folding=True",
    "torch_legacy_cnn_nofold": "torch.onnx.export(dynamo=False), do_constant_folding=False",
    "torch_legacy_mlp_tanh": "torch.onnx.export(dynamo=False)",
    "torch_dynamo_mlp": "torch.onnx.export(dynamo=True, external_data=True), onnxscript",
    "torch_dynamo_cnn": "torch.onnx.export(dynamo=True, external_data=True), onnxscript",
    "skl2onnx_mlp": "skl2onnx convert_sklearn, zipmap=False",
    "skl2onnx_mlp_zipmap": "skl2onnx convert_sklearn, default zipmap=True",
    "skl2onnx_logreg": "skl2onnx convert_sklearn, zipmap=False",
}


def _dims(vi) -> str:
    t = vi.type.tensor_type
    return "[" + ", ".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value")
                                           else "?") for d in t.shape.dim) + "]"


def check_all() -> list[str]:
    """Load, check and run every fixture; return FIXTURES.md table rows."""
    import onnx
    import onnxruntime as ort

    rows = []
    for name, how in FIXTURES.items():
        path = HERE / f"{name}.onnx"
        m = onnx.load(str(path))  # resolves external data next to the file
        onnx.checker.check_model(str(path), full_check=True)  # path: external data ok
        ops = sorted({(n.domain + "." if n.domain else "") + n.op_type
                      for n in m.graph.node})
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import)
        data = np.load(HERE / f"{name}.npz")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: data[i.name] for i in sess.get_inputs()}
        for b in (1, 3, len(next(iter(feeds.values())))):  # dynamic batch
            outs = sess.run(None, {k: v[:b] for k, v in feeds.items()})
        shapes = [getattr(o, "shape", type(o).__name__) for o in outs]
        ext = [t.name for t in onnx.load(str(path), load_external_data=False)
               .graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        data_file = HERE / f"{name}.onnx.data"
        size = path.stat().st_size
        size_s = f"{size}"
        if data_file.exists():
            size_s += f" + {data_file.stat().st_size} (.onnx.data)"
        inputs = ", ".join(f"`{i.name}` {_dims(i)}" for i in m.graph.input)
        ext_s = (f"yes: {len(ext)} of {len(m.graph.initializer)} initializers in "
                 f"`{name}.onnx.data`" if ext else "no")
        rows.append(
            f"| `{name}.onnx` | {m.producer_name} {m.producer_version}: {how} "
            f"| {opsets} | {m.ir_version} | {', '.join(ops)} | {inputs} "
            f"| {ext_s} | {size_s} |"
        )
        print(f"{name}: ir={m.ir_version} opsets=[{opsets}] ops={ops} "
              f"npz={[(k, data[k].dtype.name, data[k].shape) for k in data.files]} "
              f"outputs={shapes} external={len(ext)} size={size_s}")
    return rows


FIXTURES_MD = """\
# ONNX fixtures written by real exporters

Generated by `make_fixtures.py` (run by hand; the test suite needs only
onnx/onnxruntime). Each `<name>.onnx` has a `<name>.npz` with seeded float32
inputs under the model's input names (8 samples for the torch models; 32
held-out `load_digits` samples plus an int64 `label` array of true classes for
the skl2onnx models). No expected outputs are stored: tests run onnxruntime.
External-data models must be loaded from their file path (the `.onnx.data`
file is resolved relative to the `.onnx`).

Made with: {versions}.

| file | exporter | opset | IR | ops | inputs | external data | bytes |
|---|---|---|---|---|---|---|---|
{rows}

`?` = a dimension with neither `dim_value` nor `dim_param` (skl2onnx writes
its batch dimension that way); named dims are `dim_param`s.

## How the exporters wrote them (what the importer has to cope with)

* TorchScript exporter (`torch_legacy_*`): node names like `/conv1/Conv`,
  value names like `/relu/Relu_output_0`; parameter initializers keep the
  PyTorch names (`fc.weight`) but folded ones are renamed (`onnx::Conv_36`).
  Initializers are not graph inputs. `Linear` -> `Gemm(transB=1)`,
  `AdaptiveAvgPool2d(1)` -> `GlobalAveragePool`, `nn.Flatten` -> `Flatten`.
  With `do_constant_folding=True` (the default) the Conv->BN pair is fused
  into the Conv, whose weights become `onnx::Conv_36`/`onnx::Conv_37` (listed
  last among the initializers); with `False` both BNs stay. The BN after the
  residual `Add` survives in both variants. `BatchNormalization` carries a
  `momentum=0.9` attribute (irrelevant for inference). Opset 9 gives IR 4;
  `x.view(x.size(0), -1)` becomes Shape -> Gather(Constant scalar 0) ->
  Unsqueeze(axes attr) -> Concat(Constant [-1]) -> Reshape.
* dynamo exporter (`torch_dynamo_*`): opset 20, IR 10; node names
  `node_<fx name>`, value names from the FX graph (`linear`, `getitem_3`).
  Its onnxscript optimizer folds Conv->BN (`FuseBatchNormIntoConv`) and
  *keeps the names* `conv1.weight`/`conv1.bias` for the fused values;
  `view(x.size(0), -1)` is materialised as `Reshape(x, [-1, 54])` with
  `allowzero=1`. Explicit default attributes (`auto_pad="NOTSET"`,
  `transA=0`, `storage_order=0`). `value_info` also lists the initializers.
  Nodes carry `metadata_props` (`pkg.torch.onnx.stack_trace` with absolute
  paths, `namespace`, `pkg.torch.onnx.fx_node`, ...), the graph carries
  `pkg.torch.export.ExportedProgram.*` metadata. External data: the exporter
  (`onnx_ir.save`) only externalises tensors of more than 256 bytes, so these
  small models are *mixed* (big weights in `.onnx.data`, biases and small
  tensors inline). With untrained BN (running_var == weight == 1, running_mean
  == bias == 0) the optimizer would even share one initializer between two
  BN inputs; here the stats are trained, so it does not.
* skl2onnx: `StandardScaler` -> `ai.onnx.ml.Scaler` (not Sub/Div), followed by
  a no-op `Cast(to=FLOAT)`; `MLPClassifier` -> MatMul/Add/Relu, then `Softmax`
  (node named `Relu1`!); label = ArgMax -> `ai.onnx.ml.ArrayFeatureExtractor`
  over an INT32 `classes` initializer -> Reshape -> Cast(INT64).
  Initializers use `float_data`/`int32_data`/`int64_data`, not `raw_data`.
  Batch dimension has neither `dim_value` nor `dim_param`. Graph name is a
  random uuid hex and the order of `opset_import` entries varies, so these
  three files change on every rerun (only there; same weights and nodes).
  `model.domain` is `ai.onnx`. `skl2onnx_logreg.onnx` lists the default
  opset (22) *twice* in `opset_import` (onnx.checker and onnxruntime accept
  it); it is a single `ai.onnx.ml.LinearClassifier` + `ai.onnx.ml.Normalizer`.
  The zipmap model outputs a `seq(map(int64, float))` `output_probability`.
  The MLP and the logistic regression both get 31 of the 32 npz samples
  right (index 15 is wrong): the npz `label` is the truth, not the model's
  prediction, so compare outputs against onnxruntime, not against `label`.

## Regenerate

```
pip install torch==2.13.0  (the CPU build)
pip install onnxscript skl2onnx scikit-learn
python tests/data/make_fixtures.py          # rewrites fixtures + this file
python tests/data/make_fixtures.py --check  # only re-check existing files
```
"""


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("torch", "onnxscript", "onnx-ir", "skl2onnx", "scikit-learn",
                "onnx", "onnxruntime", "numpy"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check existing files")
    args = ap.parse_args(argv)
    if not args.check:
        make_torch_legacy_cnn()
        make_torch_legacy_mlp_tanh()
        make_torch_dynamo_mlp()
        make_torch_dynamo_cnn()
        make_skl2onnx()
    rows = check_all()
    if not args.check:
        (HERE / "FIXTURES.md").write_text(
            FIXTURES_MD.format(versions=_versions(), rows="\n".join(rows)))
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.is_file())
    print(f"tests/data total: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
