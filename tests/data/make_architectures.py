#!/usr/bin/env python3
"""Regenerate the architecture fixtures in ``tests/data/``: five small models of the kinds people
export today, each written by PyTorch's TorchScript exporter and by its dynamo exporter.

The test suite only *reads* the committed ``arch_*.onnx`` / ``arch_*.npz`` files; it never
imports torch. This script is run by hand when they have to be rebuilt.

Requirements (CPU-only torch wheel)::

    pip install torch==2.13.0  (the CPU build)
    pip install onnxscript                   # the dynamo exporter
    # already required by photoncc: onnx==1.23.2 onnxruntime==1.32.0

Usage::

    python tests/data/make_architectures.py            # writes the arch_* files + FIXTURES.md section
    python tests/data/make_architectures.py --check    # only re-check existing files

Each model is trained for STEPS seeded steps on a synthetic task, noise-aware (each Linear/Conv
output jittered while training, so that a classifier's outputs are decisive, as a trained model's
are, and a noisy device's errors flip few of them), then
exported twice: ``arch_<kind>_legacy.onnx`` (``torch.onnx.export(dynamo=False)``, opset 17) and
``arch_<kind>_dynamo.onnx`` (``torch.onnx.export(dynamo=True)``, onnxscript, its default opset),
both with a dynamic batch. ``arch_<kind>.npz`` holds the inputs (64 samples, under the model's
input name) and, for the classifiers, the synthetic task's ``label``; both exports of a kind
read the same file (each has a copy under its own name, ``arch_<kind>_<exporter>.npz``, so that
every ``<name>.onnx`` has its ``<name>.npz``).

Kinds (tiny dims, a few KB each):

* ``transformer``: token ids (N, 8) int64 -> Embedding(20, 16) + learned positions -> one
  post-norm encoder block (multi-head self-attention with 2 heads written as PyTorch users write
  it: qkv Linear, view/transpose per head, q @ k^T scaled, softmax, @ v; LayerNorm; GELU
  feed-forward) -> mean over tokens -> Linear(16, 3);
* ``gru``: (N, 6, 5) -> GRU(5, 8, bidirectional, batch_first) -> last step -> Linear(16, 3);
* ``lstm``: (N, 6, 5) -> LSTM(5, 8, 2 layers, bidirectional, batch_first) -> the final states
  of the last layer's two directions -> Linear(16, 3);
* ``mobilenet``: (N, 3, 16, 16) -> Conv s2 + BN + Hardswish -> a MobileNetV3 inverted residual
  block (1x1 expand + BN + Hardswish, depthwise 3x3 + BN + Hardswish, squeeze-excitation: global
  pool, 1x1 conv, ReLU, 1x1 conv, Hardsigmoid, multiply; 1x1 project + BN; residual add) ->
  global pool -> Linear(8, 4);
* ``autoencoder``: (N, 1, 16, 16) in [0, 1] -> Conv s2 + ReLU -> Conv s2 + ReLU ->
  ConvTranspose s2 (output_padding 1) + ReLU -> Upsample x2 (nearest: ONNX Resize) -> Conv ->
  Sigmoid.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLES = 64
STEPS = 600
# noise-aware training: each Linear/Conv output jittered by this share of its spread while training
NOISE = 0.1
KINDS = ("transformer", "gru", "lstm", "mobilenet", "autoencoder")
EXPORTERS = ("legacy", "dynamo")
BEGIN = "<!-- BEGIN make_architectures.py: generated, rerun tests/data/make_architectures.py to update -->"
END = "<!-- END make_architectures.py -->"
INPUT_NAME = {"transformer": "tokens", "gru": "sequence", "lstm": "sequence", "mobilenet": "image",
              "autoencoder": "image"}
OUTPUT_NAME = {"autoencoder": "reconstruction"}


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def _modules():
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(x).split(c, dim=2)
            q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.heads))
            y = att.softmax(dim=-1) @ v
            return self.proj(y.transpose(1, 2).reshape(b, t, c))

    class Transformer(nn.Module):
        def __init__(self, vocab=20, dim=16, tokens=8, classes=3) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            self.position = nn.Parameter(0.1 * torch.randn(tokens, dim))
            self.attn, self.norm1 = Attention(dim, 2), nn.LayerNorm(dim)
            self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
            self.norm2, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

        def forward(self, tokens):
            x = self.embed(tokens) + self.position
            x = self.norm1(x + self.attn(x))
            x = self.norm2(x + self.ff(x))
            return self.head(x.mean(dim=1))

    class GRUClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.head = nn.GRU(5, 8, batch_first=True, bidirectional=True), nn.Linear(16, 3)

        def forward(self, sequence):
            y, _ = self.rnn(sequence)
            return self.head(y[:, -1, :])

    class LSTMClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(5, 8, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(16, 3)

        def forward(self, sequence):
            _, (h, _) = self.rnn(sequence)
            return self.head(torch.cat([h[-2], h[-1]], dim=1))

    def conv_bn(cin, cout, k, stride=1, groups=1, act=None):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, *([act()] if act else []))

    class SqueezeExcite(nn.Module):
        def __init__(self, channels: int, reduced: int) -> None:
            super().__init__()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.reduce, self.expand = nn.Conv2d(channels, reduced, 1), nn.Conv2d(reduced, channels, 1)
            self.relu, self.gate = nn.ReLU(), nn.Hardsigmoid()

        def forward(self, x):
            return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))

    class MobileNetBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = conv_bn(3, 8, 3, 2, act=nn.Hardswish)
            self.expand = conv_bn(8, 16, 1, act=nn.Hardswish)
            self.depthwise = conv_bn(16, 16, 3, groups=16, act=nn.Hardswish)
            self.se = SqueezeExcite(16, 4)
            self.project = conv_bn(16, 8, 1)
            self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 4)

        def forward(self, image):
            x = self.stem(image)
            x = x + self.project(self.se(self.depthwise(self.expand(x))))
            return self.head(torch.flatten(self.pool(x), 1))

    class AutoEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, 2, 1), nn.ReLU())
            self.decoder = nn.Sequential(nn.ConvTranspose2d(8, 4, 3, 2, 1, output_padding=1), nn.ReLU(),
                                         nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(4, 1, 3, 1, 1),
                                         nn.Sigmoid())

        def forward(self, image):
            return self.decoder(self.encoder(image))

    return {"transformer": Transformer, "gru": GRUClassifier, "lstm": LSTMClassifier,
            "mobilenet": MobileNetBlock, "autoencoder": AutoEncoder}


# --------------------------------------------------------------------------
# synthetic tasks (seeded)
# --------------------------------------------------------------------------
def task(kind: str, count: int, seed: int):
    """(inputs, labels or None) of the kind's synthetic task."""
    rng = np.random.default_rng(seed)
    if kind == "transformer":  # which of three token groups is the most frequent
        tokens = rng.integers(0, 20, size=(count, 8))
        label = np.stack([np.isin(tokens, group).sum(1) for group in (range(0, 6), range(6, 13), range(13, 20))],
                         1).argmax(1)
        return tokens.astype(np.int64), label.astype(np.int64)
    if kind in ("gru", "lstm"):  # which feature drifts most over the sequence
        x = rng.standard_normal((count, 6, 5)).astype(np.float32)
        label = rng.integers(0, 3, size=count)
        x[np.arange(count), :, label] += np.linspace(-2.0, 3.0, 6, dtype=np.float32)
        return x, label.astype(np.int64)
    if kind == "mobilenet":  # which quadrant holds a bright blob
        x = 0.3 * rng.standard_normal((count, 3, 16, 16)).astype(np.float32)
        label = rng.integers(0, 4, size=count)
        for i, q in enumerate(label):
            r, c = 8 * (q // 2) + 2 + rng.integers(0, 3), 8 * (q % 2) + 2 + rng.integers(0, 3)
            x[i, :, r:r + 3, c:c + 3] += 1.5
        return x, label.astype(np.int64)
    x = np.zeros((count, 1, 16, 16), np.float32)  # autoencoder: soft blobs in [0, 1]
    yy, xx = np.mgrid[0:16, 0:16]
    for i in range(count):
        for _ in range(2):
            cy, cx, s = rng.uniform(3, 13), rng.uniform(3, 13), rng.uniform(1.5, 3.0)
            x[i, 0] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s)).astype(np.float32)
    return np.clip(x, 0, 1), None


