"""Hydra multirun sweeps (:class:`SweepCallbacks`, a Hydra callback of conf/train.yaml): every job checked before the
first runs, a run folder per job, ``<log_dir>/<name>-sweep-<time>/<job number>_<swept overrides>/``, and at the end
``summary.md`` and ``summary.csv`` beside them, best run first."""

import csv
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from src import config as run_config
from src.cli import ConfigError, command, exit_with_error, hydra_refusal, refusals_exit, shown_path, task
from src.runs import RESULT_FILE


def sweep_jobs(overrides: Sequence[Override]) -> list[list[str]]:
    """Each job's overrides, by Hydra's basic sweeper's own expansion: every combination of the swept values (lists,
    ``range``, ``choice``, ``glob`` over a group's configs, quoted values), in its order."""
    return BasicSweeper.split_arguments(list(overrides), max_batch_size=None)[0]


def check_job(config_name: str, overrides: list[str]) -> run_config.RunSpec:
    """One job of a sweep composed and checked, as it will run: a bad value refused in one line; its spec. Nothing is
    built: the check needs no device the job will run on (a GPU sweep submitted from a login node without one)."""
    try:
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    except Exception as error:  # Hydra's refusal of a swept value (optimizer=sgd,adamm)
        raise ConfigError(hydra_refusal(error)) from None
    with open_dict(cfg):
        choices = OmegaConf.to_container(cfg.pop("hydra").runtime.choices)
    return run_config.load(cfg, run_config.Context(tuple(overrides), choices, multirun=True))


def check_sweep(config: DictConfig, overrides: list[Override], config_name: str) -> int | None:
    """Every job of a sweep of value lists composed and checked once, before the first runs (a search's trials, sampled
    as it goes, are checked as each starts); how many jobs there are."""
    if str(config.hydra.launcher.get("_target_", "")).endswith("SlurmLauncher") and shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher=slurm: SLURM is not here (no sbatch); run it on the cluster's login node")
    if (trials := config.hydra.sweeper.get("n_trials")) is not None and trials < 1:  # Optuna would end on an empty study
        raise ConfigError(f"hydra.sweeper.n_trials={trials}: a search needs at least 1 trial; give 20 (the default) or more")
    if not str(config.hydra.sweeper._target_).endswith("BasicSweeper"):
        return None
    if sampled := [o for o in overrides if o.is_sweep_override() and not o.is_discrete_sweep()]:
        raise ConfigError(
            f"{sampled[0].input_line}: a range is sampled by a search; add hparams_search=optuna, or give the values "
            "(key=a,b,c or key=range(start,stop,step))"
        )
    jobs = sweep_jobs(overrides)
    if (
        len(names := sorted({check_job(config_name, job).config["name"] for job in jobs})) > 1
    ):  # the sweep folder is <name>-sweep-...
        swept = [o for o in overrides if o.is_sweep_override()]
        at_fault = next((o for o in swept if o.key_or_group in ("data", "data.dataset", "experiment")), swept[0])
        raise ConfigError(
            f"{at_fault.input_line}: the jobs would be named {' and '.join(names)} (name follows data.dataset and the "
            "experiment), each in a sweep folder of its own; give the sweep one name: name=<a name>"
        )
    return len(jobs)


COLUMNS = ["overrides", "best_val_acc", "test_acc", "epochs", "wall_s", "folder", "error"]


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


def _columns(rows: list[dict[str, Any]]) -> list[str]:  # the summary's: error only when a run failed
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


class SweepCallbacks(Callback):
    """Each job checked before the first starts, a header line as each starts, the summary when the last has ended."""

    def __init__(self) -> None:
        self.jobs: int | None = None  # known once checked (a search's trials are sampled as it goes)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())  # glob() lists a group's configs
        task.sweep_dir = Path(config.hydra.sweep.dir)
        with refusals_exit():  # Hydra would turn what a callback raises into a warning, and go on
            overrides = parser.parse_overrides(list(config.hydra.overrides.task))
            self.jobs = check_sweep(config, overrides, kwargs["config_name"])
        # Job folders named by what is swept only: the jobs' Hydra config leaves the keys fixed for every job out of them.
        swept = {override.key_or_group for override in overrides if override.is_sweep_override()}
        fixed = ",".join(override.key_or_group for override in overrides if override.key_or_group not in swept)
        with open_dict(config):
            config.hydra.overrides.hydra.append(f"hydra.job.config.override_dirname.exclude_keys=[{fixed}]")
        if config.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher"):
            from src.slurm import follow_jobs_without_accounting  # submitit: the slurm extra

            follow_jobs_without_accounting()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            swept = " ".join(run_config.Context.of(config.hydra).swept) or "(nothing swept)"
            print(f"\njob {config.hydra.job.num + 1}{f'/{self.jobs}' if self.jobs else ''}: {swept}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = read_results(sweep_dir)
        (sweep_dir / "summary.md").write_text(markdown(rows))
        with (sweep_dir / "summary.csv").open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=_columns(rows), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        runs = f"{len(rows)} run{'s' * (len(rows) != 1)}"
        print(f"\nsweep of {runs}, best first (also in {shown_path(sweep_dir)}/summary.md):\n{aligned(rows)}\n")
        best = rows[0].get("best_val_acc") if rows else None
        if isinstance(best, float) and not math.isnan(best):
            print(f"best run: {rows[0]['overrides'] or rows[0]['folder']}  (best val accuracy {best:.4f})")
        if (sweep_dir / "optimization_results.yaml").is_file():
            print(f"the Optuna study's best parameters: {shown_path(sweep_dir)}/optimization_results.yaml")
        if any(sweep_dir.rglob("events.out.tfevents.*")):
            print(f"compare them: {command('tensorboard', '--logdir', sweep_dir)}")
        elif any(sweep_dir.rglob("metrics.csv")):  # logger=csv: their val curves overlaid in one picture
            print(f"compare them: {command('python', '-m', 'src.plot', sweep_dir)}")
        if failed := [row for row in rows if row.get("error")]:  # the others ran; the command still failed
            exit_with_error(f"{len(failed)} of {len(rows)} runs failed; their errors are in the table's error column", status=1)
