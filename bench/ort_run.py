"""The onnxruntime side of the benchmark's whole-process measurements: what a user writes by hand.

    python bench/ort_run.py infer MODEL.onnx INPUTS.npz OUTPUTS.npz BATCH
        load the model in onnxruntime (CPU), run every sample of INPUTS.npz (the one array keyed by
        the model input's name) in batches of BATCH, write the outputs (.npz, keyed by output name):
        the same work as ``photoncc simulate PROGRAM --inputs INPUTS.npz -o OUTPUTS.npz --batch-size BATCH``.

    python bench/ort_run.py quantize MODEL.onnx CALIBRATION.npz OUTPUT.onnx
        onnxruntime.quantization.quantize_static: QDQ format, per-channel int8 weights, int8
        activations, MinMax calibration, a CalibrationDataReader over the samples of CALIBRATION.npz
        (one per call): the same job as ``photoncc compile MODEL --calibration CALIBRATION.npz``.

Imports only NumPy and onnxruntime, so the process costs what a user's script would.
"""
from __future__ import annotations

import sys

import numpy as np


def infer(model: str, inputs: str, outputs: str, batch: int) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    with np.load(inputs) as archive:
        x = archive[name if name in archive.files else archive.files[0]]
    names = [o.name for o in session.get_outputs()]
    parts = [session.run(names, {name: x[start:start + batch]}) for start in range(0, len(x), batch)]
    np.savez(outputs, **{n: np.concatenate([p[i] for p in parts]) for i, n in enumerate(names)})


def calibration_reader(name: str, samples: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(samples[i:i + 1] for i in range(len(samples)))

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {name: x}

    return Reader()


def quantize(model: str, calibration: str, output: str) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    name = [i.name for i in onnx.load(model, load_external_data=False).graph.input][0]
    with np.load(calibration) as archive:
        samples = archive[name if name in archive.files else archive.files[0]]
    quantize_static(model, output, calibration_reader(name, samples), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "infer":
        infer(args[0], args[1], args[2], int(args[3]))
    elif command == "quantize":
        quantize(*args)
    else:
        sys.exit(f"unknown command {command!r}")
