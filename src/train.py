"""``python -m src.train [key=value ...]``: train the tutorial's MLP on MNIST, then test the best checkpoint.

compose (conf/train.yaml) -> check -> build DataModule, Classifier, logger, Trainer -> fit -> test the best checkpoint
-> summary. Every check and every build happens before the first byte is written into a run folder, and what
Lightning's own set-up writes before training starts is removed again if it refuses the run.
"""

import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig, OmegaConf

from src import checkpoints
from src.builders import build_callbacks, build_classifier, build_datamodule, build_trainer, errors_named, numbers, plain
from src.callbacks.finite_loss import NonFiniteLoss
from src.callbacks.save_config import SaveConfig
from src.checkpoint_io import CheckpointWriteError
from src.checks import check_config, check_resume_settings
from src.cli import USER_ERRORS, ConfigError, checked_command_line, exit_on_error, first_line, hydra_order, shown_path
from src.data.sources import DataUnavailable
from src.loggers import (
    KeepRunIds,
    LogSettings,
    build_loggers,
    changed_params,
    choose_run_dir,
    compared_settings,
    describe,
    log_final,
    logger_configs,
)
from src.models.classifier import Classifier, ScheduleLengthError
from src.sweeps import SWEEP_JOBS_VARIABLE, fixed_keys, sweep_size, swept_overrides, write_result
from src.validate import named_setting


class Interrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM after saving ``checkpoint`` (None: checkpointing was off)."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


