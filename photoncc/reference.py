"""The trusted reference: onnxruntime running the original model. Imported by the verifier only.

Models older than opset 7 do not load in onnxruntime; they run as ``onnx_load.load_model`` upgraded
them (the same ModelProto the importer reads), and the report says so. A model whose batch
dimension is fixed runs in batches of that size, the last one filled up with copies of its last
sample.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import fixed_batches
from .errors import UserError
from .onnx_load import MIN_OPSET, default_opset, load_model


def run_onnxruntime(model_path: str | Path, feeds: dict, batch_size: int = 256,
                    extra_outputs=()) -> tuple[dict, str]:
    """(outputs by name, a line describing what ran) for all samples of ``feeds``.

    ``extra_outputs`` names intermediate values of the model to return too (those that exist)."""
    import onnx
    import onnxruntime as ort

    model = load_model(model_path)
    original_opset = default_opset(onnx.load(str(model_path), load_external_data=False))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    produced = {o for n in model.graph.node for o in n.output}
    extra = [name for name in extra_outputs if name in produced and name not in {o.name for o in model.graph.output}]
    if extra:
        model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in extra)
        source = model.SerializeToString()
        note = f"onnxruntime {ort.__version__} on {Path(model_path).name}"
    elif original_opset < MIN_OPSET:
        source = model.SerializeToString()
        note = f"onnxruntime {ort.__version__} on the model upgraded from opset {original_opset} to {MIN_OPSET}"
    else:
        source = str(model_path)
        note = f"onnxruntime {ort.__version__} on {Path(model_path).name}"
    if original_opset < MIN_OPSET:
        note = f"onnxruntime {ort.__version__} on the model upgraded from opset {original_opset} to {MIN_OPSET}"
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise UserError(f"{model_path}: onnxruntime cannot load the model: {str(e).splitlines()[0]}") from e
    wanted = [i.name for i in session.get_inputs()]
    if sorted(wanted) != sorted(feeds):
        raise UserError(f"{model_path}: the model's inputs {wanted} are not the program's {list(feeds)}; "
                        "pass the model the program was compiled from (--model)")
    fixed = {i.name: i.shape[0] for i in session.get_inputs() if i.shape and isinstance(i.shape[0], int)}
    names = [o.name for o in session.get_outputs()]
    if fixed:  # exported for a fixed batch: that many samples at a time, the last batch filled up
        chunks = fixed_batches(feeds, min(fixed.values()))
    else:
        total = len(next(iter(feeds.values())))
        chunks = (({k: v[start:start + batch_size] for k, v in feeds.items()}, None)
                  for start in range(0, total, batch_size))
    try:
        parts = [[value[:count] for value in session.run(names, chunk)] for chunk, count in chunks]
    except UserError:
        raise
    except Exception as e:  # onnxruntime's own error types: the model does not run on these inputs
        raise UserError(f"{model_path}: onnxruntime cannot run the model on these inputs: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from e
    return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(names)}, note


class Reference:
    """onnxruntime on one model, loaded once and run batch by batch (fine-tuning's teacher):
    ``reference(feeds)`` returns the outputs by name. A model exported with a fixed batch runs
    in batches of that size (``fixed_batches``)."""

    def __init__(self, model_path: str | Path):
        import onnxruntime as ort
        model = load_model(model_path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise UserError(f"{model_path}: onnxruntime cannot load the model: {str(e).splitlines()[0]}") from e
        self.path = model_path
        self.names = [o.name for o in self.session.get_outputs()]
        fixed = [i.shape[0] for i in self.session.get_inputs() if i.shape and isinstance(i.shape[0], int)]
        self.fixed = min(fixed) if fixed else None

    def __call__(self, feeds: dict) -> dict:
        chunks = fixed_batches(feeds, self.fixed) if self.fixed else [(feeds, None)]
        try:
            parts = [[value[:count] for value in self.session.run(self.names, chunk)] for chunk, count in chunks]
        except Exception as e:  # onnxruntime's own error types: the model does not run on these inputs
            raise UserError(f"{self.path}: onnxruntime cannot run the model on these inputs: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from e
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self.names)}
