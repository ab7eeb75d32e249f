"""The DAT benchmark (docs/accuracy.md): a 64-64-64-10 MLP on the digits set on 64-port MZI meshes
with static errors, as the dual adaptive training paper measured it (Zheng et al., arXiv 2212.06141).

    python bench/dat.py [--chips 5] [--probes 12] [--layout clements] [--out results.json]

For each error setting (phase 0.10 rad: the built-in ``mzi-dat``; splitter 0.10; phase 0.06 and
splitter 0.06) and each of ``--chips`` chips (``photoncc chip PROFILE --seed N``, N = 1..), the test
accuracy (600 digits samples, tests/data/digits_test.npz) of the program

* error-free: compiled as if the chip were ideal, on an ideal chip (no read noise);
* deployed: the same program on the chip (read noise on, seed N);
* chip: compiled with the chip's true errors (``compile --chip CHIP.npz``), on the chip;
* calibrated: the chip's errors estimated from measurements only (``photoncc calibrate PROFILE
  --device CHIP.npz``), compiled for the estimate, on the chip;
* with ``--refine STEPS`` (default 300; 0 skips them), the last two again with that many steps of
  global refinement of the phases (``compile --chip ... --refine STEPS``);
* with ``--finetune EPOCHS`` (default 0: skipped), calibrated then fine-tuned: ``photoncc finetune
  --chip ESTIMATE.npz`` (the device model of the chip as calibrated, digits_train.npz, seed N), the
  tuned model compiled for the estimate, on the chip.

The commands, for one chip of the first setting:

    photoncc chip mzi-dat --seed 1 -o chip1.npz
    photoncc compile bench/data/dat_mlp.onnx -p mzi-dat --calibration tests/data/digits_calibration.npz -o nominal.pcc
    photoncc verify nominal.pcc --inputs tests/data/digits_test.npz --noiseless            # error-free
    photoncc verify nominal.pcc --inputs tests/data/digits_test.npz --chip chip1.npz --seed 1   # deployed
    photoncc compile bench/data/dat_mlp.onnx -p mzi-dat --calibration tests/data/digits_calibration.npz \\
        --chip chip1.npz -o chip1.pcc
    photoncc verify chip1.pcc --inputs tests/data/digits_test.npz --chip chip1.npz --seed 1      # chip
    photoncc calibrate mzi-dat --device chip1.npz --seed 1 -o estimate1.npz
    photoncc compile bench/data/dat_mlp.onnx -p mzi-dat --calibration tests/data/digits_calibration.npz \\
        --chip estimate1.npz -o estimate1.pcc
    photoncc verify estimate1.pcc --inputs tests/data/digits_test.npz --chip chip1.npz --seed 1  # calibrated
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

from photoncc import chip as chips  # noqa: E402
from photoncc.calibrate import calibrate  # noqa: E402
from photoncc.compiler import compile_model  # noqa: E402
from photoncc.data import load_npz  # noqa: E402
from photoncc.devices.mzi_mesh import LAYOUTS  # noqa: E402
from photoncc.profile import load_profile, validated  # noqa: E402
from photoncc.sim import Simulator  # noqa: E402
from photoncc.sim.measure import SimulatedDevice  # noqa: E402

MODEL = ROOT / "bench" / "data" / "dat_mlp.onnx"
CALIBRATION = ROOT / "tests" / "data" / "digits_calibration.npz"
TEST = ROOT / "tests" / "data" / "digits_test.npz"
TRAIN = ROOT / "tests" / "data" / "digits_train.npz"
SETTINGS = {"phase 0.10 rad (mzi-dat)": {},
            "splitter 0.10": {"phase_sigma": 0.0, "splitter_sigma": 0.10},
            "phase 0.06 + splitter 0.06": {"phase_sigma": 0.06, "splitter_sigma": 0.06}}


def accuracy(program, test, **device) -> float:
    out = Simulator(program, **device).run_batches({"pixels": test["pixels"]}, batch_size=600)
    return float(np.mean(out["probabilities"].argmax(1) == test["label"]))


def finetuned(profile, estimate, calibration, test, seed: int, epochs: int) -> float:
    """Fine-tune the model for the estimated chip, compile the tuned model for it, run it on the
    true chip (the seed's)."""
    import tempfile
    from photoncc.train.finetune import Options, finetune
    tuned, _ = finetune(MODEL, TRAIN, profile, options=Options(epochs=epochs, seed=seed), chip=estimate,
                        calibration_path=CALIBRATION)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tuned.onnx"
        path.write_bytes(tuned)
        program = compile_model(path, profile, {"pixels": calibration["pixels"]}, chip=estimate)
    return accuracy(program, test, seed=seed, chip=chips.draw(profile, seed))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, default=5)
    parser.add_argument("--probes", type=int, default=12)
    parser.add_argument("--settings", default=",".join(str(i) for i in range(len(SETTINGS))),
                        help="which settings (indices, comma-separated)")
    parser.add_argument("--refine", type=int, default=300, help="refinement steps of the refined columns (0: none)")
    parser.add_argument("--finetune", type=int, default=0, help="epochs of the fine-tuned column (0: none)")
    parser.add_argument("--layout", choices=LAYOUTS, default="clements",
                        help="the meshes' layout (mesh.layout; the paper's is clements)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    test = load_npz(TEST)
    calibration = load_npz(CALIBRATION)
    results = []
    for index, (label, noise) in enumerate(SETTINGS.items()):
        if str(index) not in args.settings.split(","):
            continue
        profile = copy.deepcopy(dict(load_profile("mzi-dat")))
        profile["noise"].update(noise)
        profile["mesh"]["layout"] = args.layout
        suffix = "" if args.layout == "clements" else f"-{args.layout}"
        profile["name"] = ("mzi-dat" if not noise else f"mzi-dat-{index}") + suffix
        profile = validated(profile, label)
        nominal = compile_model(MODEL, profile, {"pixels": calibration["pixels"]})
        free = accuracy(nominal, test, noiseless=True)
        for seed in range(1, args.chips + 1):
            chip = chips.draw(profile, seed)
            row = {"setting": label, "layout": args.layout, "chip": seed, "error_free": free,
                   "deployed": accuracy(nominal, test, seed=seed, chip=chip)}
            aware = compile_model(MODEL, profile, {"pixels": calibration["pixels"]}, chip=chip)
            row["chip_compiled"] = accuracy(aware, test, seed=seed, chip=chip)
            row["unreachable_mzis"] = aware.manifest["report"]["chip"]["unreachable_mzis"]
            start = time.perf_counter()
            device = SimulatedDevice(profile, chip, seed)
            estimate = calibrate(profile, device, args.probes, seed)
            row["calibrate_s"] = round(time.perf_counter() - start, 1)
            row["measurements"] = device.vectors
            calibrated = compile_model(MODEL, profile, {"pixels": calibration["pixels"]}, chip=estimate)
            row["calibrated"] = accuracy(calibrated, test, seed=seed, chip=chip)
            refined = ""
            if args.refine:
                for key, errors in (("chip_refined", chip), ("calibrated_refined", estimate)):
                    program = compile_model(MODEL, profile, {"pixels": calibration["pixels"]}, chip=errors,
                                            refine_steps=args.refine)
                    row[key] = accuracy(program, test, seed=seed, chip=chip)
                refined = f"  refined: chip {row['chip_refined']:.2%}  calibrated {row['calibrated_refined']:.2%}"
            if args.finetune:
                row["calibrated_finetuned"] = finetuned(profile, estimate, calibration, test, seed, args.finetune)
                refined += f"  calibrated + fine-tuned {row['calibrated_finetuned']:.2%}"
            results.append(row)
            print(f"{label:28s} chip {seed}: error-free {free:.2%}  deployed {row['deployed']:.2%}  "
                  f"chip {row['chip_compiled']:.2%}  calibrated {row['calibrated']:.2%}{refined}  "
                  f"({row['measurements']} vectors, {row['calibrate_s']} s, {row['unreachable_mzis']} MZIs unreachable)",
                  flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
