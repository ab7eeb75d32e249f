"""Coherent MZI meshes (issue 18): the Clements and Reck decompositions' round trip, the mzi profiles end to
end against onnxruntime, chips (draw, files, bad inputs), error-aware programming and calibration."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import DATA, compile_and_compare, run_cli
from models import light_model, save as save_model, image_batch
from photoncc import chip as chips
from photoncc.calibrate import calibrate
from photoncc.compiler import compile_model
from photoncc.devices import clements, mzi, mzi_mesh
from photoncc.errors import UserError
from photoncc.profile import load_profile, validated
from photoncc.program import Program
from photoncc.reference import run_onnxruntime
from photoncc.sim import Simulator
from photoncc.sim.measure import SimulatedDevice

DIGITS, CALIBRATION, TEST = DATA / "digits_mlp.onnx", DATA / "digits_calibration.npz", DATA / "digits_test.npz"


def profile(name="mzi-ideal", **changes):
    """A built-in profile with some keys changed ("noise.phase_sigma"=0.1, ...)."""
    p = copy.deepcopy(dict(load_profile(name)))
    for key, value in changes.items():
        section, leaf = key.split("__")
        p[section][leaf] = value
    return validated(p, "test")


def orthogonal(rng, n, count=1):
    q, r = np.linalg.qr(rng.normal(size=(count, n, n)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]


def round_trip(u, layout="clements") -> float:
    tau, d = clements.givens(u, layout)
    phases, screen, unreachable = clements.set_phases(tau, d, kind=layout)
    assert not unreachable.any()
    return float(np.abs(mzi_mesh.mesh_matrix(phases, screen, kind=layout) - u).max())


# ------------------------------------------------------------------------------ decomposition

@pytest.mark.parametrize("layout", mzi_mesh.LAYOUTS)
@settings(max_examples=30, deadline=None)
@given(st.integers(2, 48), st.integers(0, 2 ** 32 - 1))
def test_round_trip_of_random_orthogonal_matrices(layout, n, seed):
    u = orthogonal(np.random.default_rng(seed), n, 3)
    assert round_trip(u, layout) <= 1e-12


@pytest.mark.parametrize("layout", mzi_mesh.LAYOUTS)
@settings(max_examples=3, deadline=None)
@given(st.sampled_from([64, 128, 256]), st.integers(0, 2 ** 32 - 1))
def test_round_trip_of_large_meshes(layout, n, seed):
    assert round_trip(orthogonal(np.random.default_rng(seed), n), layout) <= 1e-12


@pytest.mark.parametrize("layout", mzi_mesh.LAYOUTS)
def test_round_trip_with_an_mzi_next_to_full_cross(layout):
    """An MZI within 3e-8 of full cross: its phi comes from a product of two small entries (|z| ~
    1e-16); taking such a z as 0 (as before) left the round trip 4e-8 off. Hypothesis found it on
    a random 256 x 256 matrix (5e-9)."""
    rng = np.random.default_rng(0)
    tau = rng.uniform(-np.pi, np.pi, (1, mzi_mesh.mzi_count(8)))
    tau[0, 5] = np.pi / 2 - 3e-8
    assert round_trip(clements.rotations_matrix(tau, np.ones((1, 8)), layout), layout) <= 1e-12


@pytest.mark.parametrize("layout", mzi_mesh.LAYOUTS)
@settings(max_examples=40, deadline=None)
@given(st.integers(2, 24), st.integers(0, 2 ** 32 - 1), st.sampled_from(["identity", "permutation", "signs", "swaps",
                                                                          "blocks"]))
def test_round_trip_of_degenerate_matrices(layout, n, seed, kind):
    """Identity, permutations, diagonal +-1, and matrices whose internal phases sit at 0 or pi."""
    rng = np.random.default_rng(seed)
    signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    u = {"identity": np.eye(n), "permutation": np.eye(n)[rng.permutation(n)], "signs": np.diag(signs),
         "swaps": np.eye(n)[np.arange(n) ^ 1 if n % 2 == 0 else np.r_[np.arange(n - 1) ^ 1, n - 1]] * signs,
         "blocks": np.kron(np.eye((n + 1) // 2), orthogonal(rng, 2)[0])[:n, :n] if n % 2 == 0 else np.eye(n)}[kind]
    assert round_trip(u[None], layout) <= 1e-12


@pytest.mark.parametrize("layout", mzi_mesh.LAYOUTS)
def test_permutations_round_trip_to_rounding_error(layout):
    """The entries a permutation leaves to null are exact zeros plus rounding: each such rotation
    is an exact 0 or pi (``clements._settled``), not the angle between two rounding errors, which
    left a 20 x 20 permutation 1.03e-12 off (Hypothesis: n=20, seed=17449)."""
    for seed in range(100):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 25))
        assert round_trip(np.eye(n)[rng.permutation(n)][None], layout) <= 1e-13, (seed, n)
    rng = np.random.default_rng(17449)
    rng.random(20)
    assert round_trip(np.eye(20)[rng.permutation(20)][None], layout) <= 1e-13


def test_reck_layout_is_the_triangle_and_its_depth_sets_the_nominal_loss():
    """Diagonal s of the triangle (s = 0 .. N - 2) is the MZIs on (k, k + 1), k = 0 .. N - 2 - s, in
    column k + 2s: 2N - 3 columns, every path through as many sections."""
    assert [(start, list(tops)) for start, tops in mzi_mesh.layout(4, "reck")] == \
        [(0, [0]), (1, [1]), (2, [0, 2]), (4, [1]), (5, [0])]
    for n in range(2, 30):
        placed = {(c, int(top)) for c, (_, tops) in enumerate(mzi_mesh.layout(n, "reck")) for top in tops}
        assert placed == {(k + 2 * s, k) for s in range(n - 1) for k in range(n - 1 - s)}
        assert mzi_mesh.depth(n, "reck") == 2 * n - 3 and mzi_mesh.depth(n, "clements") == n
    assert mzi_mesh.nominal_loss(8, 0.1, "reck") == 10 ** (-13 * 0.1 / 20)
    assert mzi_mesh.nominal_loss(8, 0.1, "clements") == 10 ** (-8 * 0.1 / 20)


@pytest.mark.parametrize("loss_db", [0.0, 0.1])
def test_reck_meshes_match_onnxruntime(loss_db):
    """A Reck profile end to end, with the nominal loss of its 2N - 3 sections restored."""
    p = profile("mzi-ideal", mesh__layout="reck", mesh__loss_db=loss_db)
    program, _, _ = compile_and_compare(DIGITS, {"pixels": np.load(TEST)["pixels"]}, p)
    meshes = [i for i in program.instructions if i["op"] == "Mesh"]
    assert meshes and all(i["attrs"]["layout"] == "reck" for i in meshes)
    feeds = dict(np.load(DATA / "torch_dynamo_cnn.npz"))
    feeds.pop("label", None)
    compile_and_compare(DATA / "torch_dynamo_cnn.onnx", feeds, p)


def test_a_reck_chip_is_refused_for_a_clements_mesh_and_its_layout_is_checked(tmp_path, capsys):
    reck, clements_ = tmp_path / "reck.yaml", tmp_path / "clements.yaml"
    reck.write_text("extends: mzi-dat\nname: small-dat\nmesh: {ports: 8, layout: reck}\n")
    clements_.write_text("extends: mzi-dat\nname: small-dat\nmesh: {ports: 8}\n")
    chip = tmp_path / "c.npz"
    code, _, err = run_cli(capsys, "chip", reck, "--seed", "2", "-o", chip)
    assert code == 0, err
    assert chips.read(chip).meta["sizes"] == {"ports": 8, "layout": "reck"}
    assert chips.draw(load_profile("mzi-dat"), 2).meta["sizes"] == {"ports": 64}   # Clements chips as before
    code, _, err = run_cli(capsys, "compile", DIGITS, "-p", reck, "--calibration", CALIBRATION, "--chip", chip,
                           "-o", tmp_path / "r.pcc")
    assert code == 0, err
    code, _, err = run_cli(capsys, "compile", DIGITS, "-p", clements_, "--calibration", CALIBRATION, "--chip", chip,
                           "-o", tmp_path / "c.pcc")
    assert code == 2 and "(mzi, layout reck, ports 8), not of 'small-dat' (mzi, ports 8)" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "c.pcc").exists()
    drawn = chips.read(chip)
    forged = chips.Chip(drawn.meta | {"sizes": {"ports": 8, "layout": "hexagon"}}, drawn.arrays)
    (tmp_path / "forged.npz").write_bytes(forged.to_bytes())   # a valid checksum over a layout nobody makes
    with pytest.raises(UserError, match="its mesh layout 'hexagon' is not one of clements, reck"):
        chips.read(tmp_path / "forged.npz")


def test_error_aware_programming_refinement_and_calibration_on_a_reck_chip():
    """The chip's errors, true or estimated from measurements, programmed for on a Reck mesh; the
    refinement's gradient runs through the triangle's columns."""
    p = profile("mzi-dat", mesh__ports=8, mesh__layout="reck", noise__phase_sigma=0.1, noise__splitter_sigma=0.06)
    truth = chips.draw(p, 1)
    estimate = calibrate(p, SimulatedDevice(p, truth, seed=0), probes=5, seed=0)
    w = np.random.default_rng(3).normal(size=(1, 8, 8))
    error = {}
    for label, chip, steps in (("none", None, 0), ("truth", truth, 0), ("estimate", estimate, 0),
                               ("refined", truth, 100)):
        tensors, attrs, facts = mzi.lower(w, np.zeros((1, 8)), -np.ones((1, 8)), 2 * np.ones((1, 8)), np.float32, p,
                                          chip, steps)
        realised = mzi.realised_tiles(tensors, attrs, p, truth.mesh_errors())[0, 0, 0] * tensors["gain"][0, 0, 0]
        error[label] = np.abs(realised - w[0]).max() / np.abs(w[0]).max()
        if chip is not None:
            assert np.all(facts["fidelity_after"] > facts["fidelity_before"])
    assert error["estimate"] < error["truth"] + 0.02 and error["estimate"] < error["none"] / 3, error
    assert error["refined"] < error["truth"], error


@pytest.mark.parametrize("rank", [0, 1, 3])
def test_a_layer_of_any_rank_lowers_to_meshes_that_rebuild_it(rank):
    """W = U S V^T per tile, every tile at once: the meshes rebuilt from the phases reproduce the
    tiles of W diag(alpha / 2) (rank-deficient and all-zero tiles included)."""
    rng = np.random.default_rng(rank)
    w = (rng.normal(size=(1, 20, rank)) @ rng.normal(size=(1, rank, 21))) if rank else np.zeros((1, 20, 21))
    lo, alpha = rng.normal(size=(1, 21)), rng.uniform(0.5, 2, (1, 21))
    p = profile(mesh__ports=8)
    tensors, attrs, facts = mzi.lower(w, rng.normal(size=(1, 20)), lo, alpha, np.float32, p)
    tiles = mzi.realised_tiles(tensors, attrs, p) * tensors["gain"][..., None, None]
    from photoncc.devices.tiles import untile
    assert np.abs(untile(tiles, 20, 21) - w * alpha[:, None, :] / 2).max() <= 1e-12
    assert facts["unreachable"] == [0, 0]


def test_mesh_physics_is_unitary_and_splitter_errors_limit_the_reachable_ratios():
    rng = np.random.default_rng(0)
    n = 6
    z = mzi_mesh.mzi_count(n)
    errors = {"theta": rng.normal(0, .1, z), "phi": rng.normal(0, .1, z), "screen": rng.normal(0, .1, n),
              "e1": rng.normal(0, .1, z), "e2": rng.normal(0, .1, z)}
    m = mzi_mesh.mesh_matrix(rng.uniform(0, 6, (4, z, 2)), rng.uniform(0, 6, (4, n)), errors, kind="clements")
    assert np.abs(m @ np.conj(np.swapaxes(m, -1, -2)) - np.eye(n)).max() < 1e-12
    low, gap = mzi_mesh.bar_power(0.1, 0.1)
    t00 = mzi_mesh.mzi_entries(np.linspace(0, 2 * np.pi, 1001), 0.0, 0.1, 0.1)[0]
    assert abs(np.min(np.abs(t00) ** 2) - low) < 1e-6 and abs(np.max(np.abs(t00) ** 2) - (1 - gap)) < 1e-6


# ------------------------------------------------------------------------------ end to end

@pytest.mark.parametrize("fixture", ["torch_legacy_cnn", "torch_dynamo_cnn", "torch_dynamo_mlp", "skl2onnx_mlp",
                                     "torch_legacy_mlp_tanh"])
def test_mzi_ideal_matches_onnxruntime_on_the_exporter_fixtures(fixture):
    feeds = dict(np.load(DATA / f"{fixture}.npz"))
    feeds.pop("label", None)
    program, _, _ = compile_and_compare(DATA / f"{fixture}.onnx", feeds, load_profile("mzi-ideal"))
    assert Program.from_bytes(program.to_bytes()).manifest["version"] == 2
    assert any(i["op"] == "Mesh" for i in program.instructions)


@pytest.mark.parametrize("model", ["digits_mlp", "digits_sigmoid_mlp"])
def test_mzi_ideal_matches_onnxruntime_on_the_digits_models(model):
    feeds = {"pixels": np.load(TEST)["pixels"]}
    compile_and_compare(DATA / f"{model}.onnx", feeds, load_profile("mzi-ideal"))


def test_mzi_ideal_matches_onnxruntime_on_a_light_model(tmp_path):
    from helpers import data_inputs
    model = light_model("squeezenet")
    path = save_model(model, tmp_path, "squeezenet.onnx")
    feeds = {data_inputs(model)[0]: image_batch(2, seed=1)}
    compile_and_compare(path, feeds, load_profile("mzi-ideal"))


def test_mzi_verify_and_inspect_commands(tmp_path, capsys):
    program = tmp_path / "d.pcc"
    code, _, err = run_cli(capsys, "compile", DIGITS, "-p", "mzi-ideal", "--calibration", TEST, "-o", program)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "verify", program, "--inputs", TEST)
    assert code == 0 and "PASS" in out
    code, out, _ = run_cli(capsys, "inspect", program)
    assert code == 0 and "clements meshes of 16 ports" in out and "MZIs set" in out and "theta mean" in out
    manifest = Program.read(program).manifest
    assert manifest["version"] == 2 and manifest["report"]["mzis"] == sum(i["mesh"]["mzis"]
                                                                            for i in manifest["instructions"]
                                                                            if i["op"] == "Mesh")


def test_quantised_noisy_mzi_profile_keeps_the_classifier():
    program = compile_model(DIGITS, load_profile("mzi-8b"), CALIBRATION)
    for name in ("phases", "screens", "atten"):
        tensor = next(v for k, v in program.tensors.items() if k.endswith(f".{name}"))
        assert tensor.dtype == np.uint16 and tensor.max() < 2 ** 10
    test = dict(np.load(TEST))
    ref, _ = run_onnxruntime(str(DIGITS), {"pixels": test["pixels"]})
    out = Simulator(program, seed=1).run_batches({"pixels": test["pixels"]})
    agree = np.mean(out["probabilities"].argmax(1) == ref["probabilities"].argmax(1))
    assert agree >= 0.95


def test_a_mesh_program_in_format_version_1_is_refused(tmp_path):
    program = compile_model(DIGITS, load_profile("mzi-ideal"), CALIBRATION)
    from photoncc.program_check import check_manifest
    from photoncc.errors import ProgramError
    with pytest.raises(ProgramError, match="needs program format version 2"):
        check_manifest({**program.manifest, "version": 1}, program.tensors, "p.pcc")


# ------------------------------------------------------------------------------ chips

def test_chip_files_round_trip_and_are_checked(tmp_path, capsys):
    path = tmp_path / "c.npz"
    code, _, err = run_cli(capsys, "chip", "mzi-8b", "--seed", "3", "-o", path)
    assert code == 0 and "240 MZIs of 16 ports" in err
    read = chips.read(path, load_profile("mzi-8b"))
    assert np.array_equal(read.arrays["theta"], chips.draw(load_profile("mzi-8b"), 3).arrays["theta"])
    assert path.read_bytes() == chips.draw(load_profile("mzi-8b"), 3).to_bytes()  # deterministic
    data = path.read_bytes()
    cases = {"truncated.npz": data[:len(data) // 2], "notzip.npz": b"hello"}
    tampered = dict(np.load(path))
    tampered["theta"] = tampered["theta"] + 0.01
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **tampered)
    cases["tampered.npz"] = buffer.getvalue()
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError) as info:
            chips.read(tmp_path / name, load_profile("mzi-8b"))
        assert name in str(info.value) and "\n" not in str(info.value)
    assert "checksum mismatch" in str(pytest.raises(UserError, chips.read, tmp_path / "tampered.npz").value)


def test_a_chip_of_another_profile_or_mesh_size_is_refused_with_exit_2(tmp_path, capsys):
    chip = tmp_path / "c.npz"
    run_cli(capsys, "chip", "mzi-8b", "--seed", "1", "-o", chip)
    program = tmp_path / "d.pcc"
    run_cli(capsys, "compile", DIGITS, "-p", "mzi-ideal", "--calibration", CALIBRATION, "-o", program)
    small = tmp_path / "small.yaml"
    small.write_text("extends: mzi-8b\nname: small\nmesh: {ports: 8}\n")
    for argv, message in (
            (["simulate", program, "--inputs", TEST, "--chip", chip, "-o", tmp_path / "o.npz"], "not of 'mzi-ideal'"),
            (["compile", DIGITS, "-p", small, "--calibration", CALIBRATION, "--chip", chip, "-o", tmp_path / "x.pcc"],
             "ports 16), not of 'small' (mzi, ports 8)"),
            (["compile", DIGITS, "-p", "mrr-incoherent-8b", "--calibration", CALIBRATION, "--chip", chip,
              "-o", tmp_path / "y.pcc"], "not of 'mrr-incoherent-8b' (incoherent, banks 12, rings 12)"),
            (["calibrate", "mzi-ideal", "--device", chip, "-o", tmp_path / "e.npz"], "not of 'mzi-ideal'")):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "x.pcc").exists()


def test_an_unknown_mesh_layout_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "reck.yaml"
    bad.write_text("extends: mzi-ideal\nmesh: {layout: triangle}\n")
    code, _, err = run_cli(capsys, "check", DIGITS, "-p", bad)
    assert code == 2 and "mesh.layout: 'triangle' is not one of 'clements', 'reck'" in err
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("extends: ideal\nmesh: {ports: 8}\n")
    code, _, err = run_cli(capsys, "check", DIGITS, "-p", wrong)
    assert code == 2 and "mesh applies only to architecture 'mzi'" in err


def test_simulate_draws_the_chip_of_its_seed(tmp_path, capsys):
    """Without --chip an mzi device is the chip `photoncc chip PROFILE --seed N` draws."""
    program = compile_model(DIGITS, load_profile("mzi-dat"), CALIBRATION)
    x = {"pixels": np.load(TEST)["pixels"][:50]}
    drawn = Simulator(program, seed=4, noiseless=False).run(x)
    chip = chips.draw(load_profile("mzi-dat"), 4)
    quiet = profile("mzi-dat", noise__detector_sigma=0.0)
    a = Simulator(Program(program.manifest | {"profile": dict(quiet)}, program.tensors), seed=4).run(x)
    b = Simulator(Program(program.manifest | {"profile": dict(quiet)}, program.tensors), chip=chip).run(x)
    assert np.allclose(a["probabilities"], b["probabilities"], atol=1e-6)
    assert not np.allclose(drawn["probabilities"], Simulator(program, noiseless=True).run(x)["probabilities"], atol=1e-3)


def test_error_aware_programming_recovers_the_accuracy_on_that_chip(tmp_path, capsys):
    chip_path = tmp_path / "c.npz"
    run_cli(capsys, "chip", "mzi-dat", "--seed", "2", "-o", chip_path)
    nominal, aware = tmp_path / "n.pcc", tmp_path / "a.pcc"
    run_cli(capsys, "compile", DIGITS, "-p", "mzi-dat", "--calibration", CALIBRATION, "-o", nominal)
    code, _, err = run_cli(capsys, "compile", DIGITS, "-p", "mzi-dat", "--calibration", CALIBRATION, "-o", aware,
                           "--chip", chip_path)
    assert code == 0 and "programmed for this one" in err
    report = Program.read(aware).manifest["report"]["chip"]
    assert report["fidelity_before"] < 0.9 and report["fidelity_after"] > 1 - 1e-9
    # the report's SQNR is measured on the chip the program is for (on an ideal chip it is a few dB)
    sqnr = [layer["sqnr_db"] for layer in Program.read(aware).manifest["report"]["layers"]]
    assert min(sqnr) > 60, sqnr
    test = dict(np.load(TEST))
    chip = chips.read(chip_path, load_profile("mzi-dat"))
    accuracy = {}
    for name, path in (("nominal", nominal), ("aware", aware)):
        out = Simulator(Program.read(path), chip=chip).run_batches({"pixels": test["pixels"]})
        accuracy[name] = np.mean(out["probabilities"].argmax(1) == test["label"])
    assert accuracy["nominal"] < 0.6 and accuracy["aware"] > 0.96, accuracy
    code, out, _ = run_cli(capsys, "verify", aware, "--inputs", TEST, "--chip", chip_path, "--trials", "1")
    assert code == 0 and "PASS" in out


def test_error_aware_programming_with_splitter_errors_improves_fidelity_and_counts_unreachable_mzis():
    p = profile("mzi-dat", mesh__ports=16, noise__phase_sigma=0.0, noise__splitter_sigma=0.1)
    chip = chips.draw(p, 0)
    rng = np.random.default_rng(0)
    _, _, facts = mzi.lower(rng.normal(size=(1, 32, 32)), np.zeros((1, 32)), -np.ones((1, 32)), 2 * np.ones((1, 32)),
                            np.float32, p, chip)
    assert np.mean(facts["fidelity_after"]) > np.mean(facts["fidelity_before"])
    assert sum(facts["unreachable"]) > 0


def splitter_chip(ports: int = 16, seed: int = 0):
    p = profile("mzi-dat", mesh__ports=ports, noise__phase_sigma=0.05, noise__splitter_sigma=0.1,
                noise__loss_sigma_db=0.05)
    return p, chips.draw(p, seed)


def test_refinement_gradient_matches_finite_differences():
    """devices.refine.gradient of a tile's detected error, on a chip with phase offsets, splitting
    errors and losses, against central differences of its own loss (which is checked against the
    simulator's tile_matrices), in every phase, screen and attenuator of both meshes."""
    from photoncc.devices.refine import gradient
    p, chip = splitter_chip(ports=5)
    errors = chip.mesh_errors()
    rng = np.random.default_rng(3)
    z, scale = mzi_mesh.mzi_count(5), 0.9
    phases, screens = rng.uniform(0, 2 * np.pi, (2, 2, z, 2)), rng.uniform(0, 2 * np.pi, (2, 2, 5))
    atten, target = rng.uniform(0.2, 3.0, (2, 5)), rng.normal(size=(2, 5, 5)) / 3
    loss, *grads = gradient(phases, screens, atten, errors, target, scale, "clements")
    detected = mzi_mesh.tile_matrices(phases, screens, atten, None, 5, 0.0, errors, kind="clements") * scale
    np.testing.assert_allclose(loss, ((detected - target) ** 2).sum(axis=(-2, -1)), rtol=1e-12)
    settings, eps = [phases, screens, atten], 1e-6
    for which, (values, grad) in enumerate(zip(settings, grads)):
        for index in np.ndindex(values.shape[1:]):
            moved = []
            for sign in (1, -1):
                shifted = [x.copy() for x in settings]
                shifted[which][(slice(None),) + index] += sign * eps
                moved.append(gradient(*shifted, errors, target, scale, "clements")[0])
            np.testing.assert_allclose(grad[(slice(None),) + index], (moved[0] - moved[1]) / (2 * eps), atol=1e-7)


def test_refinement_lowers_the_tile_error_local_correction_leaves():
    """Splitting errors of 0.1: the local correction leaves unreachable MZIs; refinement lowers the
    detected error of every tile, deterministically, keeps the attenuators in [0, pi] and the
    settings on the phase_bits grid, and never leaves a tile worse than it found it."""
    from photoncc.devices.refine import refine, tile_error
    p, chip = splitter_chip(ports=16)
    errors = chip.mesh_errors()
    w = np.random.default_rng(4).normal(size=(1, 16, 48))
    tensors, attrs, facts = mzi.lower(w, np.zeros((1, 16)), -np.ones((1, 48)), 2 * np.ones((1, 48)), np.float64, p,
                                      chip)
    assert min(facts["unreachable"]) > 0 and np.all(facts["tile_error_after"] < facts["tile_error_before"])
    phases, screens, atten = (tensors[k].reshape((3,) + tensors[k].shape[3:]) for k in ("phases", "screens", "atten"))
    loss_db = attrs["loss_db"]
    target = mzi_mesh.tile_matrices(phases, screens, atten, None, 16, loss_db, kind="clements")   # the ideal chip's
    error = lambda settings: tile_error(*settings, errors, target, loss_db, kind="clements")  # noqa: E731
    local = error((phases, screens, atten))
    refined = refine(phases, screens, atten, errors, target, loss_db, 200, None, kind="clements")
    assert np.all(error(refined) < 0.5 * local), (error(refined), local)
    assert refined[2].min() >= 0 and refined[2].max() <= np.pi
    coarse = refine(phases, screens, atten, errors, target, loss_db, 200, 5, kind="clements")  # 5-bit steps: less gain
    assert np.all(error(coarse) <= local) and np.any(error(coarse) < local)
    again = refine(phases, screens, atten, errors, target, loss_db, 200, 5, kind="clements")
    assert all(np.array_equal(a, b) for a, b in zip(coarse, again))
    step = mzi_mesh.phase_step(5)
    assert all(np.allclose(x / step, np.round(x / step)) for x in coarse)
    assert refine(phases, screens, atten, errors, target, loss_db, 0, 5, kind="clements") == (phases, screens, atten)


def test_compile_refine_option_lowers_the_tile_error_and_is_reported(tmp_path, capsys):
    """compile --chip --refine STEPS: a lower detected tile error than the local correction alone,
    the steps in the report and inspect; --refine without --chip, or on a ring profile, exit 2."""
    import yaml
    p, _ = splitter_chip(ports=16)
    profile_path = tmp_path / "p.yaml"
    profile_path.write_text(yaml.safe_dump({**dict(p), "name": "splitter16"}))
    chip_path = tmp_path / "c.npz"
    assert run_cli(capsys, "chip", profile_path, "--seed", "1", "-o", chip_path)[0] == 0
    error = {}
    for steps in (0, 100):
        out = tmp_path / f"r{steps}.pcc"
        code, _, err = run_cli(capsys, "compile", DIGITS, "-p", profile_path, "--calibration", CALIBRATION,
                               "--chip", chip_path, "--refine", steps, "-o", out)
        assert code == 0, err
        report = Program.read(out).manifest["report"]["chip"]
        assert report["refine_steps"] == steps
        error[steps] = report["tile_error_after"]
        assert report["tile_error_after"] < report["tile_error_before"]
    assert error[100] < 0.7 * error[0], error
    code, out, _ = run_cli(capsys, "inspect", tmp_path / "r100.pcc")
    assert "local correction and 100 refinement steps" in out
    for argv, phrase in (([], "give --chip CHIP.npz too"), (["--chip", chip_path, "-p", "mrr-incoherent-8b"],
                                                             "refines the phases of MZI meshes")):
        code, _, err = run_cli(capsys, "compile", DIGITS, "--refine", "10", "--calibration", CALIBRATION,
                               "-o", tmp_path / "x.pcc", *(argv or ["-p", profile_path]))
        assert code == 2 and phrase in err and not (tmp_path / "x.pcc").exists(), err


def test_ring_programs_compile_for_a_chip(tmp_path, capsys):
    """compile --chip on a ring profile: each ring's offset and the crosstalk measured are compensated."""
    p = load_profile("mrr-incoherent-8b")
    chip = chips.draw(p, 1)
    x = {"pixels": np.load(CALIBRATION)["pixels"][:64]}
    name = "/net/net.4/Gemm_output_0"
    ref, _ = run_onnxruntime(str(DIGITS), x, extra_outputs=[name])
    sqnr = {}
    for label, target in (("nominal", None), ("chip", chip)):
        program = compile_model(DIGITS, p, CALIBRATION, chip=target)
        out = Simulator(program, noiseless=True, chip=chip).run(x, keep=[name])
        sqnr[label] = 10 * np.log10(np.sum(ref[name] ** 2) / np.sum((out[name] - ref[name]) ** 2))
    assert sqnr["chip"] > sqnr["nominal"] + 1, sqnr
    assert "chip" not in compile_model(DIGITS, p, CALIBRATION).manifest


# ------------------------------------------------------------------------------ calibration

@pytest.mark.parametrize("phase, splitter", [(0.1, 0.0), (0.06, 0.06)])
def test_calibration_from_measurements_programs_as_well_as_the_true_errors(phase, splitter):
    p = profile("mzi-dat", mesh__ports=8, noise__phase_sigma=phase, noise__splitter_sigma=splitter)
    truth = chips.draw(p, 1)
    device = SimulatedDevice(p, truth, seed=0)
    estimate = calibrate(p, device, probes=5, seed=0)
    assert estimate.meta["kind"] == "estimate" and estimate.meta["measurements"] == device.vectors == 9 * 8 * 8
    rng = np.random.default_rng(3)
    w = rng.normal(size=(1, 8, 8))
    error = {}
    for label, chip in (("none", None), ("truth", truth), ("estimate", estimate)):
        tensors, attrs, _ = mzi.lower(w, np.zeros((1, 8)), -np.ones((1, 8)), 2 * np.ones((1, 8)), np.float32, p, chip)
        realised = mzi.realised_tiles(tensors, attrs, p, truth.mesh_errors())[0, 0, 0] * tensors["gain"][0, 0, 0]
        error[label] = np.abs(realised - w[0]).max() / np.abs(w[0]).max()
    assert error["estimate"] < error["truth"] + 0.02 and error["estimate"] < error["none"] / 3, error


def test_calibrate_command_writes_an_estimate_compile_takes(tmp_path, capsys):
    small = tmp_path / "small.yaml"
    small.write_text("extends: mzi-dat\nname: small-dat\nmesh: {ports: 8}\n")
    chip, estimate = tmp_path / "c.npz", tmp_path / "e.npz"
    run_cli(capsys, "chip", small, "--seed", "5", "-o", chip)
    code, _, err = run_cli(capsys, "calibrate", small, "--device", chip, "--probes", "4", "-o", estimate)
    assert code == 0 and "from 448 input vectors sent" in err, err
    code, _, err = run_cli(capsys, "compile", DATA / "torch_dynamo_mlp.onnx", "-p", small, "--calibration",
                           DATA / "torch_dynamo_mlp.npz", "--chip", estimate, "-o", tmp_path / "m.pcc")
    assert code == 0, err
    code, _, err = run_cli(capsys, "calibrate", "mrr-incoherent-8b", "--device", chip, "-o", tmp_path / "x.npz")
    assert code == 2 and "'mrr-incoherent-8b' is not an MZI-mesh profile" in err
