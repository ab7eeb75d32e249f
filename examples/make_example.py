"""Make the bundled example: a small digit classifier, trained here with NumPy, saved as ONNX.

    python examples/make_example.py        # writes examples/glyphs_mlp.onnx, calibration.npz, test.npz

Data: 8x8 images of the digits 0-9 drawn from a 3x5 pixel font at a random place, with random
stroke intensity and noise, standardised per pixel (so the model's inputs are signed, like the
standardised features real pipelines feed their models). Model: 64 -> 32 (ReLU) -> 10 (Softmax),
trained by full-batch gradient descent on cross-entropy. Seeded: reruns give the same files.

Only numpy and onnx are needed (photoncc's own dependencies). With PyTorch installed, the same
kind of model is exported with ``torch.onnx.export(model, torch.zeros(1, 64), "model.onnx",
dynamic_axes={"pixels": {0: "batch"}}, input_names=["pixels"])``.
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
FONT = [  # 3 columns x 5 rows per digit
    "111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
    "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111",
]


def make_images(count: int, rng: np.random.Generator):
    labels = rng.integers(0, 10, count)
    images = rng.normal(0.0, 0.15, (count, 8, 8))
    glyphs = np.array([[int(c) for c in f] for f in FONT], float).reshape(10, 5, 3)
    rows, cols = rng.integers(1, 3, count), rng.integers(2, 4, count)  # a little jitter
    strength = rng.uniform(0.6, 1.0, count)
    for i in range(count):  # a one-off data generator, not part of the compiler
        images[i, rows[i]:rows[i] + 5, cols[i]:cols[i] + 3] += strength[i] * glyphs[labels[i]]
    return images.reshape(count, 64).astype(np.float32), labels.astype(np.int64)


def train(x, y, hidden=32, steps=1000, lr=0.5, seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, np.sqrt(2 / x.shape[1]), (x.shape[1], hidden))
    b1 = np.zeros(hidden)
    w2 = rng.normal(0, np.sqrt(1 / hidden), (hidden, 10))
    b2 = np.zeros(10)
    onehot = np.eye(10)[y]
    for _ in range(steps):
        h = np.maximum(x @ w1 + b1, 0)
        logits = h @ w2 + b2
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(x)
        gh = (g @ w2.T) * (h > 0)
        w2 -= lr * h.T @ g
        b2 -= lr * g.sum(0)
        w1 -= lr * x.T @ gh
        b1 -= lr * gh.sum(0)
    return w1, b1, w2, b2


def to_onnx(w1, b1, w2, b2) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
             ((w1, "fc1.weight"), (b1, "fc1.bias"), (w2, "fc2.weight"), (b2, "fc2.bias"))]
    nodes = [
        helper.make_node("Gemm", ["pixels", "fc1.weight", "fc1.bias"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["a"], name="relu1"),
        helper.make_node("Gemm", ["a", "fc2.weight", "fc2.bias"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "glyphs_mlp",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="photoncc examples/make_example.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    rng = np.random.default_rng(2026)
    x, y = make_images(3000, rng)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x = ((x - mean) / std).astype(np.float32)
    train_x, train_y, test_x, test_y = x[:2000], y[:2000], x[2000:], y[2000:]
    weights = train(train_x, train_y)
    h = np.maximum(test_x @ weights[0] + weights[1], 0)
    accuracy = np.mean((h @ weights[2] + weights[3]).argmax(1) == test_y)
    onnx.save(to_onnx(*weights), HERE / "glyphs_mlp.onnx")
    np.savez(HERE / "calibration.npz", pixels=train_x[:1000])
    np.savez(HERE / "test.npz", pixels=test_x[:200], label=test_y[:200])
    print(f"examples: glyphs_mlp.onnx (test accuracy {accuracy:.1%}), calibration.npz, test.npz")


if __name__ == "__main__":
    main()
