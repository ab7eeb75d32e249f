#!/usr/bin/env python3
"""Regenerate the trained digit-classifier fixtures in ``tests/data/``.

The test suite only *reads* the committed files; it never imports torch or
scikit-learn.  This script is run by hand when the fixtures have to be rebuilt.

Requirements (CPU-only torch wheel; a plain ``pip install torch`` pulls CUDA)::

    pip install torch==2.13.0  (the CPU build)
    pip install scikit-learn
    # already required by photoncc: onnx==1.23.2 onnxruntime==1.32.0

The committed files were made with torch 2.13.0+cpu, scikit-learn 1.9.1,
onnx 1.23.2, onnxruntime 1.32.0, numpy 2.4.6 (see FIXTURES.md).

Usage::

    python tests/data/make_digits.py            # writes into tests/data/
    python tests/data/make_digits.py --check    # only re-check existing files
    python tests/data/make_digits.py --train-data  # only (re)write digits_train.npz

Data: scikit-learn's bundled ``load_digits()`` (no download): 1797 8x8 images
with 17 grey levels (pixel values 0..16), a copy of the test part of the UCI
"Optical Recognition of Handwritten Digits" data set (Alpaydin & Kaynak,
1998, CC BY 4.0, https://doi.org/10.24432/C50P49).  Split stratified with
``random_state=0`` into 1197 training and 600 test samples.

Files written:

* ``digits_mlp.onnx``          64 -> 64 ReLU -> 32 ReLU -> 10 -> Softmax.
* ``digits_sigmoid_mlp.onnx``  64 -> 48 Sigmoid -> 24 Tanh -> 10 -> Softmax.
* ``digits_calibration.npz``   ``pixels`` float32 [200, 64]: 20 training
  samples per class (seeded), raw 0..16 values.
* ``digits_test.npz``          ``pixels`` float32 [600, 64] (raw 0..16) and
  ``label`` int64 [600]: the whole test split.
* ``digits_train.npz``         ``pixels`` float32 [1197, 64] (raw 0..16) and
  ``label`` int64 [1197]: the whole training split the models were trained
  on (``photoncc finetune``'s training data in docs/accuracy.md).
  ``--train-data`` writes it alone (scikit-learn only, no torch).
* a generated section at the end of ``FIXTURES.md`` (between the
  ``make_digits.py`` markers; the rest of the file is left alone).  Note that
  ``make_fixtures.py`` rewrites FIXTURES.md from scratch, so rerun this script
  after it.

Both models take the *raw* pixel values: input ``pixels`` float32
[batch, 64] (``dim_param`` "batch"), output ``probabilities`` float32
[batch, 10].  The standardisation with the training mean / std (population
std, as sklearn's StandardScaler; constant pixels get std 1) is inside the
model as its first two nodes, ``Sub(pixels, mean)`` and ``Div(., std)``, with
both constants as [64] float32 initializers.  The models are trained with
torch (seeded mini-batch AdamW, fixed epoch count, no early stopping or model
selection on the test split) and exported with the TorchScript exporter
(``torch.onnx.export(dynamo=False)``, opset 17), which gives the graph
Sub, Div, Gemm(transB=1), activation, Gemm, activation, Gemm, Softmax(axis=1).

Everything is seeded and torch runs single-threaded, so reruns on the same
versions give byte-identical files.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPLIT_SEED = 0
N_TEST = 600
N_CALIB_PER_CLASS = 20
OPSET = 17

MODELS = {
    # name -> (hidden layers as (width, activation), torch seed, epochs, target accuracy)
    "digits_mlp": ([(64, "relu"), (32, "relu")], 1, 120, 0.96),
    "digits_sigmoid_mlp": ([(48, "sigmoid"), (24, "tanh")], 2, 200, 0.94),
}
EXPECTED_OPS = {
    "digits_mlp": ["Sub", "Div", "Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"],
    "digits_sigmoid_mlp": ["Sub", "Div", "Gemm", "Sigmoid", "Gemm", "Tanh", "Gemm", "Softmax"],
}
BEGIN = "<!-- BEGIN make_digits.py: generated, rerun tests/data/make_digits.py to update -->"
END = "<!-- END make_digits.py -->"


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def load_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)  # integer grey levels 0..16: exact in float32
    y = y.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=N_TEST, random_state=SPLIT_SEED, stratify=y
    )
    return X_tr, X_te, y_tr, y_te


def standardisation(X_tr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X_tr.astype(np.float64).mean(axis=0)
    std = X_tr.astype(np.float64).std(axis=0)  # ddof=0, like StandardScaler
    std[std == 0.0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def calibration_indices(y_tr: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(2024)
    idx = [rng.choice(np.flatnonzero(y_tr == c), N_CALIB_PER_CLASS, replace=False)
           for c in range(10)]
    return np.sort(np.concatenate(idx))


# --------------------------------------------------------------------------
# torch model, training, export
# --------------------------------------------------------------------------
def build_model(hidden, mean: np.ndarray, std: np.ndarray):
    import torch
    from torch import nn

    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}

    class DigitsMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean.copy()))
            self.register_buffer("std", torch.from_numpy(std.copy()))
            layers, width = [], 64
            for h, act in hidden:
                layers += [nn.Linear(width, h), acts[act]()]
                width = h
            layers.append(nn.Linear(width, 10))
            self.net = nn.Sequential(*layers)

        def logits(self, pixels):
            return self.net((pixels - self.mean) / self.std)

        def forward(self, pixels):
            return torch.softmax(self.logits(pixels), dim=1)

    return DigitsMLP()


def train(name: str, X_tr, y_tr, mean, std):
    import torch
    from torch import nn

    hidden, seed, epochs, _ = MODELS[name]
    torch.manual_seed(seed)
    model = build_model(hidden, mean, std)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    X = torch.from_numpy(X_tr)
    y = torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for start in range(0, len(X), 32):
            b = perm[start:start + 32]
            opt.zero_grad()
            loss_fn(model.logits(X[b]), y[b]).backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model.logits(X).argmax(1) == y).float().mean().item()
    print(f"[{name}] training accuracy (torch): {acc:.4f}")
    return model


def export(name: str, model) -> None:
    import torch

    x = torch.zeros(2, 64)
    torch.onnx.export(
        model, (x,), str(HERE / f"{name}.onnx"), dynamo=False, opset_version=OPSET,
        input_names=["pixels"], output_names=["probabilities"],
        dynamic_axes={"pixels": {0: "batch"}, "probabilities": {0: "batch"}},
        do_constant_folding=True,
    )


# --------------------------------------------------------------------------
# checking + FIXTURES.md
# --------------------------------------------------------------------------
def _dims(vi) -> str:
    return "[" + ", ".join(d.dim_param or str(d.dim_value) if (d.dim_param or d.HasField("dim_value"))
                           else "?" for d in vi.type.tensor_type.shape.dim) + "]"


def check(name: str, test: dict, calib: dict, torch_model=None) -> dict:
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    path = HERE / f"{name}.onnx"
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    assert ops == EXPECTED_OPS[name], (name, ops)
    assert [i.name for i in m.graph.input] == ["pixels"], m.graph.input
    assert [o.name for o in m.graph.output] == ["probabilities"], m.graph.output
    assert _dims(m.graph.input[0]) == "[batch, 64]", _dims(m.graph.input[0])
    assert _dims(m.graph.output[0]) == "[batch, 10]", _dims(m.graph.output[0])
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    sub, div = m.graph.node[0], m.graph.node[1]
    assert sub.input[0] == "pixels" and sub.input[1] in inits, sub
    assert div.input[0] == sub.output[0] and div.input[1] in inits, div
    mean, std = inits[sub.input[1]], inits[div.input[1]]
    assert mean.shape == std.shape == (64,) and (std > 0).all()
    assert path.stat().st_size < 1_000_000

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs = sess.run(None, {"pixels": test["pixels"]})[0]
    assert probs.shape == (N_TEST, 10) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    acc = float((probs.argmax(1) == test["label"]).mean())
    sess.run(None, {"pixels": calib["pixels"][:1]})  # batch 1 works too
    if torch_model is not None:
        import torch

        with torch.no_grad():
            ref = torch_model(torch.from_numpy(test["pixels"])).numpy()
        err = float(np.abs(ref - probs).max())
        assert err < 1e-5, (name, err)
    target = MODELS[name][3]
    print(f"[{name}] onnxruntime test accuracy on digits_test.npz: {acc:.4f} "
          f"({int(round(acc * N_TEST))}/{N_TEST}; target >= {target})")
    assert acc >= target, (name, acc)
    z_test = (test["pixels"] - mean) / std
    z_cal = (calib["pixels"] - mean) / std
    outside = (z_test < z_cal.min(0)) | (z_test > z_cal.max(0))
    return {
        "name": name, "ops": ops, "acc": acc, "bytes": path.stat().st_size,
        "opset": ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import),
        "ir": m.ir_version, "producer": f"{m.producer_name} {m.producer_version}",
        "n_const": int((std == 1.0).sum()),
        "inits": [(t.name, list(t.dims)) for t in m.graph.initializer],
        "z_cal": (float(z_cal.min()), float(z_cal.max())),
        "z_test": (float(z_test.min()), float(z_test.max())),
        "n_out": int(outside.any(1).sum()),
        "n_big": int((z_test > z_cal.max()).any(1).sum()),
        "min_std": float(std.min()),
        "nodes": [(n.name, n.op_type, {a.name: onnx.helper.get_attribute_value(a)
                                        for a in n.attribute}) for n in m.graph.node],
    }


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("torch", "scikit-learn", "onnx", "onnxruntime", "numpy"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def fixtures_section(results: list[dict], test: dict, calib: dict) -> str:
    rows = []
    for r in results:
        hidden = MODELS[r["name"]][0]
        arch = " -> ".join(["64"] + [f"{h} {a.capitalize()}" for h, a in hidden] + ["10", "Softmax"])
        rows.append(
            f"| `{r['name']}.onnx` | {arch} | {r['opset']} | {r['ir']} | "
            f"{', '.join(r['ops'])} | {r['acc'] * 100:.2f}% "
            f"({int(round(r['acc'] * N_TEST))}/{N_TEST}) | {r['bytes']} |")
    npz_rows = []
    with np.load(HERE / "digits_train.npz") as f:
        train = {k: f[k] for k in f.files}
    for fname, arrays in (("digits_calibration.npz", calib), ("digits_test.npz", test), ("digits_train.npz", train)):
        desc = ", ".join(f"`{k}` {v.dtype} {list(v.shape)}" for k, v in arrays.items())
        npz_rows.append(f"| `{fname}` | {desc} | {(HERE / fname).stat().st_size} |")
    r0 = results[0]
    init_names = ", ".join(f"`{n}` {d}" for n, d in r0["inits"])
    node_names = ", ".join(f"`{n}`" for n, _, _ in r0["nodes"])

    def attrs(op):
        a = next(a for _, o, a in r0["nodes"] if o == op)
        return ", ".join(f"`{k}={v}`" for k, v in sorted(a.items()))

    zc, zt, n_out, n_big = r0["z_cal"], r0["z_test"], r0["n_out"], r0["n_big"]
    return f"""{BEGIN}
