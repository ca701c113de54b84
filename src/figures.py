"""The pictures, drawn with matplotlib without pyplot (headless): curves from what a run's logger wrote, so that a
resumed run is drawn whole as TensorBoard shows it; the test's confusion matrix and misclassified images."""

import csv
import logging
import math
from functools import cache
from pathlib import Path

import numpy as np
from matplotlib import colormaps, font_manager, rcParams
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.ticker import MaxNLocator, PercentFormatter
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.data.datasets import DataSet

Curves = dict[str, list[tuple[int, float]]]


def read_curves(run_dir: Path) -> Curves:
    """Every scalar of a run as ``{tag: [(step, value), ...]}``, from its TensorBoard event files, else its CSV files."""
    if any(run_dir.glob("events.out.tfevents.*")):
        # Quiet: it warns of the steps a resume logged again ("out of order event.step"), which purge_step drops by design.
        logging.getLogger("tensorboard").setLevel(logging.ERROR)
        events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        events.Reload()
        return {tag: [(e.step, float(e.value)) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    return read_csv_curves(sorted(run_dir.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])))


def read_csv_curves(files: list[Path]) -> Curves:
    """The CSV logger's files of one run, one per start, as one history: what a start logged at or after the step where
    the next began was undone by the resume (as TensorBoard's ``purge_step`` drops it)."""
    curves: Curves = {}
    for path in files:
        with path.open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if row.get("step")]
        start = min((int(row["step"]) for row in rows), default=float("inf"))  # a start that logged nothing undoes nothing
        curves = {tag: [(s, v) for s, v in points if s < start] for tag, points in curves.items()}
        for row in rows:
            for tag, value in row.items():
                if tag not in ("step", "epoch") and value not in ("", None):
                    curves.setdefault(tag, []).append((int(row["step"]), float(value)))
    return curves


@cache
def name_fonts() -> tuple[str, ...]:
    """The fonts for what users name (runs, sweep jobs): matplotlib's default, then as its fallback the first CJK font
    installed (matplotlib's own has no CJK glyphs)."""
    cjk = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback")
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return (rcParams["font.sans-serif"][0], *[family for family in cjk if family in installed][:1])


@cache
def _drawn_code_points() -> frozenset[int]:
    return frozenset().union(*(FT2Font(font_manager.findfont(family)).get_charmap() for family in name_fonts()))


def drawable(text: str) -> str:
    """``text`` with each character no font here draws written as its code point (``U+65E5``), not an empty box."""
    return "".join(c if ord(c) in _drawn_code_points() or c.isspace() else f"U+{ord(c):04X}" for c in text)


def _series(axis: Axes, curves: Curves, tag: str, **style: object) -> None:
    if curves.get(tag):
        steps, values = zip(*curves[tag], strict=True)
        axis.plot(steps, values, **style)


def _legend_columns(labels: list[str]) -> int:
    return 2 if len(labels) > 4 and max(map(len, labels)) <= 60 else 1


def _save(accuracy: Axes, loss: Axes, names: tuple[str, str], path: Path, title: str, shared_legend: bool = False) -> Path:
    """The panels labelled and saved; ``shared_legend``: one legend under both (a sweep's long run names)."""
    figure = accuracy.figure
    font = {"family": name_fonts(), "size": "small"}
    for axis, name in zip((accuracy, loss), names, strict=True):
        axis.set(xlabel="optimizer step", ylabel=name)
        axis.set_xlim(left=0)  # whole steps even where every point is at one step
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0] and not shared_legend:  # a run stopped before its first step has no lines
            axis.legend(prop=font)
    if shared_legend and (legend := accuracy.get_legend_handles_labels())[0]:
        figure.legend(*legend, loc="outside lower center", ncol=_legend_columns(legend[1]), prop=font)
    accuracy.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    losses = [value for line in loss.get_lines() for value in line.get_ydata() if value > 0]
    if losses and max(losses) / min(losses) >= 20:  # a long run's loss spans decades; one that moves little stays linear
        loss.set_yscale("log")
    figure.suptitle(drawable(title), fontfamily=name_fonts())
    if not shared_legend:
        figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def draw_run(curves: Curves, path: Path, title: str) -> Path:
    """Two panels, accuracy and loss: train (the mean over each logging window), val (each validation), the test result."""
    accuracy, loss = Figure(figsize=(11, 4)).subplots(1, 2)
    # Each series keeps its colour in every picture: train blue, val orange, the tutorial's test batches green, test red.
    for axis, name in ((accuracy, "acc"), (loss, "loss")):
        _series(axis, curves, f"{name}/train", label="train (mean of each logging window)", color="C0", alpha=0.8, zorder=3)
        _series(axis, curves, f"{name}/val", label="val", color="C1", marker="o", markersize=4)
    _series(accuracy, curves, "acc/test_batch_tutorial", label="test batch (as the tutorial measures)", color="C2", marker="x")
    for axis, tag, form in ((accuracy, "result/test_acc", ".2%"), (loss, "result/test_loss", ".4f")):
        if curves.get(tag):
            step, value = curves[tag][-1]
            axis.plot([step], [value], "*", color="C3", markersize=14, label=f"test {value:{form}}")
    return _save(accuracy, loss, ("accuracy", "loss"), path, title)