def best_checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The ModelCheckpoint that keeps the best checkpoint by a monitored metric (``callbacks.checkpoint``)."""
    return next((callback for callback in trainer.checkpoint_callbacks if callback.monitor), None)


@dataclass
class Run:
    """Everything one training run needs, checked and built; nothing written yet."""

    cfg: DictConfig
    checkpoint: Path | None  # resume from here, or None for a new run
    run_dir: Path
    datamodule: L.LightningDataModule
    model: Classifier
    trainer: L.Trainer
    settings: dict[str, Any]  # what tells this run apart from others (src/loggers.py), for the loggers


def build_run(cfg: DictConfig) -> Run:
    """Check the config, make sure the data is there, build the DataModule, classifier, loggers and Trainer; raise
    before anything is written into a run folder."""
    check_config(cfg)
    runs = Path(cfg.log_dir) / cfg.name
    checkpoint = checkpoints.resolve(cfg.ckpt_path, runs)
    state = checkpoints.read(checkpoint) if checkpoint else None
    start = checkpoints.resolve(cfg.init_from, Path(cfg.log_dir), key="init_from")  # last: the newest of any name
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    model = build_classifier(cfg)
    if state is not None:
        checkpoints.check_same_data_set(state, datamodule.hparams.dataset, checkpoint)
        checkpoints.check_same_network(state, model, checkpoint)
    if start is not None:  # a new run that starts from these weights; optimizer, schedule and step start afresh
        weights = checkpoints.read(start, key="init_from")
        checkpoints.check_same_network(weights, model, start, key="init_from")
        model.net.load_state_dict(checkpoints.network_weights(weights["state_dict"]))
    run_dir = choose_run_dir(cfg, checkpoint)
    if checkpoint is not None:
        check_resume_settings(cfg, run_dir)
    settings = compared_settings(cfg)
    callbacks = build_callbacks(cfg, run_dir, has_logger=bool(logger_configs(cfg)))
    callbacks += [
        SaveConfig(plain(cfg), "config.yaml" if checkpoint is None else "config.resumed.yaml"),
        KeepRunIds(),
        LogSettings(settings, resumed=checkpoint is not None),
    ]
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:  # under DDP, rank 0 fetched the data before it started the others
        try:
            datamodule.prepare_data()
        except DataUnavailable as error:
            raise ConfigError(f"data.data_dir={cfg.data.data_dir}: {error}") from error
    with errors_named("logger", plain(cfg.get("logger") or {})):
        loggers = build_loggers(cfg, run_dir, state)  # MLflow's client opens (creates) its store here: data is there
    trainer = build_trainer(cfg, loggers, callbacks, run_dir)
    return Run(cfg, checkpoint, run_dir, datamodule, model, trainer, settings)


def remove_what_was_added(folder: Path, before: set[Path], new_folders: list[Path]) -> None:
    """Undo what a refused run wrote: the files in ``folder`` that were not in ``before``, then the folders that did not
    exist before (deepest first) if they are empty. An earlier run's own files are never touched."""
    for path in sorted(folder.rglob("*"), reverse=True) if folder.is_dir() else []:
        if path not in before:
            path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    for new in new_folders:
        if new.is_dir() and not any(new.iterdir()):
            new.rmdir()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one run; return its summary (metrics as plain floats, paths as strings)."""
    run = build_run(cfg)
    model, datamodule, trainer = run.model, run.datamodule, run.trainer
    if cfg.print_config and trainer.is_global_zero:
        print(OmegaConf.to_yaml(cfg, resolve=True), end="", flush=True)
    # What exists before fit: anything else that Lightning's set-up writes is removed if it refuses the run (rank 0 writes).
    run_dir = run.run_dir if trainer.is_global_zero else None
    before = set(run_dir.rglob("*")) if run_dir else set()
    new_folders = (
        [folder for folder in (run_dir, run_dir.parent, run_dir.parent.parent) if not folder.exists()] if run_dir else []
    )
    save_config = next(callback for callback in trainer.callbacks if isinstance(callback, SaveConfig))
    try:
        with warnings.catch_warnings():  # a resumed run writes into its own checkpoints folder by design
            warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")
            fit_started = time.perf_counter()
            trainer.fit(model, datamodule=datamodule, ckpt_path=run.checkpoint)
            fit_seconds = time.perf_counter() - fit_started
    except BaseException as error:
        if not save_config.training_started and run_dir:  # refused during Lightning's set-up
            remove_what_was_added(run_dir, before, new_folders)
        if isinstance(error, SIGTERMException):  # the last_checkpoint callback saved this step on the way out
            callback = trainer.checkpoint_callback
            last = Path(callback.dirpath) / "last.ckpt" if callback is not None and callback.dirpath else None
            raise Interrupted(last if last is not None and last.is_file() else None) from error
        if isinstance(error, ScheduleLengthError):
            raise ConfigError(f"trainer.max_epochs={cfg.trainer.max_epochs}: {error}") from error
        if changed := changed_params(error):
            raise ConfigError(
                f"ckpt_path={cfg.ckpt_path}: the MLflow run keeps the settings it was started with ({changed}); resume "
                "with the run's own settings (its config.yaml), or start a new run from its weights with init_from="
            ) from error
        if isinstance(error, MisconfigurationException):  # a Trainer setting Lightning checks only once it sees the data
            raise ConfigError(named_setting("trainer", plain(cfg.trainer), first_line(str(error)))) from error
        raise
    best = best_checkpoint_callback(trainer)
    best_path = best.best_model_path if best is not None else ""
    notes = [] if best_path else [f"tested the final weights: no best checkpoint ({why_no_best_checkpoint(trainer, best)})"]
    (test_metrics,) = trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None, verbose=False)
    test_metrics = numbers(test_metrics)
    test_loader = trainer.test_dataloaders
    best_val_acc = float(best.best_model_score) if best is not None and best.best_model_score is not None else float("nan")
    writes_logs = not trainer.fast_dev_run  # Lightning's fast_dev_run writes no logs and no checkpoints
    if writes_logs:
        results = {"result/test_acc": test_metrics["result/test_acc"], "result/best_val_acc": best_val_acc}
        log_final(trainer.loggers, run.settings, results, step=trainer.global_step)
        if not trainer.loggers:
            notes.append("no metrics kept and no curves drawn: logger=none")
    else:
        notes.append("nothing written: fast_dev_run runs a batch of each stage and keeps no logs or checkpoints")
    return {
        "data_title": datamodule.data_set.title,
        "test_images": min(
            test_loader.sampler.size, int(trainer.num_test_batches[0]) * test_loader.batch_size * trainer.world_size
        ),
        "is_global_zero": trainer.is_global_zero,
        "test_acc": test_metrics["result/test_acc"],
        "test_loss": test_metrics["result/test_loss"],
        "best_val_acc": best_val_acc,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_s": fit_seconds,
        "run_dir": str(run.run_dir) if writes_logs else None,
        "best_checkpoint": best_path or None,
        "logged": describe(trainer.loggers, Path(shown_path(run.run_dir))) if writes_logs else [],
        "notes": notes,
    }


def why_no_best_checkpoint(trainer: L.Trainer, best: ModelCheckpoint | None) -> str:
    if trainer.fast_dev_run:
        return "fast_dev_run keeps none"
    if best is None:
        return "checkpointing is off" if not trainer.checkpoint_callbacks else "no checkpoint callback monitors acc/val"
    return "validation never ran" if trainer.limit_val_batches == 0 or not trainer.num_val_batches else "no acc/val was logged"


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def print_summary(summary: dict[str, Any]) -> None:
    best = summary["best_val_acc"]
    lines = [
        f"\ntest accuracy {summary['test_acc']:.4f} (loss {summary['test_loss']:.4f}) "
        f"on {summary['test_images']:,} {summary['data_title']} test images",
        (f"best val accuracy {best:.4f} in" if math.isfinite(best) else "trained for")
        + f" {counted(summary['epochs'], 'epoch')}, {counted(summary['global_step'], 'step')}"
        + f" (fit {summary['fit_s']:.1f} s)",
    ]
    if summary["run_dir"]:
        lines.append(f"run folder       {shown_path(summary['run_dir'])}")
    if summary["best_checkpoint"]:
        lines.append(f"best checkpoint  {shown_path(summary['best_checkpoint'])}")
    lines += summary["logged"]
    print("\n".join(lines + [f"note: {note}" for note in summary["notes"]]))


def resume_command(checkpoint: Path) -> str:
    """The command line, quoted for a shell, that continues this run from ``checkpoint``."""
    overrides = (
        [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")] if HydraConfig.initialized() else []
    )
    return shlex.join(["python", "-m", "src.train", *overrides, f"ckpt_path={checkpoint}"])


def exit_interrupted(stop: Interrupted, rest: str = "") -> None:
    """Say what a signal stopped and how to go on, then exit 130 (as a shell does for Ctrl-C)."""
    also = f" ({rest})" if rest else ""
    if stop.checkpoint is None:
        print(
            f"\nstopped by a signal{also}; no checkpoint was kept (checkpointing is off), so there is nothing to resume",
            file=sys.stderr,
        )
    else:
        print(
            f"\nstopped by a signal{also}; the current step is saved. Resume with:\n  {resume_command(stop.checkpoint)}",
            file=sys.stderr,
        )
    sys.exit(130)


def sweep_job(cfg: DictConfig) -> float:
    """One job of a multirun: its failure becomes a row of the sweep summary, and the other jobs still run."""
    started = time.perf_counter()
    job = HydraConfig.get()
    swept = swept_overrides(job.overrides.task, job.job.config.override_dirname.exclude_keys)
    row: dict[str, Any] = {"overrides": " ".join(swept), "folder": shown_path(job.runtime.output_dir)}
    jobs = os.environ.get(SWEEP_JOBS_VARIABLE)
    print(f"\njob {job.job.num + 1}{'/' + jobs if jobs else ''}: {' '.join(swept) or '(nothing swept)'}", flush=True)
    try:
        summary = train(cfg)
    except Interrupted as stop:  # Ctrl-C or SIGTERM stops the whole sweep, not only this job
        row |= {"error": "stopped by a signal", "wall_s": time.perf_counter() - started}
        write_result(Path(row["folder"]), row)
        exit_interrupted(stop, rest="the sweep's later jobs did not run")
    except Exception as error:  # recorded, not raised: the sweep goes on
        row |= {"error": f"{type(error).__name__}: {error}".splitlines()[0], "wall_s": time.perf_counter() - started}
        write_result(Path(row["folder"]), row)
        print(f"error: {row['error']}", file=sys.stderr)
        return float("nan")
    if summary["is_global_zero"]:
        print_summary(summary)
        row |= {key: summary[key] for key in ("best_val_acc", "test_acc", "epochs")} | {"wall_s": time.perf_counter() - started}
        write_result(Path(row["folder"]), row)
    return summary["best_val_acc"]


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return sweep_job(cfg)
    try:
        summary = train(cfg)
    except USER_ERRORS as error:
        exit_on_error(error)
    except Interrupted as stop:
        exit_interrupted(stop)
    except (NonFiniteLoss, CheckpointWriteError) as error:
        exit_on_error(error, status=1)
    if summary["is_global_zero"]:
        print_summary(summary)
    return summary["best_val_acc"]


if __name__ == "__main__":
    overrides = checked_command_line("train")
    os.environ[SWEEP_JOBS_VARIABLE] = str(sweep_size(overrides) or "")  # for each job's header line
    # Job folders of a sweep are named by what is swept: the keys the command line fixes are left out of the names.
    exclude = f"hydra.job.config.override_dirname.exclude_keys=[{','.join(fixed_keys(overrides))}]"
    sys.argv[1:] = hydra_order(sys.argv[1:], exclude)
    main()
