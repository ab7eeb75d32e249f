"""A worker process of ``pool.run_isolated``: ``python -m fuzz BORDER FIRST COUNT WORKDIR TIMEOUT``
(run from tests/)."""
import sys

from .pool import worker

worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