def train(kind: str):
    import torch

    torch.manual_seed(KINDS.index(kind) + 1)
    model = _modules()[kind]()
    x, y = task(kind, 2048, seed=100 + KINDS.index(kind))
    x, y = torch.from_numpy(x), None if y is None else torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(7)
    noise = torch.Generator().manual_seed(8)

    def perturb(module, inputs, output):  # noise-aware training: each layer's output jittered while training
        if module.training and isinstance(output, torch.Tensor):
            scale = NOISE * output.detach().std()
            return output + scale * torch.randn(output.shape, generator=noise)
        return output
    hooks = [m.register_forward_hook(perturb) for m in model.modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    model.train()
    for step in range(STEPS):
        batch = torch.randint(0, len(x), (64,), generator=gen)
        opt.zero_grad()
        out = model(x[batch])
        loss = torch.nn.functional.cross_entropy(out, y[batch]) if y is not None else \
            torch.nn.functional.mse_loss(out, x[batch])
        loss.backward()
        opt.step()
    for hook in hooks:
        hook.remove()
    model.eval()
    with torch.no_grad():
        out = model(x)
        score = (out.argmax(1) == y).float().mean().item() if y is not None else \
            torch.nn.functional.mse_loss(out, x).item()
    print(f"[{kind}] training {'accuracy' if y is not None else 'mse'}: {score:.4f}")
    return model


def export(kind: str, exporter: str, model, sample) -> Path:
    import torch

    path = HERE / f"arch_{kind}_{exporter}.onnx"
    inputs, outputs = [INPUT_NAME[kind]], [OUTPUT_NAME.get(kind, "logits")]
    x = torch.from_numpy(sample[:2])
    if exporter == "legacy":
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=inputs,
                          output_names=outputs, dynamic_axes={inputs[0]: {0: "batch"}, outputs[0]: {0: "batch"}})
    else:
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.onnx.export(model, (x,), dynamo=True, input_names=inputs, output_names=outputs,
                                    dynamic_shapes=({0: batch},))
        program.save(str(path), external_data=False)
    return path


