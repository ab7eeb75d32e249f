"""Train the DAT benchmark's 64-64-64-10 MLP on the digits set, in NumPy, and write it as ONNX.

    python bench/dat_mlp.py            # writes bench/data/dat_mlp.onnx (shipped; rerun to rebuild it)

Needs scikit-learn for the data only (``load_digits``: 1797 8x8 images, bundled with the wheel, no
download), split as ``tests/data/make_digits.py`` splits it (stratified, random_state 0: 1197
training and 600 test samples, the test samples being ``tests/data/digits_test.npz``). The network
takes the raw pixels (0..16) and standardises them inside the model (Sub, Div), then
64 -> 64 ReLU -> 64 ReLU -> 10, softmax. Trained with seeded mini-batch Adam for a fixed number of
epochs (no selection on the test split); everything is seeded, so a rerun writes the same file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent / "data" / "dat_mlp.onnx"
WIDTHS = (64, 64, 64, 10)


def data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=600, stratify=y, random_state=0)


def train(x, y, epochs: int = 150, seed: int = 0):
    rng = np.random.default_rng(seed)
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 0, std, 1.0)
    z = (x - mean) / std
    params = []
    for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:]):
        params += [rng.normal(0, np.sqrt(2 / fan_in), (fan_out, fan_in)), np.zeros(fan_out)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step, lr = 0, 2e-3
    for _ in range(epochs):
        order = rng.permutation(len(z))
        for start in range(0, len(z), 32):
            batch = order[start:start + 32]
            acts = [z[batch]]
            for i in range(0, len(params), 2):
                a = acts[-1] @ params[i].T + params[i + 1]
                acts.append(np.maximum(a, 0) if i < len(params) - 2 else a)
            logits = acts[-1]
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            grad = p
            grad[np.arange(len(batch)), y[batch]] -= 1
            grad /= len(batch)
            grads = [None] * len(params)
            for i in range(len(params) - 2, -1, -2):
                grads[i], grads[i + 1] = grad.T @ acts[i // 2], grad.sum(0)
                if i:
                    grad = (grad @ params[i]) * (acts[i // 2] > 0)
            step += 1
            for k, g in enumerate(grads):
                g = g + 1e-4 * params[k] if k % 2 == 0 else g
                m[k] = 0.9 * m[k] + 0.1 * g
                v[k] = 0.999 * v[k] + 0.001 * g * g
                params[k] -= lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
    return mean, std, params


def to_onnx(mean, std, params) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(mean.astype(np.float32), "mean"), numpy_helper.from_array(std.astype(np.float32), "std")]
    nodes = [helper.make_node("Sub", ["pixels", "mean"], ["centred"]), helper.make_node("Div", ["centred", "std"], ["h0"])]
    for layer in range(len(params) // 2):
        w, b = params[2 * layer], params[2 * layer + 1]
        inits += [numpy_helper.from_array(w.astype(np.float32), f"fc{layer}.weight"),
                  numpy_helper.from_array(b.astype(np.float32), f"fc{layer}.bias")]
        out = f"z{layer + 1}" if layer < len(params) // 2 - 1 else "logits"
        nodes.append(helper.make_node("Gemm", [f"h{layer}", f"fc{layer}.weight", f"fc{layer}.bias"], [out], transB=1,
                                      name=f"fc{layer}"))
        if layer < len(params) // 2 - 1:
            nodes.append(helper.make_node("Relu", [out], [f"h{layer + 1}"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(nodes, "dat_mlp", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="photoncc bench/dat_mlp.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    x_train, x_test, y_train, y_test = data()
    mean, std, params = train(x_train, y_train)
    model = to_onnx(mean, std, params)
    OUT.parent.mkdir(exist_ok=True)
    onnx.save(model, OUT)
    import onnxruntime as ort
    session = ort.InferenceSession(str(OUT), providers=["CPUExecutionProvider"])
    accuracy = np.mean(session.run(None, {"pixels": x_test})[0].argmax(1) == y_test)
    print(f"wrote {OUT}: test accuracy {accuracy:.2%}")


if __name__ == "__main__":
    main()
