"""``python -m src.train [key=value ...]``: train the tutorial's MLP on MNIST, then test the best checkpoint.

compose (Hydra: conf/train.yaml) -> load and check (src/config.py) -> build (src/build.py) -> fit -> test -> report. All
is checked and built before anything is written into a run folder.
"""

import gc

if __name__ == "__main__":  # run as a command, not imported: no garbage collection while the imports below build
    gc.disable()  # their many objects (a full collection each time they grow by a quarter); src/cli.py's run() resumes it

import math
import shlex
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from src import checkpoints, cli, config, ranks, runs
from src.build import Run, build
from src.callbacks.finite_loss import NonFiniteLoss
from src.callbacks.interrupt import Aborted, StopOnCtrlC
from src.checkpoint_io import CheckpointWriteError
from src.cli import exit_with_error, shown_path
from src.loggers import log_final, where_to_look


@dataclass
class Interrupted(Exception):
    """Training stopped on Ctrl-C, SIGTERM or a SLURM job's SIGUSR2 after saving ``checkpoint`` (None: checkpointing was
    off), or, ``aborted`` by a second Ctrl-C, with ``checkpoint`` the last one saved before (None: none yet)."""

    checkpoint: Path | None
    aborted: bool = False
    requeue: Callable[[], None] | None = None  # a SLURM job's: put it back in the queue (StopOnCtrlC)


def train(cfg: DictConfig, context: config.Context | None = None) -> dict[str, Any]:
    """Load, build, fit and test one run; return its summary (metrics as plain floats, paths as strings)."""
    spec = config.load(cfg, context)
    run = build(spec)
    trainer = run.trainer
    if trainer.is_global_zero:
        said = OmegaConf.to_yaml(run.spec.config) if run.spec.config["print_config"] else ""
        print(said + (f"note: {run.spec.start.note}\n" if run.spec.start.note else ""), end="", flush=True)
    ranks.share_run_dir(run.run_dir)  # the DDP ranks that fit starts write into the same folder
    with ranks.process_group_ends():
        fit_seconds = fit(run)
        best = next((callback for callback in trainer.checkpoint_callbacks if callback.monitor), None)  # callbacks.checkpoint
        best_path = best.best_model_path if best is not None else ""
        notes = [] if best_path else [f"tested the final weights: no best checkpoint ({why_no_best_checkpoint(trainer, best)})"]
        (test_metrics,) = trainer.test(run.model, datamodule=run.datamodule, ckpt_path=best_path or None, verbose=False)
    test_acc, test_loss = float(test_metrics["result/test_acc"]), float(test_metrics["result/test_loss"])
    best_score = float(best.best_model_score) if best is not None and best.best_model_score is not None else float("nan")
    best_val_acc = best_score if best is not None and best.monitor == "acc/val" else float("nan")  # what sweeps rank by
    loader = trainer.test_dataloaders
    test_images = min(loader.sampler.size, int(trainer.num_test_batches[0]) * loader.batch_size * trainer.world_size)
    writes_logs = not trainer.fast_dev_run  # Lightning's fast_dev_run writes no logs and no checkpoints
    logged = where_to_look(trainer.loggers, run.run_dir) if writes_logs else []
    if writes_logs and trainer.is_global_zero:
        results = {"result/test_acc": test_acc, "result/best_val_acc": best_val_acc}
        log_final(trainer.loggers, run.spec.settings, results, trainer.global_step)
        tested = Path(best_path).name if best_path else None  # None: the final weights, which no checkpoint holds
        runs.write_result(run.run_dir, {"test_acc": test_acc, "test_images": test_images, "tested_checkpoint": tested})
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
        "best": (best.monitor if best is not None else None, best_score),  # the checkpoint callback's monitor (acc/val)
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_s": fit_seconds,
        "run_dir": str(run.run_dir) if writes_logs else None,
        "best_checkpoint": best_path or None,
        "logged": logged,
        "notes": notes,
    }


def fit(run: Run) -> float:
    """``Trainer.fit``; its seconds. Ctrl-C or SIGTERM becomes :class:`Interrupted`."""
    trainer = run.trainer
    # Put back after fit: StopOnCtrlC's handlers outlive Lightning's teardown.
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGUSR2)}
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():  # a resumed run writes into its own checkpoints folder by design
            warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")
            trainer.fit(run.model, datamodule=run.datamodule, ckpt_path=run.spec.start.checkpoint)
    except (SIGTERMException, Aborted) as error:  # the last_checkpoint callback saved this step on the way out, or not
        handlers[signal.SIGINT] = signal.SIG_IGN  # the run ends here: a further Ctrl-C must not cut its last words
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        callback = trainer.checkpoint_callback
        last = Path(callback.dirpath) / "last.ckpt" if callback is not None and callback.dirpath else None
        requeue = next((c.requeue for c in trainer.callbacks if isinstance(c, StopOnCtrlC)), None)
        raise Interrupted(last if last is not None and last.is_file() else None, isinstance(error, Aborted), requeue) from error
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return time.perf_counter() - started


