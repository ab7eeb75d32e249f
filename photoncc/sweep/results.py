"""A sweep's results: running the points not yet in the CSV (resume after an interruption), the
rows appended as points finish, and the CSV, JSON and plot written at the end in grid order."""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..files import write_files
from .points import RELATIVE_ERROR, Plan
from .workers import _dask, _in_process, _local_pool, default_workers

INTEGER_COLUMNS = {"trials", "tiles"}
TEXT_COLUMNS = {"tier", "worst_layer", "error", "sweep"}


@dataclass
class Outcome:
    """What ``run`` did: every point's row and how many it found, ran and dropped."""
    rows: list  # every point's cells, in grid order
    resumed: int  # points whose rows were already in the CSV
    ran: int
    dropped: int  # rows of the CSV for points outside this grid (not kept)
    failed: list  # (point index, error) of the points with an error, in grid order


def run(plan: Plan, path, workers: int | None = None, scheduler: str | None = None, progress=None) -> Outcome:
    """Run the points not yet in the CSV at ``path`` (``resume``), appending each row as it
    finishes; ``scheduler``: a Dask scheduler's address, else ``workers`` local processes (default:
    the cores; one runs in this process). Returns every point's row in grid order."""
    path = Path(path)
    done, dropped = resume(plan, path)
    resumed = len(done)
    jobs = [(i, plan.profiles[i]) for i in range(len(plan.points)) if i not in done]
    total = len(plan.points)
    if progress is not None and resumed:
        progress(resumed, total)
    if jobs:
        if scheduler is not None:
            results = _dask(plan.payload, jobs, scheduler)  # connects first: no file is touched if it cannot
        else:
            workers = min(workers or default_workers(), len(jobs))
            results = _in_process(plan.payload, jobs) if workers == 1 else _local_pool(plan.payload, jobs, workers)
        restart(plan, path, done)
        with open(path, "a", encoding="utf-8", newline="") as f:
            for index, metrics in results:
                done[index] = row_cells(plan, index, metrics)
                _append(f, done[index])
                if progress is not None:
                    progress(len(done), total)
    rows = [done[i] for i in range(total)]
    error = plan.header.index("error")
    return Outcome(rows, resumed, len(jobs), dropped, [(i, row[error]) for i, row in enumerate(rows) if row[error]])


def _append(f, cells: list) -> None:
    """One complete line, on disk before the next point's: a kill leaves whole rows (and at most a
    partial last line, which resume drops)."""
    f.write(_line(cells))
    f.flush()
    os.fsync(f.fileno())


def _line(cells: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def resume(plan: Plan, path: Path) -> tuple[dict, int]:
    """The rows of this sweep's points already in the CSV at ``path`` (point index -> cells; a
    partial last line, left by a kill, and damaged rows are not rows) and the count of rows for
    points outside the grid. A file with other columns or another sweep's rows is refused."""
    lines = []
    if path.is_file() and path.stat().st_size:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"-o {path}: exists and cannot be read as this sweep's CSV to resume ({e}); "
                            "choose another path, or delete it to start over") from e
        lines = [line for line in text.splitlines(keepends=True) if line.endswith("\n")]
    rows = list(csv.reader(lines))
    if rows and rows[0] != plan.header:
        differ = next((i for i, (a, b) in enumerate(zip(rows[0], plan.header)) if a != b),
                      min(len(rows[0]), len(plan.header)))
        found = repr(rows[0][differ]) if differ < len(rows[0]) else "nothing"
        raise UserError(f"-o {path}: exists and is not this sweep's CSV (column {differ + 1} is {found}, expected "
                        f"{plan.header[differ] if differ < len(plan.header) else 'nothing'!r}); choose another "
                        "path, or delete it to start over")
    index_of = {plan.texts(i): i for i in range(len(plan.points))}
    keys, sweep = len(plan.axes), plan.header.index("sweep")
    done, dropped = {}, 0
    for row in rows[1:]:
        if len(row) != len(plan.header):
            continue  # a damaged row: its point runs again
        if row[sweep] != plan.sweep_id:
            raise UserError(f"-o {path}: holds the results of another sweep (sweep {row[sweep]}, this one is "
                            f"{plan.sweep_id}: the model, profile, data, --seeds or --noise-model differ); choose "
                            "another path, or delete it to start over")
        index = index_of.get(tuple(row[:keys]))
        if index is None:
            dropped += 1
        else:
            done.setdefault(index, row)
    return done, dropped


def restart(plan: Plan, path: Path, done: dict) -> None:
    """The CSV at ``path`` rewritten as its header and the rows ``resume`` kept, ready for appending."""
    write_files({path: "".join(_line(cells) for cells in [plan.header, *done.values()]).encode()})




def row_cells(plan: Plan, index: int, metrics: dict) -> list[str]:
    """A point's CSV row: its values' texts, then each column's cell (empty: not measured)."""
    cells = list(plan.texts(index))
    for column in plan.header[len(plan.axes):]:
        cells.append(plan.sweep_id if column == "sweep" else cell(metrics.get(column)))
    return cells


def cell(value) -> str:
    """A metric as CSV text: numbers with 6 significant digits, true/false, '' for none."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def typed(plan: Plan, rows: list) -> list[dict]:
    """The rows as dicts of typed values (column -> value; None where a cell is empty)."""
    points = []
    for index, row in enumerate(rows):
        point = plan.values(index)
        for column, text in zip(plan.header[len(plan.axes):], row[len(plan.axes):]):
            point[column] = _value(column, text)
        points.append(point)
    return points


def _value(column: str, text: str):
    if text == "":
        return None
    if column in TEXT_COLUMNS:
        return text
    if column in INTEGER_COLUMNS:
        return int(text)
    if column == "passed":
        return text == "true"
    return float(text)


def csv_bytes(plan: Plan, rows: list) -> bytes:
    return "".join(_line(cells) for cells in [plan.header, *rows]).encode()


def json_bytes(plan: Plan, rows: list) -> bytes:
    """The sweep as JSON: what was swept and every point's typed columns (non-finite numbers as null)."""
    points = [{k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in point.items()}
              for point in typed(plan, rows)]
    document = {"sweep": plan.sweep_id, "photoncc": __version__, **plan.files, "profile": plan.profile_name,
                "seeds": plan.payload.seeds, "noise_model": plan.payload.noise_model,
                "vary": {axis.key: list(axis.values) for axis in plan.axes}, "columns": plan.header,
                "points": points}
    return (json.dumps(document, indent=1, allow_nan=False) + "\n").encode()


def plot_metric(points: list[dict]) -> str:
    """What a plot shows: the device accuracy when the inputs have labels, else the top-1
    agreement with the model, else the first output's relative error."""
    for metric in ("device_accuracy", "top1_agreement"):
        if any(point.get(metric) is not None for point in points):
            return metric
    return next(column for column in points[0] if column.startswith(RELATIVE_ERROR))


def plot_png(plan: Plan, rows: list) -> bytes:
    """The sweep's plot (photoncc/plot.py, matplotlib): ``plot_metric`` against each varied key,
    the model's accuracy as the reference line when the metric is the device accuracy."""
    from ..plot import draw
    points = typed(plan, rows)
    metric = plot_metric(points)
    reference = next((p["model_accuracy"] for p in points if p["model_accuracy"] is not None), None)
    title = (f"{plan.payload.name} on {plan.profile_name}, {plan.payload.seeds} seed(s) "
             "(band: min to max over seeds)")
    return draw(points, [axis.key for axis in plan.axes], metric,
                reference if metric == "device_accuracy" else None, title)
