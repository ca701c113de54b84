"""``python -m src.plot <run folder | sweep folder>``: accuracy and loss curves as a PNG, read from TensorBoard's files.

A run folder (one holding ``events.out.tfevents.*``) gets ``curves.png``: accuracy and loss against optimizer step,
train and val, with the test accuracy marked. A folder of runs (a sweep) gets ``curves.png`` with the runs' val curves
overlaid, labelled by their folder names (the overrides that differ). The event files are the one source: a resumed
run is drawn whole, and what TensorBoard shows is what the picture shows.
"""

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display needed
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

Curves = dict[str, list[tuple[int, float]]]
logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its reader reports every event file it opens


def read_curves(run_dir: Path) -> Curves:
    """Every scalar tag of a run as ``[(step, value), ...]``; values are plain floats read from the event files."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, float(e.value)) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def run_folders(folder: Path) -> list[Path]:
    """The run folders at or below ``folder`` (those that hold TensorBoard event files)."""
    return sorted({events.parent for events in folder.rglob("events.out.tfevents.*")})


def _series(axis: plt.Axes, curves: Curves, tag: str, **style: object) -> None:
    if curves.get(tag):
        steps, values = zip(*curves[tag])
        axis.plot(steps, values, **style)


def _save(figure: plt.Figure, accuracy: plt.Axes, loss: plt.Axes, names: tuple[str, str], path: Path, title: str) -> Path:
    """Label both panels (loss on a log scale), add legends, title, write the PNG and free the figure."""
    for axis, name in zip((accuracy, loss), names):
        axis.set(xlabel="optimizer step", ylabel=name)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    loss.set_yscale("log")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def draw_run(curves: Curves, path: Path, title: str) -> Path:
    """Two panels, accuracy and loss, train (by step) and val (by epoch), the test accuracy as a marked point."""
    figure, (accuracy, loss) = plt.subplots(1, 2, figsize=(11, 4))
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
    figure, (accuracy, loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, curves in runs.items():
        _series(accuracy, curves, "val/acc", label=name, marker=".")
        _series(loss, curves, "val/loss", label=name, marker=".")
    return _save(figure, accuracy, loss, ("val accuracy", "val loss"), path, title)


def plot(folder: Path) -> Path:
    """Draw ``folder/curves.png`` for a run folder or a folder of runs; return its path."""
    runs = run_folders(folder)
    if not runs:
        raise FileNotFoundError(f"{folder}: no TensorBoard event files here or below; give a run folder under lightning_logs/")
    if runs == [folder]:
        return draw_run(read_curves(folder), folder / "curves.png", str(folder))
    named = {str(run.relative_to(folder)): read_curves(run) for run in runs}
    return draw_sweep(named, folder / "curves.png", str(folder))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a run folder, or a folder of runs (a sweep)")
    args = parser.parse_args(argv)
    try:
        print(plot(args.folder))
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