## Trained digit classifiers (`make_digits.py`)

Generated by `make_digits.py` (run by hand; the test suite needs only
onnx/onnxruntime). Two small MLPs trained with torch on scikit-learn's bundled
`load_digits()` (1797 8x8 images, grey levels 0..16; no download), which is
the test partition of the UCI "Optical Recognition of Handwritten Digits" data
set: E. Alpaydin and C. Kaynak (1998), UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49
(https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits),
licensed CC BY 4.0. Stratified split with `random_state={SPLIT_SEED}`:
1197 train / {N_TEST} test.

Made with: {_versions()}.

| file | layers | opset | IR | ops (graph order) | onnxruntime accuracy on `digits_test.npz` | bytes |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

| file | arrays | bytes |
|---|---|---|
{chr(10).join(npz_rows)}

* Input `pixels` float32 [batch, 64] (`dim_param` "batch") takes the *raw*
  pixel values 0..16; output `probabilities` float32 [batch, 10]. Predicted
  class = argmax. `label` in `digits_test.npz` is the true class and the
  models get some test samples wrong, so compare outputs against
  onnxruntime, not against `label`.
* The standardisation is inside the model, as its first two nodes:
  `Sub(pixels, mean)` then `Div(., std)`, both [64] float32 initializers
  holding the training mean and population std. The {r0['n_const']} pixels
  that are constant (always 0) in the training split get mean 0, std 1.
  Pixels that are almost always 0 in training have a tiny std (down to
  {r0['min_std']:.3f}), so the standardised values span
  {zc[0]:.1f} .. {zc[1]:.1f} on the calibration set but
  {zt[0]:.1f} .. {zt[1]:.1f} on the test set: {n_out} of the {N_TEST} test
  samples have some standardised pixel outside that pixel's calibration
  range, and {n_big} exceed the calibration maximum {zc[1]:.1f} outright.
  Expect saturation warnings when compiling with ranges calibrated on
  `digits_calibration.npz` and verifying on `digits_test.npz`.
