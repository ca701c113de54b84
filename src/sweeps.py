"""Hydra multirun sweeps: one readable run folder per job, and a summary of all jobs when the sweep ends.

``python -m src.train -m optimizer=sgd,adam data.batch_size=128,512`` writes
``lightning_logs/<name>-sweep-<time>/<job number>_<swept overrides>/`` per job (TensorBoard events, checkpoints,
config, curves.png, result.json), then ``summary.md`` and ``summary.csv`` beside them, best run first.
``tensorboard --logdir lightning_logs/<name>-sweep-...`` compares the runs side by side.
"""

import csv
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.types import Override
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.cli import shown_path

RESULT_FILE = "result.json"
SWEEP_JOBS_VARIABLE = "MNIST_LIGHTNING_SWEEP_JOBS"  # how many jobs the command line makes, for each job's header


def sweep_size(overrides: Sequence[Override]) -> int | None:
    """How many jobs a multirun of these overrides runs: the product of its value lists (None: a sweeper decides)."""
    size = 1
    for override in overrides:
        if override.key_or_group == "hparams_search" and override.value() not in (None, "null"):
            return None  # the search's own trials
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                return None
            size *= len(list(override.sweep_string_iterator()))
    return size


def swept_overrides(task_overrides: Sequence[str], fixed_keys: Sequence[str]) -> list[str]:
    """A job's overrides less those fixed for every job of the sweep: what tells the runs of a sweep apart.

    ``fixed_keys`` is ``hydra.job.config.override_dirname.exclude_keys``, which ``src.train`` sets to the keys the
    command line fixes; Hydra names each job's folder (``hydra.job.override_dirname``) from the same split.
    """
    return sorted(o for o in task_overrides if o.lstrip("+~").partition("=")[0] not in fixed_keys)


def fixed_keys(overrides: Sequence[Override]) -> list[str]:
    """The keys a multirun command line sets to one value (no sweep): left out of the job folders' names."""
    return [override.key_or_group for override in overrides if not override.is_sweep_override()]


COLUMNS = ["overrides", "best_val_acc", "test_acc", "epochs", "wall_s", "folder", "error"]


def write_result(run_dir: Path, row: dict[str, Any]) -> None:
    """One job's row of the sweep summary, written into its own folder (jobs may run in other processes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESULT_FILE).write_text(json.dumps(row, indent=1))


def read_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """All jobs' rows, best val accuracy first, failed jobs last."""
    rows = [json.loads(path.read_text()) for path in sweep_dir.glob(f"*/{RESULT_FILE}")]

    def score(value: Any) -> float:
        return -value if isinstance(value, float) and not math.isnan(value) else math.inf

    # Failed last; then by best val accuracy, and by test accuracy where there is none (fast_dev_run, no checkpoint).
    return sorted(rows, key=lambda row: (bool(row.get("error")), score(row.get("best_val_acc")), score(row.get("test_acc"))))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}" if value <= 1 else f"{value:.1f}"
    return str(value if value is not None else "").replace("|", "/")


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The summary's columns: ``error`` only when a run failed."""
    return [column for column in COLUMNS if column != "error" or any(row.get("error") for row in rows)]


def markdown(rows: list[dict[str, Any]]) -> str:
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def aligned(rows: list[dict[str, Any]]) -> str:
    """The summary as aligned text for the terminal (the folder as its job name: it lies in the sweep folder)."""
    columns = _columns(rows)
    cells = [columns] + [[_cell(Path(row[c]).name if c == "folder" else row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells)


class SweepSummary(Callback):
    """Hydra callback: when a multirun ends, gather every job's result.json into summary.md and summary.csv."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = read_results(sweep_dir)
        (sweep_dir / "summary.md").write_text(markdown(rows))
        with (sweep_dir / "summary.csv").open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=_columns(rows), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        print(f"\nsweep of {len(rows)} runs, best first (also in {shown_path(sweep_dir)}/summary.md):\n{aligned(rows)}\n")
        best = rows[0].get("best_val_acc") if rows else None
        if isinstance(best, float) and not math.isnan(best):
            print(f"best run: {rows[0]['overrides'] or rows[0]['folder']}  (best val accuracy {rows[0]['best_val_acc']:.4f})")
        if (sweep_dir / "optimization_results.yaml").is_file():
            print(f"the Optuna study's best parameters: {shown_path(sweep_dir)}/optimization_results.yaml")
        if any(sweep_dir.rglob("events.out.tfevents.*")):
            print(f"compare them: tensorboard --logdir {shown_path(sweep_dir)}")
        elif any(sweep_dir.rglob("metrics.csv")):  # logger=csv: their val curves overlaid in one picture
            print(f"compare them: python -m src.plot {shown_path(sweep_dir)}")
        if failed := [row for row in rows if row.get("error")]:  # the others ran; the command still failed
            print(
                f"error: {len(failed)} of {len(rows)} runs failed; their errors are in the table's error column", file=sys.stderr
            )
            sys.exit(1)
