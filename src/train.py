"""``python -m src.train [key=value ...]``: train the tutorial's MLP on MNIST, then test the best checkpoint.

compose (Hydra: conf/train.yaml) -> check (src/checks.py) -> build (src/builders.py) -> fit -> test -> summary. All is
checked and built before anything is written into a run folder; what Lightning's own set-up writes before it refuses a
run (a few settings it checks only once it sees the data) is removed again.
"""

import gc

if __name__ == "__main__":  # run as a command, not imported: no garbage collection while the imports below build
    gc.disable()  # their ~10^6 objects (a full collection each time they grow by a quarter); src/cli.py's run() resumes it

import math
import os
import shlex
import signal
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

from src import checkpoints, cli
from src.builders import Run, build_run, given_settings
from src.callbacks.finite_loss import NonFiniteLoss
from src.callbacks.interrupt import Aborted
from src.checkpoint_io import CheckpointWriteError
from src.checkpoints import write_result
from src.checks import check
from src.cli import ConfigError, exit_with_error, shown_path
from src.loggers import RUN_DIR_VARIABLE, log_final, swept_overrides, where_to_look
from src.sweeps import SWEEP_JOBS_VARIABLE, one_job_leaves_nothing_behind


@dataclass
class Interrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM after saving ``checkpoint`` (None: checkpointing was off), or, ``aborted``
    by a second Ctrl-C, with ``checkpoint`` the last one saved before (None: none yet)."""

    checkpoint: Path | None
    aborted: bool = False


def train(cfg: DictConfig) -> dict[str, Any]:
    """Check, build, fit and test one run; return its summary (metrics as plain floats, paths as strings)."""
    check(cfg)
    run = build_run(cfg)
    trainer = run.trainer
    if cfg.print_config and trainer.is_global_zero:
        print(OmegaConf.to_yaml(cfg, resolve=True), end="", flush=True)
    if trainer.is_global_zero:
        print("".join(f"note: {note}\n" for note in run.notes), end="", flush=True)
    os.environ[RUN_DIR_VARIABLE] = str(run.run_dir)  # the DDP ranks that fit starts write into the same folder
    fit_seconds = fit(run)
    best = next((callback for callback in trainer.checkpoint_callbacks if callback.monitor), None)  # callbacks.checkpoint
    best_path = best.best_model_path if best is not None else ""
    notes = [] if best_path else [f"tested the final weights: no best checkpoint ({why_no_best_checkpoint(trainer, best)})"]
    (test_metrics,) = trainer.test(run.model, datamodule=run.datamodule, ckpt_path=best_path or None, verbose=False)
    test_acc, test_loss = float(test_metrics["result/test_acc"]), float(test_metrics["result/test_loss"])
    best_val_acc = float(best.best_model_score) if best is not None and best.best_model_score is not None else float("nan")
    loader = trainer.test_dataloaders
    test_images = min(loader.sampler.size, int(trainer.num_test_batches[0]) * loader.batch_size * trainer.world_size)
    writes_logs = not trainer.fast_dev_run  # Lightning's fast_dev_run writes no logs and no checkpoints
    if writes_logs and trainer.is_global_zero:
        log_final(
            trainer.loggers, run.settings, {"result/test_acc": test_acc, "result/best_val_acc": best_val_acc}, trainer.global_step
        )
        tested = Path(best_path).name if best_path else None  # None: the final weights, which no checkpoint holds
        write_result(run.run_dir, {"test_acc": test_acc, "test_images": test_images, "tested_checkpoint": tested})
    if not writes_logs:
        notes.append("nothing written: fast_dev_run runs a batch of each stage and keeps no logs or checkpoints")
    elif not trainer.loggers:
        notes.append("no metrics kept and no curves drawn: logger=none")
    return {
        "data_title": run.datamodule.data_set.title,
        "test_images": test_images,
        "is_global_zero": trainer.is_global_zero,
        "test_acc": test_acc,
        "test_loss": test_loss,
        "best_val_acc": best_val_acc,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_s": fit_seconds,
        "run_dir": str(run.run_dir) if writes_logs else None,
        "best_checkpoint": best_path or None,
        "logged": where_to_look(trainer.loggers, run.run_dir) if writes_logs else [],
        "notes": notes,
    }


def fit(run: Run) -> float:
    """``Trainer.fit``; its seconds. What Lightning refuses as it sets the run up (before the first optimizer step: it
    checks a few settings only once it sees the data) becomes one line, and the run folder is left as it was (a new
    run's: gone); Ctrl-C or SIGTERM becomes :class:`Interrupted`."""
    trainer = run.trainer
    before = set(run.run_dir.rglob("*"))
    ctrl_c = signal.getsignal(signal.SIGINT)  # put back after fit: StopOnCtrlC's handler outlives Lightning's teardown
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():  # a resumed run writes into its own checkpoints folder by design
            warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")
            trainer.fit(run.model, datamodule=run.datamodule, ckpt_path=run.checkpoint)
    except (MisconfigurationException, ValueError) as error:
        if trainer.global_step > run.start_step:  # not a refusal: it failed while training
            raise
        if trainer.is_global_zero:
            remove_added(run, before)
        raise ConfigError(f"trainer{given_settings('trainer')}: {' '.join(str(error).split())}") from error
    except (SIGTERMException, Aborted) as error:  # the last_checkpoint callback saved this step on the way out, or not
        ctrl_c = signal.SIG_IGN  # the run ends here: a further Ctrl-C must not cut its last words
        signal.signal(signal.SIGINT, ctrl_c)
        callback = trainer.checkpoint_callback
        last = Path(callback.dirpath) / "last.ckpt" if callback is not None and callback.dirpath else None
        raise Interrupted(last if last is not None and last.is_file() else None, isinstance(error, Aborted)) from error
    finally:
        signal.signal(signal.SIGINT, ctrl_c)
    return time.perf_counter() - started


def remove_added(run: Run, before: set[Path]) -> None:
    """What Lightning's set-up wrote into the run folder before it refused the run (its event file, say), removed; a
    new run's folder goes too, with the folders above it that its claim created."""
    for path in sorted(run.run_dir.rglob("*"), reverse=True):  # the deepest first
        if path not in before:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    for folder in run.created:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def why_no_best_checkpoint(trainer: L.Trainer, best: ModelCheckpoint | None) -> str:
    if trainer.fast_dev_run:
        return "fast_dev_run keeps none"
    if best is None:
        return "checkpointing is off" if not trainer.checkpoint_callbacks else "no checkpoint callback monitors acc/val"
    return "validation never ran" if trainer.limit_val_batches == 0 or not trainer.num_val_batches else "no acc/val was logged"


def print_summary(summary: dict[str, Any]) -> None:
    best = summary["best_val_acc"]

    def counted(number: int, noun: str) -> str:
        return f"{number} {noun}{'s' * (number != 1)}"

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
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")]
    return shlex.join(["python", "-m", "src.train", *overrides, f"ckpt_path={shown_path(checkpoint)}"])


def exit_interrupted(stop: Interrupted, rest: str = "") -> None:
    """Say what a signal stopped and how to go on, then exit 130 (as a shell does for Ctrl-C)."""
    saved = "no checkpoint was kept (checkpointing is off), so there is nothing to resume"
    if stop.aborted:
        saved = "no checkpoint was written before it, so there is nothing to resume"
    if stop.checkpoint is not None:
        saved = "the current step is saved"
        if stop.aborted:  # a save it cut short left the previous last.ckpt whole (atomic writes)
            saved = f"the last complete checkpoint is of step {checkpoints.read(stop.checkpoint)['global_step']}"
        saved += f". Resume with:\n  {resume_command(stop.checkpoint)}"
    how = "a second Ctrl-C" if stop.aborted else "a signal"
    print(f"\nstopped by {how}{f' ({rest})' if rest else ''}; {saved}", file=sys.stderr)
    sys.exit(130)


def sweep_job(cfg: DictConfig) -> float:
    """One job of a multirun: its failure becomes a row of the sweep summary, and the other jobs still run."""
    started = time.perf_counter()
    job = HydraConfig.get()
    swept = swept_overrides()
    row: dict[str, Any] = {"overrides": " ".join(swept), "folder": shown_path(job.runtime.output_dir)}
    jobs = os.environ.get(SWEEP_JOBS_VARIABLE)
    print(f"\njob {job.job.num + 1}{'/' + jobs if jobs else ''}: {' '.join(swept) or '(nothing swept)'}", flush=True)
    # Lightning starts the other DDP ranks by running this process's command line again (its Hydra support): made this
    # job's own, they run this job, not a sweep of their own.
    sys.argv[1:] = [override for override in job.overrides.task if not override.startswith("hparams_search=")]
    try:
        with one_job_leaves_nothing_behind():
            summary = train(cfg)
    except Interrupted as stop:  # Ctrl-C or SIGTERM stops the whole sweep, not only this job
        write_result(Path(row["folder"]), row | {"error": "stopped by a signal", "wall_s": time.perf_counter() - started})
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
@cli.task
def main(cfg: DictConfig) -> float:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return sweep_job(cfg)
    try:
        summary = train(cfg)
    except Interrupted as stop:
        exit_interrupted(stop)
    except (NonFiniteLoss, CheckpointWriteError) as error:
        exit_with_error(error, status=1)
    if summary["is_global_zero"]:
        print_summary(summary)
    return summary["best_val_acc"]


if __name__ == "__main__":
    cli.run(main)