def draw_sweep(runs: dict[str, Curves], path: Path, title: str) -> Path:
    """Val accuracy and val loss of every run, one line each, labelled by run name."""
    rows = math.ceil(len(runs) / _legend_columns([drawable(name) for name in runs]))  # the legend's, under the panels
    accuracy, loss = Figure(figsize=(12, 4.5 + 0.22 * rows), layout="constrained").subplots(1, 2)
    for name, curves in runs.items():
        _series(accuracy, curves, "acc/val", label=drawable(name), marker=".")
        _series(loss, curves, "loss/val", label=drawable(name), marker=".")
    return _save(accuracy, loss, ("val accuracy", "val loss"), path, title, shared_legend=True)


def draw_confusion(matrix: np.ndarray, data_set: DataSet) -> Figure:
    """True (rows) against predicted (columns) counts. Only the errors are coloured, on their own scale, so that a cell
    of 5 stands out from one of 0 beside diagonal cells of ~1,000."""
    errors = np.ma.masked_array(matrix, mask=np.eye(len(matrix), dtype=bool))
    most = max(1, int(errors.max() or 1))
    figure = Figure(figsize=(6.4, 5.6))
    axis = figure.subplots()
    image = axis.imshow(errors, cmap=colormaps["Reds"].with_extremes(bad="0.85"), vmin=0, vmax=most)
    for (row, column), count in np.ndenumerate(matrix):
        strong = row != column and count > 0.6 * most  # white on the darkest reds
        axis.text(column, row, str(count), ha="center", va="center", fontsize=9, color="white" if strong else "black")
    noun = data_set.noun
    axis.set(xticks=range(len(matrix)), yticks=range(len(matrix)), xlabel=f"predicted {noun}", ylabel=f"true {noun}")
    if data_set.named:  # Fashion-MNIST's items; digits are their own names
        axis.set_xticklabels(data_set.classes, rotation=45, ha="right", fontsize=8)
        axis.set_yticklabels(data_set.classes, fontsize=8)
    figure.colorbar(image, ax=axis, label="wrong predictions")
    total, wrong = int(matrix.sum()), int(errors.sum())
    axis.set_title(f"test set: {wrong} of {total:,} wrong ({wrong / max(total, 1):.2%}); diagonal = right", fontsize=11)
    figure.tight_layout()
    return figure


def draw_misclassified(digits: list[tuple[np.ndarray, int, int]], wrong: int, data_set: DataSet, columns: int = 6) -> Figure:
    """The misclassified (image, predicted, true) tiled, each labelled ``true→predicted`` large enough to read at
    TensorBoard's card size; named classes get a line under the tiles that says which number is which."""
    cell = 40  # a 28-pixel digit under a 12-pixel band for its label
    rows = max(1, -(-len(digits) // columns))
    mosaic = np.zeros((rows * cell, columns * cell))
    figure = Figure(figsize=(columns * 1.05, rows * 1.15 + 0.5))
    axis = figure.subplots()
    for index, (image, predicted, true) in enumerate(digits):
        row, column = divmod(index, columns)
        low, high = image.min(), image.max()
        mosaic[row * cell + 12 : row * cell + 40, column * cell + 6 : column * cell + 34] = (image - low) / (high - low + 1e-8)
        axis.text(column * cell + 20, row * cell + 5, f"{true}→{predicted}", color="red", fontsize=13, ha="center", va="center")
    axis.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
    axis.axis("off")
    if not digits:
        axis.text(columns * cell / 2, cell / 2, "none: every test image is right", color="white", ha="center", va="center")
    shown = f"{len(digits)} of {wrong}"
    figure.suptitle(f"misclassified test {'images' if data_set.named else 'digits'}, true→predicted ({shown})", fontsize=12)
    if data_set.named:
        legend = "   ".join(f"{index} {name}" for index, name in enumerate(data_set.classes))
        figure.text(0.5, 0.01, legend, ha="center", va="bottom", fontsize=7, wrap=True)
    figure.tight_layout(rect=(0, 0.08 if data_set.named else 0, 1, 1))  # named: room for that line
    return figure
