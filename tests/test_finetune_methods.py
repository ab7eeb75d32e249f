"""The training methods of photoncc finetune: DFA, NNSGD/CSGD on the non-negative form, and the
saturable absorber (its pump-probe gradient, the tuned file's pattern and its optical mapping)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from photoncc import ops
from photoncc.compiler import compile_model
from photoncc.passes.context import Context
from photoncc.passes.map_activations import map_activations
from photoncc.profile import load_profile
from photoncc.train import finetune as ft, optim, tape
from photoncc.train.finetune import Options

from helpers import DATA, run_cli

MLP, TRAIN, CAL, TEST = (DATA / f for f in ("digits_mlp.onnx", "digits_train.npz", "digits_calibration.npz",
                                              "digits_test.npz"))


def sa_profile(tmp_path, od=10.0, base="ideal", i_sat=1.0):
    path = tmp_path / f"sa_{od}_{i_sat}.yaml"
    path.write_text(f"photoncc_profile: 1\nname: sa\nextends: {base}\n"
                    f"activation: {{kind: saturable_absorber, OD: {od}, I_sat: {i_sat}}}\n")
    return path


def test_dfa_sends_a_fixed_random_projection_of_the_error_to_each_hidden_layer():
    """On a device without errors, layer 1's DFA gradient is ((B e) * relu'(a1))^T x', with B the
    feedback of layer 2's input, and nothing goes back through the weights."""
    run = ft.setup(MLP, TRAIN, load_profile("ideal"), None, Options(method="dfa"), calibration_path=CAL)
    run.surrogate.refresh(run.trainable.params)
    g, head = run.trainable.graph, run.head
    linear = [n for n in g.nodes if n.op == "Linear"]
    feeds = {"pixels": np.load(TEST)["pixels"][:16]}
    keep = [n.inputs[0] for n in linear] + [linear[0].outputs[0]]
    record = tape.forward(g, feeds, run.trainable.params, targets=[head.logits], custom=run.custom(), keep=keep)
    _, grad = ft.loss.cross_entropy(np.asarray(record.values[head.logits]), np.load(TEST)["label"][:16])
    seeds = run.feedback.seeds(grad)
    assert sorted(seeds) == sorted(n.inputs[0] for n in linear[1:])
    grads = run.feedback.restrict(tape.gradients(record, {head.logits: grad, **seeds}, run.trainable.params,
                                                 run.feedback.cut))
    assert grads["mean"] is None and grads["std"] is None  # DFA trains the optical layers alone
    b = run.feedback.matrices[linear[1].inputs[0]]
    delta = (np.clip(grad * 16, -1, 1) @ b.T / 16) * (record.values[linear[0].outputs[0]] > 0)
    x = record.values[linear[0].inputs[0]]
    layer = run.surrogate.layers[linear[0].name]
    xq = np.clip(x, layer["lo_ch"], layer["lo_ch"] + layer["alpha_ch"])
    np.testing.assert_allclose(grads[linear[0].inputs[1]], delta.T @ xq, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("kind", ["nnsgd", "csgd"])
def test_transmissions_never_leave_0_1_and_nnsgd_keeps_every_sign(kind, monkeypatch):
    seen = []
    step = optim.Optimizer.step

    def checked(self, params, grads):
        out = step(self, params, grads)
        for tp, tn in self.transmissions().values():
            seen.append((float(min(tp.min(), tn.min())), float(max(tp.max(), tn.max()))))
        return out
    monkeypatch.setattr(optim.Optimizer, "step", checked)
    w = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    o = optim.Optimizer(kind, {"w": w}, 0.5, ["w"])
    params = {"w": w}
    for i in range(50):  # gradients far larger than any step should take
        params = o.step(params, {"w": np.random.default_rng(i).normal(size=w.shape) * 1e6})
    assert min(lo for lo, _ in seen) >= 0.0 and max(hi for _, hi in seen) <= 1.0
    if kind == "nnsgd":
        assert np.all(np.sign(params["w"]) * np.sign(w) >= 0)  # multiplicative: no weight crosses zero
    seen.clear()
    tuned, report = ft.finetune(MLP, TRAIN, load_profile("harsh-4b"), options=Options(optimizer=kind, epochs=1),
                                calibration_path=CAL)
    assert len(seen) > 30 and min(lo for lo, _ in seen) >= 0.0 and max(hi for _, hi in seen) <= 1.0


def test_the_absorbers_pattern_runs_optically_only_on_an_absorber_profile(tmp_path):
    out = tmp_path / "sa.onnx"
    profile = load_profile(sa_profile(tmp_path))
    tuned, report = ft.finetune(MLP, TRAIN, profile, options=Options(activation="saturable_absorber", epochs=1),
                                calibration_path=CAL)
    out.write_bytes(tuned)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert "Relu" not in ops and ops.count("Exp") == 2 and ops.count("Div") == 3  # the standardisation's Div too
    feeds = {"pixels": np.load(TEST)["pixels"][:50]}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    cal = dict(np.load(CAL))
    others = [load_profile("ideal"), load_profile(sa_profile(tmp_path, 4.0)), load_profile(sa_profile(tmp_path, i_sat=2))]
    for spec, optical in [(profile, True)] + [(other, False) for other in others]:
        program = compile_model(out, spec, cal)
        found = [a["placement"] for a in program.manifest["report"]["activations"] if a["op"] == "SaturableAbsorber"]
        assert found == (["optical", "optical"] if optical else []), spec.name
    np.testing.assert_allclose(session.run(None, feeds)[0],
                               tape.forward(ft.model.prepare(out, profile).graph, feeds,
                                            ft.model.prepare(out, profile).params).values["probabilities"],
                               atol=1e-5)


def test_map_activations_leaves_a_pattern_whose_values_are_read_elsewhere_electronic(tmp_path):
    profile = load_profile(sa_profile(tmp_path))
    tuned, _ = ft.finetune(MLP, TRAIN, profile, options=Options(activation="saturable_absorber", epochs=0),
                           calibration_path=CAL)
    graph = ft.model.prepare(_saved(tmp_path, tuned), profile).graph
    mapped = map_activations(graph, Context(profile))
    assert sum(n.op == "SaturableAbsorber" for n in mapped.nodes) == 2
    exp = next(n for n in graph.nodes if n.op == "Exp")
    shared = graph.replace(outputs=graph.outputs + (exp.outputs[0],))  # an inner value read elsewhere
    assert sum(n.op == "SaturableAbsorber" for n in map_activations(shared, Context(profile)).nodes) == 1


def _saved(tmp_path, data):
    path = tmp_path / "saved.onnx"
    path.write_bytes(data)
    return path


def test_the_pump_probe_gradient_on_an_absorber_profile_and_the_exact_one_elsewhere(tmp_path):
    z = np.linspace(-3, 3, 7).astype(np.float32)[None]
    for spec, pump in ((sa_profile(tmp_path), True), ("ideal", False)):
        run = ft.setup(MLP, TRAIN, load_profile(spec), None, Options(activation="saturable_absorber"),
                       calibration_path=CAL)
        node = next(n for n in run.trainable.graph.nodes if n.op == "SaturableAbsorber")
        assert node.attrs["OD"] == 10.0 and bool(run.runners) == pump
        ones = np.ones_like(z)
        if pump:
            _, residual = run.runners[node.name].forward(node, [z])
            slope = run.runners[node.name].backward(node, residual, [ones])[0]
            np.testing.assert_allclose(slope, np.exp(-5.0 / (1 + z.astype(np.float64) ** 2)), rtol=1e-6)
        else:
            slope = ops.REGISTRY["SaturableAbsorber"].vjp(node, [z], [None], [ones])[0]
            exact = (1 + 10 * z.astype(np.float64) ** 2 / (1 + z.astype(np.float64) ** 2) ** 2) * np.exp(-5 / (1 + z ** 2))
            np.testing.assert_allclose(slope, exact, rtol=1e-5)


def test_cli_absorber_model_verifies_on_an_absorber_profile(tmp_path, capsys):
    out, profile = tmp_path / "sa.onnx", sa_profile(tmp_path)
    code, _, err = run_cli(capsys, "finetune", MLP, "--train", TRAIN, "-p", profile, "--activation",
                           "saturable_absorber", "--epochs", "1", "--calibration", CAL, "-o", out)
    assert code == 0, err
    code, out_text, _ = run_cli(capsys, "verify", out, "-p", profile, "--inputs", CAL)
    assert code == 0 and "tier exact" in out_text