# --------------------------------------------------------------------------
# checking + FIXTURES.md
# --------------------------------------------------------------------------
def check(kind: str, exporter: str, model=None) -> str:
    import onnx
    import onnxruntime as ort

    name = f"arch_{kind}_{exporter}"
    path = HERE / f"{name}.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    m = onnx.load(str(path))
    with np.load(HERE / f"{name}.npz") as f:
        feeds = {k: f[k] for k in f.files}
    assert set(feeds) == {INPUT_NAME[kind]} | ({"label"} if kind != "autoencoder" else set()), sorted(feeds)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = feeds[INPUT_NAME[kind]]
    for b in (1, 3, len(x)):
        out = session.run(None, {INPUT_NAME[kind]: x[:b]})[0]
    if model is not None:
        import torch
        with torch.no_grad():
            np.testing.assert_allclose(out, model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
    agree = f"{np.mean(out.argmax(1) == feeds['label']):.0%} of the labels" if kind != "autoencoder" else \
        f"mse {np.mean((out - x) ** 2):.4f}"
    ops = ", ".join(sorted({(n.domain + "." if n.domain else "") + n.op_type for n in m.graph.node}))
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import)
    how = ("torch.onnx.export(dynamo=False), opset_version=17" if exporter == "legacy"
           else "torch.onnx.export(dynamo=True), onnxscript")
    size = path.stat().st_size
    assert size < 100_000, f"{name}: {size} bytes"
    print(f"{name}: {size} bytes, opsets [{opsets}], ops {ops}; onnxruntime: {agree}")
    return (f"| `{name}.onnx` | {m.producer_name} {m.producer_version}: {how} | {opsets} | {m.ir_version} | {ops} "
            f"| `{INPUT_NAME[kind]}` {list(x.shape[1:])} {x.dtype} | {agree} | {size} |")


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("torch", "onnxscript", "onnx-ir", "onnx", "onnxruntime", "numpy"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def section(rows: list[str]) -> str:
    return f"""{BEGIN}
## Architectures by both PyTorch exporters (`make_architectures.py`)

Generated by `make_architectures.py` (run by hand; the test suite needs only onnx/onnxruntime).
Five small models of the kinds people export today, each trained for {STEPS} seeded Adam steps on a
synthetic task, noise-aware (every Linear/Conv output jittered by a share of its spread while
training by {NOISE} of its spread, so that classifier outputs are decisive, as a trained model's are, and a
noisy device's error flips few of them), and written by both PyTorch exporters with a dynamic batch: `arch_<kind>_legacy.onnx` by the TorchScript exporter
(opset 17) and `arch_<kind>_dynamo.onnx` by the dynamo exporter (onnxscript; weights inline).
`arch_<kind>_<exporter>.npz` holds {SAMPLES} seeded inputs under the model's input name and, for
the classifiers, the synthetic task's `label` (the true class; compare outputs against onnxruntime).

Made with: {_versions()}.

| file | exporter | opset | IR | ops | input (per sample) | onnxruntime on the npz | bytes |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

* `transformer`: token ids -> Embedding(20, 16) + learned positions -> one post-norm encoder block
  (self-attention with 2 heads as users write it: qkv Linear, `view`/`transpose` per head,
  `q @ k.transpose(-2, -1)` scaled, softmax, `@ v`; LayerNorm; GELU feed-forward) -> mean over the
  8 tokens -> Linear(16, 3). The Embedding is a Gather from a constant table; attention's two
  products of activations are MatMuls of two data tensors (electronic); the projections and the
  feed-forward layers are MatMuls by constants on (batch, tokens, features) (banks). PyTorch's
  own `nn.TransformerEncoderLayer`/`nn.MultiheadAttention` export a sequence-major attention that
  folds the batch into the heads (`(T, N*heads, d)`), which photoncc's batch-axis rule refuses.
* `gru`: GRU(5, 8, bidirectional, batch_first=True) -> output at the last step -> Linear(16, 3).
  Both exporters write one ONNX `GRU` (linear_before_reset=1) behind a Transpose to
  sequence-major, and Transposes/Reshapes after it.
* `lstm`: LSTM(5, 8, num_layers=2, bidirectional, batch_first=True) -> `cat(h_n[-2], h_n[-1])` ->
  Linear(16, 3): two ONNX `LSTM` nodes, the second reading the first's sequence-major output.
* `mobilenet`: Conv 3x3 s2 + BN + Hardswish, then a MobileNetV3 inverted residual block (1x1
  expand + BN + Hardswish, depthwise 3x3 + BN + Hardswish, squeeze-excitation with 1x1 convs,
  ReLU and Hardsigmoid, 1x1 project + BN, residual add), global pool, Linear(8, 4).
* `autoencoder`: two stride-2 Convs with ReLU, `ConvTranspose2d(8, 4, 3, 2, 1, output_padding=1)`
  + ReLU, `nn.Upsample(scale_factor=2, mode="nearest")` (ONNX `Resize`), Conv, Sigmoid.

Regenerate (`make_fixtures.py` rewrites FIXTURES.md without this section, so run this script after
it; the dynamo exporter records this script's line numbers in its node metadata, so editing the
script changes the `_dynamo` files' bytes, not their graphs):

```
pip install torch==2.13.0  (the CPU build)
pip install onnxscript
python tests/data/make_architectures.py          # rewrites the arch_* files + this section
python tests/data/make_architectures.py --check  # only re-check existing files
```
{END}
"""


def write_section(text: str) -> None:
    md = HERE / "FIXTURES.md"
    old = md.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    md.write_text(pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check existing files")
    ap.add_argument("kinds", nargs="*", default=list(KINDS))
    args = ap.parse_args(argv)
    rows, trained = [], {}
    if not args.check:
        import torch

        torch.set_num_threads(1)
        for kind in args.kinds:
            trained[kind] = train(kind)
            x, y = task(kind, SAMPLES, seed=1000 + KINDS.index(kind))
            arrays = {INPUT_NAME[kind]: x} | ({"label": y} if y is not None else {})
            for exporter in EXPORTERS:
                export(kind, exporter, trained[kind], x)
                np.savez(HERE / f"arch_{kind}_{exporter}.npz", **arrays)
    for kind in KINDS:
        for exporter in EXPORTERS:
            rows.append(check(kind, exporter, trained.get(kind)))
    if not args.check:
        write_section(section(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
