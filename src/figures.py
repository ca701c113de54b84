"""Accuracy and loss curves drawn with matplotlib from what a run's logger wrote (headless).

The logger's files are the one source: a resumed run is drawn whole, and what TensorBoard (or the CSV file, or MLflow)
shows is what the picture shows.
"""

import csv
import logging
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure  # figures without pyplot: no backend, no display, nothing global
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

Curves = dict[str, list[tuple[int, float]]]


def read_curves(run_dir: Path) -> Curves:
    """Every scalar of a run as ``{tag: [(step, value), ...]}`` (plain floats), from its TensorBoard event files or,
    without those, from the CSV logger's files."""
    if any(run_dir.glob("events.out.tfevents.*")):
        logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its reader reports every event file it opens
        events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        events.Reload()
        return {tag: [(e.step, float(e.value)) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    return read_csv_curves(sorted(run_dir.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])))


def read_csv_curves(files: list[Path]) -> Curves:
    """The CSV logger's files of one run, one per start, as one history: what an earlier start logged at or after the
    step where the next one began was undone by the resume (as TensorBoard's ``purge_step`` drops it)."""
    curves: Curves = {}
    for path in files:
        with path.open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if row.get("step")]
        if not rows:
            continue
        start = min(int(row["step"]) for row in rows)
        curves = {tag: [(s, v) for s, v in points if s < start] for tag, points in curves.items()}
        for row in rows:
            for tag, value in row.items():
                if tag not in ("step", "epoch") and value not in ("", None):
                    curves.setdefault(tag, []).append((int(row["step"]), float(value)))
    return curves


def run_folders(folder: Path) -> list[Path]:
    """The run folders at or below ``folder`` (those that hold TensorBoard event files or CSV logger files)."""
    events = {path.parent for path in folder.rglob("events.out.tfevents.*")}
    tables = {path.parent.parent.parent for path in folder.rglob("csv/version_*/metrics.csv")}
    return sorted(events | tables)


def _series(axis: Axes, curves: Curves, tag: str, **style: object) -> None:
    if curves.get(tag):
        steps, values = zip(*curves[tag], strict=True)
        axis.plot(steps, values, **style)


def _save(figure: Figure, accuracy: Axes, loss: Axes, names: tuple[str, str], path: Path, title: str) -> Path:
    """Label both panels (loss on a log scale), add legends, title and write the PNG."""
    for axis, name in zip((accuracy, loss), names, strict=True):
        axis.set(xlabel="optimizer step", ylabel=name)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # a run stopped before its first logged step has no lines
            axis.legend(fontsize="small")
    loss.set_yscale("log")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def draw_run(curves: Curves, path: Path, title: str) -> Path:
    """Two panels, accuracy and loss, train (by step) and val (by epoch), the test accuracy as a marked point."""
    figure = Figure(figsize=(11, 4))
    accuracy, loss = figure.subplots(1, 2)
    _series(accuracy, curves, "train/acc", label="train", alpha=0.6)
    _series(accuracy, curves, "val/acc", label="val", marker="o")
    _series(accuracy, curves, "tutorial/test_batch_acc", label="test batch (tutorial)", marker="x")
    if curves.get("test/acc"):
        step, value = curves["test/acc"][-1]
        accuracy.plot([step], [value], "r*", markersize=14, label=f"test {value:.4f}")
    _series(loss, curves, "train/loss", label="train", alpha=0.6)
    _series(loss, curves, "val/loss", label="val", marker="o")
    return _save(figure, accuracy, loss, ("accuracy", "loss"), path, title)


def draw_sweep(runs: dict[str, Curves], path: Path, title: str) -> Path:
    """Val accuracy and val loss of every run, one line each, labelled by run name."""
    figure = Figure(figsize=(12, 4.5))
    accuracy, loss = figure.subplots(1, 2)
    for name, curves in runs.items():
        _series(accuracy, curves, "val/acc", label=name, marker=".")
        _series(loss, curves, "val/loss", label=name, marker=".")
    return _save(figure, accuracy, loss, ("val accuracy", "val loss"), path, title)
