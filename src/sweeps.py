"""Hydra multirun sweeps: one readable run folder per job, and a summary of all jobs when the sweep ends.

``python -m src.train -m optimizer=sgd,adam data.batch_size=128,512`` writes
``lightning_logs/<name>-sweep-<time>-<pid>/<job number>_<swept overrides>/`` per job (TensorBoard events, checkpoints,
config, curves.png, result.json), then ``summary.md`` and ``summary.csv`` beside them, best run first.
``tensorboard --logdir lightning_logs/<name>-sweep-...`` compares the runs side by side.
"""

import csv
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
SWEPT_KEYS_VARIABLE = "MNIST_SWEPT_KEYS"  # set by the entry point, inherited by launcher workers


def swept_keys(arguments: Sequence[str]) -> list[str]:
    """The keys a multirun command line sweeps over: values with a comma, or Hydra's sweep functions."""
    keys = []
    for argument in arguments:
        key, assigned, value = argument.lstrip("+~").partition("=")
        if assigned and ("," in value or value.startswith(("choice(", "range(", "interval(", "glob("))):
            keys.append(key)
    return keys


def swept_overrides(task_overrides: Sequence[str], sweeper_params: Mapping[str, Any] | None = None) -> list[str]:
    """A job's overrides of the swept keys only: what differs between the runs of a sweep.

    Swept keys are those of the command line (see ``swept_keys``) and those of ``hydra.sweeper.params``, where
    the Optuna search (``hparams_search=optuna``) keeps its ranges.
    """
    keys = set(filter(None, os.environ.get(SWEPT_KEYS_VARIABLE, "").split(","))) | set(sweeper_params or ())
    return [o for o in task_overrides if o.lstrip("+~").partition("=")[0] in keys]


def _short(override: str) -> str:
    """``optimizer.lr=0.00016334587611069497`` -> ``optimizer.lr=0.000163``: sampled floats, readable in a folder name."""
    key, _, value = override.partition("=")
    if any(mark in value for mark in ".eE"):
        try:
            return f"{key}={float(value):.3g}"
        except ValueError:
            pass
    return override


def job_folder_name(task_overrides: Sequence[str], sweeper_params: Mapping[str, Any] | None = None) -> str:
    """A job's folder name: its swept values (``optimizer=sgd,data.batch_size=128``).

    Hydra's own ``override_dirname`` also repeats every fixed override of the command line; these names stay short.
    The job number in front keeps them unique.
    """
    return ",".join(map(_short, swept_overrides(task_overrides, sweeper_params))).replace("/", "_") or "run"


COLUMNS = ["overrides", "best_val_acc", "test_acc", "epochs", "wall_s", "folder", "error"]


def write_result(run_dir: Path, row: dict[str, Any]) -> None:
    """One job's row of the sweep summary, written into its own folder (jobs may run in other processes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESULT_FILE).write_text(json.dumps(row, indent=1))


def read_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """All jobs' rows, best val accuracy first, failed jobs last."""
    rows = [json.loads(path.read_text()) for path in sweep_dir.glob(f"*/{RESULT_FILE}")]

    def rank(row: dict[str, Any]) -> float:
        value = row.get("best_val_acc")
        return -value if isinstance(value, float) and not math.isnan(value) else math.inf

    return sorted(rows, key=rank)


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4f}" if value <= 1 else f"{value:.1f}"
        return str(value if value is not None else "").replace("|", "/")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class SweepSummary(Callback):
    """Hydra callback: when a multirun ends, gather every job's result.json into summary.md and summary.csv."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = read_results(sweep_dir)
        (sweep_dir / "summary.md").write_text(markdown(rows))
        with (sweep_dir / "summary.csv").open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        print(f"\nsweep of {len(rows)} runs, best first ({sweep_dir}/summary.md):\n{markdown(rows)}")
        if rows and "error" not in rows[0]:
            print(f"best run: {rows[0]['overrides'] or rows[0]['folder']}  (best val accuracy {rows[0]['best_val_acc']:.4f})")
        if (sweep_dir / "optimization_results.yaml").is_file():
            print(f"the Optuna study's best parameters: {sweep_dir}/optimization_results.yaml")
        print(f"compare them: tensorboard --logdir {sweep_dir}")
