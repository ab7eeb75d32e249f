"""Design-space sweeps: compile and verify one model over a grid of profile values.

    photoncc sweep MODEL.onnx -p PROFILE --calibration CAL.npz --inputs TEST.npz \\
        --vary precision.weight_bits=3,4,8 --vary noise.detector_sigma=0.001,0.016 --seeds 3 -o RESULTS.csv

Each ``--vary KEY=V1,V2,...`` names a dotted profile key (``SCHEMA``) and its values; the grid is
the product of the lists, the first key varying slowest. A point's profile is the base profile
with its keys overridden, validated as ``load_profile`` validates a file; every point is checked
before any runs. A point compiles the model for its profile, calibrated on CAL, and verifies the
program on TEST at its profile's tier (``verify``), the noisy tier with ``seeds`` seeded runs:
seeds 0 .. seeds-1, each drawing the chip's static errors and its read noise from that seed, as
``photoncc verify --seed 0 --trials N`` does. It yields one row (``COLUMNS``).

Points are independent tasks. They run in this process (one worker), in a local process pool
(``concurrent.futures``; the model, calibration and test data go to each worker once, through its
initializer) or on a Dask distributed cluster (``--scheduler``: the data are scattered to every
worker once, one task per point). A point that fails (a UserError of its compile or verify, or a
bug) gets its message in the ``error`` column and the sweep goes on.

Resuming: each finished row is appended to the CSV at once (flushed and synced), so a run killed
part-way leaves a CSV of complete rows and perhaps one partial last line. A run with the same
output drops that line and the rows of points outside the grid, keeps the rows of this sweep's
points and runs only the others. A row belongs to this sweep when its ``sweep`` column holds this sweep's id,
a digest of what decides the results (photoncc's version, the model, the base profile, the data,
the seeds, the noise model and the columns); a file with other columns or another sweep's rows is
refused, never overwritten. The caller rewrites the file in grid order at the end (``csv_bytes``),
so the CSV does not depend on the number of workers or the order in which points finish; only
the ``seconds`` column (wall time) differs between runs.

The library never prints: progress goes through ``progress(done, total)`` over points
(photoncc/progress.py).
"""

from .grid import Axis, grid, leaf_keys, parse_vary, point_profile
from .points import COLUMNS, RELATIVE_ERROR, Payload, Plan, plan, run_point
from .results import Outcome, csv_bytes, json_bytes, plot_metric, plot_png, run, typed
from .workers import default_workers, require_distributed

__all__ = ["Axis", "COLUMNS", "Outcome", "Payload", "Plan", "RELATIVE_ERROR", "csv_bytes", "default_workers",
           "grid", "json_bytes", "leaf_keys", "parse_vary", "plan", "plot_metric", "plot_png", "point_profile",
           "require_distributed", "run", "run_point", "typed"]
