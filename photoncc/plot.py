"""Plots of a sweep (``photoncc sweep --plot``), drawn with matplotlib (the optional extra
``photoncc[plot]``) on its Agg canvas: no pyplot, no global state, no display needed.

One panel per varied key: the metric (device accuracy, or top-1 agreement without labels) against
that key's values, one line per combination of the other keys' values, the spread over the seeds
(min to max) as a band around it and the model's own accuracy (onnxruntime) as a dashed line.
A failed point leaves a gap. A key whose values are all numbers gets a numeric axis, logarithmic
when they are positive and span a factor of 10 or more; other keys (``null`` bits, names) are
categories in the order given.
"""
from __future__ import annotations

import io
import math

from .errors import UserError

PLOT_EXTRA = 'pip install "photoncc[plot]"'
PANEL_INCHES = (5.0, 3.8)  # width, height of one panel
DPI = 100
LABELS = {"device_accuracy": "device accuracy", "top1_agreement": "top-1 agreement with the model"}


def require():
    """matplotlib's Figure and Agg canvas, or a UserError naming the extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(f"--plot needs matplotlib: {PLOT_EXTRA}") from None
    return Figure, FigureCanvasAgg


def size(keys: int) -> tuple[int, int]:
    """The PNG's (width, height) in pixels for ``keys`` panels."""
    return round(PANEL_INCHES[0] * keys * DPI), round(PANEL_INCHES[1] * DPI)


def draw(points: list[dict], keys: list[str], metric: str, reference: float | None, title: str) -> bytes:
    """The PNG of ``points`` (dicts of typed values by column, in grid order, as ``sweep.typed``
    gives them): ``metric`` against each of ``keys``, its band from ``metric``_min/_max where the
    points have them, ``reference`` (the model's accuracy; None: no line)."""
    Figure, FigureCanvasAgg = require()
    width, height = PANEL_INCHES
    figure = Figure(figsize=(width * len(keys), height), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    for axes, key in zip(figure.subplots(1, len(keys), squeeze=False)[0], keys):
        _panel(axes, points, keys, key, metric, reference)
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    return _png(canvas)


def _png(canvas) -> bytes:
    """The drawn figure as a PNG of at most 256 colours (Pillow, which matplotlib requires): the
    plot looks the same and takes a third of the bytes of an RGBA PNG (the overlapping
    translucent bands blend into many colours), small enough to commit beside the results."""
    from PIL import Image
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.convert("RGB").quantize(256).save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def _panel(axes, points: list[dict], keys: list[str], key: str, metric: str, reference: float | None) -> None:
    values = list(dict.fromkeys(_hashable(point[key]) for point in points))  # in the order given
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    where = {v: (float(v) if numeric else i) for i, v in enumerate(values)}  # float: an int may exceed int64
    others = [k for k in keys if k != key]
    lines: dict = {}  # the other keys' values -> this line's points, in grid order
    for point in points:
        lines.setdefault(tuple(_hashable(point[k]) for k in others), []).append(point)
    for label, members in lines.items():
        members = sorted(members, key=lambda p: values.index(_hashable(p[key])))
        x = [where[_hashable(p[key])] for p in members]
        line, = axes.plot(x, [_number(p.get(metric)) for p in members], marker="o", markersize=4,
                          label=", ".join(f"{k}={_text(v)}" for k, v in zip(others, label)) or None)
        if f"{metric}_min" in members[0]:
            axes.fill_between(x, [_number(p[f"{metric}_min"]) for p in members],
                              [_number(p[f"{metric}_max"]) for p in members], color=line.get_color(), alpha=0.2,
                              linewidth=0)
    if reference is not None:
        axes.axhline(reference, color="black", linestyle="--", linewidth=1, label=f"model {reference:.2%}")
    if numeric and min(values) > 0 and max(values) >= 10 * min(values):
        axes.set_xscale("log")
    axes.set_xticks(list(where.values()), [_text(v) for v in values])
    axes.minorticks_off()
    axes.set_xlabel(key)
    axes.set_ylabel(LABELS.get(metric, metric))
    if metric in LABELS:
        from matplotlib.ticker import PercentFormatter
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _text(value) -> str:
    return "null" if value is None else str(list(value) if isinstance(value, tuple) else value)