* `digits_calibration.npz` holds 200 *training* samples (20 per class,
  seeded), raw values, for range calibration; it is disjoint from the test
  set.
* Written by the TorchScript exporter (`torch.onnx.export(dynamo=False)`,
  opset {OPSET}, `do_constant_folding=True`), producer `{r0['producer']}`.
  Node names {node_names}. Initializers (not graph inputs)
  {init_names}; `digits_sigmoid_mlp.onnx` has the same names with widths
  48/24 and `/net/net.1/Sigmoid`, `/net/net.3/Tanh`. `Linear` -> `Gemm`
  with {attrs('Gemm')}; `Softmax` with {attrs('Softmax')}.
* Training: seeded mini-batches of 32, AdamW (lr 2e-3, cosine decay to 0,
  weight decay 1e-4), a fixed number of epochs ({MODELS['digits_mlp'][2]}
  for `digits_mlp`, {MODELS['digits_sigmoid_mlp'][2]} for
  `digits_sigmoid_mlp`), single-threaded; no early stopping or model
  selection on the test split. Both reach 100% training accuracy. Reruns
  with the same versions give byte-identical files.

Regenerate (`make_fixtures.py` rewrites this file without this section, so
run `make_digits.py` after it):

```
pip install torch==2.13.0  (the CPU build)
pip install scikit-learn
python tests/data/make_digits.py          # rewrites the digits_* files + this section
python tests/data/make_digits.py --check  # only re-check existing files
```
{END}
"""


def check_train() -> int:
    """digits_train.npz is the split the models were trained on: its mean and std are the models'
    standardisation constants, and it holds every calibration sample."""
    import onnx
    from onnx import numpy_helper

    with np.load(HERE / "digits_train.npz") as f:
        X_tr, y_tr = f["pixels"], f["label"]
    assert X_tr.shape == (1197, 64) and X_tr.dtype == np.float32 and y_tr.shape == (1197,) and y_tr.dtype == np.int64
    mean, std = standardisation(X_tr)
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(HERE / "digits_mlp.onnx")).graph.initializer}
    assert np.array_equal(inits["mean"], mean) and np.array_equal(inits["std"], std)
    with np.load(HERE / "digits_calibration.npz") as f:
        calib = f["pixels"]
    assert np.array_equal(X_tr[calibration_indices(y_tr)], calib)
    print(f"digits_train.npz: {len(X_tr)} training samples, the models' standardisation and calibration samples")
    return 0


def write_section(section: str) -> None:
    md = HERE / "FIXTURES.md"
    text = md.read_text()
    pat = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pat.search(text):
        text = pat.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    md.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check existing files")
    ap.add_argument("--train-data", action="store_true", help="only write digits_train.npz (no torch)")
    args = ap.parse_args(argv)
    if args.train_data:
        X_tr, _, y_tr, _ = load_split()
        np.savez(HERE / "digits_train.npz", pixels=X_tr, label=y_tr)
        return check_train()

    trained = {}
    if not args.check:
        import torch

        torch.set_num_threads(1)
        X_tr, X_te, y_tr, y_te = load_split()
        assert X_tr.shape == (1197, 64) and X_te.shape == (N_TEST, 64)
        assert X_tr.min() == 0 and X_tr.max() == 16
        mean, std = standardisation(X_tr)
        np.savez(HERE / "digits_calibration.npz", pixels=X_tr[calibration_indices(y_tr)])
        np.savez(HERE / "digits_test.npz", pixels=X_te, label=y_te)
        np.savez(HERE / "digits_train.npz", pixels=X_tr, label=y_tr)
        for name in MODELS:
            trained[name] = train(name, X_tr, y_tr, mean, std)
            export(name, trained[name])

    with np.load(HERE / "digits_test.npz") as f:
        test = {k: f[k] for k in f.files}
    with np.load(HERE / "digits_calibration.npz") as f:
        calib = {k: f[k] for k in f.files}
    assert test["pixels"].dtype == np.float32 and test["pixels"].shape == (N_TEST, 64)
    assert test["label"].dtype == np.int64 and test["label"].shape == (N_TEST,)
    assert np.bincount(test["label"]).min() >= 55
    assert calib["pixels"].dtype == np.float32 and calib["pixels"].shape == (200, 64)
    for arr in (test["pixels"], calib["pixels"]):
        assert arr.min() >= 0 and arr.max() <= 16 and (arr == np.round(arr)).all()
    for fname in ("digits_test.npz", "digits_calibration.npz"):
        assert (HERE / fname).stat().st_size < 1_000_000

    check_train()
    results = [check(name, test, calib, trained.get(name)) for name in MODELS]
    if not args.check:
        write_section(fixtures_section(results, test, calib))
    for fname in ("digits_mlp.onnx", "digits_sigmoid_mlp.onnx",
                  "digits_calibration.npz", "digits_test.npz", "digits_train.npz"):
        print(f"{fname}: {(HERE / fname).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
