"""``python -m src.plot <run folder | sweep folder>``: ``curves.png`` from the logger's files (TensorBoard's or CSV's):
a run's accuracy and loss against optimizer step, or a sweep's val curves overlaid, labelled by their folder names."""

import argparse
from collections.abc import Sequence
from pathlib import Path

from src.cli import exit_with_error
from src.figures import draw_run, draw_sweep, read_curves


def plot(folder: Path) -> Path:
    """Draw ``folder/curves.png`` for a run folder or a folder of runs; return its path."""
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "no such folder"
        raise FileNotFoundError(f"{folder}: {what}; give a run folder or a sweep folder under lightning_logs/")
    events = {path.parent for path in folder.rglob("events.out.tfevents.*")}  # the run folders at or below, of either logger
    runs = sorted(events | {path.parents[2] for path in folder.rglob("csv/version_*/metrics.csv")})
    if not runs:
        if any("MLFlowLogger" in config.read_text() for config in folder.rglob("config.yaml")):
            raise FileNotFoundError(
                f"{folder}: its runs kept their metrics in MLflow, whose UI draws them (the mlflow ui line of a run's "
                "summary); curves.png is drawn for logger=tensorboard or logger=csv"
            )
        raise FileNotFoundError(f"{folder}: no TensorBoard or CSV logs here or below; give a run folder under lightning_logs/")
    if runs == [folder]:
        return draw_run(read_curves(folder), folder / "curves.png", f"{folder.resolve().parent.name}/{folder.resolve().name}")
    named = {str(run.relative_to(folder)): read_curves(run) for run in runs}
    return draw_sweep(named, folder / "curves.png", folder.resolve().name)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path, help="a run folder, or a folder of runs (a sweep)")
    parser.error = lambda message: exit_with_error(f"{message}; give one folder: python -m src.plot <run or sweep folder>")
    try:
        print(plot(parser.parse_args(argv).folder))
    except FileNotFoundError as error:
        exit_with_error(error)


if __name__ == "__main__":
    main()
