"""photoncc: compile ONNX neural networks for photonic accelerators, simulate and verify them."""
import os

# OpenBLAS's worker threads busy-wait for about 2^28 cycles (a tenth of a second) after every matrix
# product before they sleep, holding the cores that photoncc's own copy threads (kernels.threaded:
# the unfold of a convolution, the modulators and DACs) need between two products; 2^4 cycles lets
# them sleep at once. Read when NumPy loads OpenBLAS, so it acts only if photoncc is imported
# first (as the photoncc command does); a value the user set is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