def why_no_best_checkpoint(trainer: L.Trainer, best: ModelCheckpoint | None) -> str:
    if trainer.fast_dev_run:
        return "fast_dev_run keeps none"
    if best is None:
        return "checkpointing is off" if not trainer.checkpoint_callbacks else "no checkpoint callback monitors acc/val"
    if best.save_top_k == 0:
        return "its checkpoint callback keeps none: save_top_k=0"
    if trainer.limit_val_batches == 0 or not trainer.num_val_batches:
        return "validation never ran"
    if best.monitor not in trainer.callback_metrics:  # every validation logs it (src/config.py); asked before the test
        return "the run ended before its first validation"
    return "its checkpoint callback saved none at the validations that ran (its every_n_epochs, every_n_train_steps)"


def print_summary(summary: dict[str, Any]) -> None:
    monitor, best = summary["best"]

    def counted(number: int, noun: str) -> str:
        return f"{number} {noun}{'s' * (number != 1)}"

    lines = [
        f"\ntest accuracy {summary['test_acc']:.4f} (loss {summary['test_loss']:.4f}) "
        f"on {summary['test_images']:,} {summary['data_title']} test images",
        (f"best {'val accuracy' if monitor == 'acc/val' else monitor} {best:.4f} in" if math.isfinite(best) else "trained for")
        + f" {counted(summary['epochs'], 'epoch')}, {counted(summary['global_step'], 'step')}"
        + f" (fit {summary['fit_s']:.1f} s)",
    ]
    if summary["run_dir"]:
        lines.append(f"run folder       {shown_path(summary['run_dir'])}")
    if summary["best_checkpoint"]:
        lines.append(f"best checkpoint  {shown_path(summary['best_checkpoint'])}")
    lines += summary["logged"]
    print("\n".join(lines + [f"note: {note}" for note in summary["notes"]]))


def resume_command(checkpoint: Path, overrides: tuple[str, ...]) -> str:
    """The command line, quoted for a shell, that continues this run from ``checkpoint``."""
    kept = [override for override in overrides if not override.startswith("ckpt_path=")]
    return shlex.join(["python", "-m", "src.train", *kept, cli.setting("ckpt_path", checkpoint)])


def exit_interrupted(stop: Interrupted, overrides: tuple[str, ...], rest: str = "") -> None:
    """Say what a signal stopped and how to go on, then exit 130 (as a shell does for Ctrl-C)."""
    saved = "no checkpoint was kept (checkpointing is off), so there is nothing to resume"
    if stop.aborted:
        saved = "no checkpoint was written before it, so there is nothing to resume"
    if stop.checkpoint is not None:
        saved = "the current step is saved"
        if stop.aborted:  # a save it cut short left the previous last.ckpt whole (atomic writes)
            saved = f"the last complete checkpoint is of step {checkpoints.read(stop.checkpoint)['global_step']}"
        saved += f". Resume with:\n  {resume_command(stop.checkpoint, overrides)}"
    how = "a second Ctrl-C" if stop.aborted else "a signal"
    print(f"\nstopped by {how}{f' ({rest})' if rest else ''}; {saved}", file=sys.stderr)
    sys.exit(130)


def sweep_job(cfg: DictConfig, context: config.Context) -> float:
    """One job of a multirun: its failure becomes a row of the sweep summary, and the other jobs still run."""
    started = time.perf_counter()
    row: dict[str, Any] = {"overrides": " ".join(context.swept), "folder": shown_path(context.job_dir)}
    try:
        with ranks.sweep_job(context.overrides):
            summary = train(cfg, context)
    except Interrupted as stop:
        if stop.requeue is not None:  # SLURM's warning of a time limit or a preemption: the job goes on from last.ckpt
            print("\nstopped by SLURM's SIGUSR2 with its step saved: the job goes back in the queue", flush=True)
            try:
                stop.requeue()  # submitit requeues the job and exits
            except Exception as refusal:  # hydra.launcher.max_num_timeout time-outs are spent
                print(f"not requeued: {refusal}", file=sys.stderr)
        runs.write_result(context.job_dir, row | {"error": "stopped by a signal", "wall_s": time.perf_counter() - started})
        if context.cluster_job:  # scancel or a time limit stops this job alone: the sweep still writes its summary
            resume = resume_command(stop.checkpoint, context.overrides) if stop.checkpoint else "nothing saved"
            print(f"error: stopped by a signal; {resume}", file=sys.stderr)
            return float("nan")
        exit_interrupted(stop, context.overrides, rest="the sweep's later jobs did not run")  # Ctrl-C: the whole sweep
    except Exception as error:  # recorded, not raised: the sweep goes on
        row |= {"error": f"{type(error).__name__}: {error}".splitlines()[0], "wall_s": time.perf_counter() - started}
        runs.write_result(context.job_dir, row)
        print(f"error: {row['error']}", file=sys.stderr)
        return float("nan")
    if summary["is_global_zero"]:
        print_summary(summary)
        row |= {key: summary[key] for key in ("best_val_acc", "test_acc", "epochs")} | {"wall_s": time.perf_counter() - started}
        runs.write_result(context.job_dir, row)
    return summary["best_val_acc"]


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@cli.task
def main(cfg: DictConfig) -> float:
    context = config.Context.current()
    if context.multirun:
        return sweep_job(cfg, context)
    try:
        summary = train(cfg, context)
    except Interrupted as stop:
        exit_interrupted(stop, context.overrides)
    except (NonFiniteLoss, CheckpointWriteError) as error:
        exit_with_error(error, status=1)
    if summary["is_global_zero"]:
        print_summary(summary)
    return summary["best_val_acc"]


if __name__ == "__main__":
    cli.run(main)
