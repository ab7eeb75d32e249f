"""``python -m photoncc`` and the ``photoncc`` command (``entry``)."""
import os
import sys


def entry() -> None:
    # OpenBLAS's worker threads busy-wait for about 2^28 cycles (a tenth of a second) after every
    # matrix product before they sleep, holding the cores that photoncc's own threads (cpu.threaded)
    # need between two products; 2^4 cycles lets them sleep at once. OpenBLAS reads it when NumPy
    # loads it, so it is set here, before anything imports NumPy; a value the user set is kept.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    from .cli import main
    sys.exit(main())


if __name__ == "__main__":
    entry()
