"""photoncc: compile ONNX neural networks for photonic accelerators, simulate and verify them."""

__version__ = "0.1.0"
