"""``python -m src.train [key=value ...]``: train the tutorial's MLP on MNIST, then test the best checkpoint.

compose (conf/train.yaml) -> check -> build DataModule, Classifier, logger, callbacks, Trainer -> fit -> test("best")
-> summary. Builders are plain functions so that other entry points can reuse them.
"""

import os
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from src.callbacks.finite_loss import NonFiniteLoss
from src.checkpoint_io import CheckpointWriteError
from src.checks import ConfigError, check_config, check_group_choices
from src.models.classifier import Classifier
from src.runs import check_same_network, read_checkpoint, resolve_checkpoint, resumed_logger_args, sweep_job_logger_args
from src.sweeps import SWEPT_KEYS_VARIABLE, job_folder_name, swept_keys, swept_overrides, write_result

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True, replace=True)  # sweep folders: unique per process
OmegaConf.register_new_resolver("job_folder", job_folder_name, replace=True)  # a sweep job's folder: its swept values


class Interrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM after saving ``checkpoint``."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


def plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node: what goes into hyper-parameters and checkpoints."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain Python floats copied out of (possibly live) tensors, for summaries and records.

    ``float()`` copies the value; a ``tensor.numpy()`` view would share memory and change as training goes on,
    which the tutorial warns about.
    """
    return {name: float(value) for name, value in metrics.items()}


def build_classifier(cfg: DictConfig) -> Classifier:
    return Classifier(model=plain(cfg.model), loss=plain(cfg.loss), optimizer=plain(cfg.optimizer), scheduler=plain(cfg.scheduler))


def build_trainer(cfg: DictConfig, logger: Any) -> L.Trainer:
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()]
    return instantiate(cfg.trainer, logger=logger, callbacks=callbacks)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one run; return its summary (metrics as plain floats, paths as strings)."""
    check_config(cfg)
    checkpoint = resolve_checkpoint(cfg.ckpt_path, Path(cfg.logger.save_dir), cfg.name)
    state = read_checkpoint(checkpoint) if checkpoint else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data, _convert_="all")
    model = build_classifier(cfg)
    if state is not None:
        check_same_network(state, model, checkpoint)
    logger = instantiate(cfg.logger, **(resumed_logger_args(checkpoint, state) or sweep_job_logger_args()))
    trainer = build_trainer(cfg, logger)
    if trainer.is_global_zero:
        run_dir = Path(logger.log_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        config_file = run_dir / ("config.yaml" if checkpoint is None else "config.resumed.yaml")
        OmegaConf.save(cfg, config_file, resolve=True)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=checkpoint)
    except SIGTERMException as stop:  # the last_checkpoint callback saved this step on the way out
        raise Interrupted(Path(trainer.checkpoint_callback.dirpath) / "last.ckpt") from stop
    best = trainer.checkpoint_callback  # the first ModelCheckpoint: the best by val/acc
    (test_metrics,) = trainer.test(model, datamodule=datamodule, ckpt_path=best.best_model_path, verbose=False)
    test_metrics = numbers(test_metrics)
    test_loader = trainer.test_dataloaders
    best_val_acc = float(best.best_model_score) if best.best_model_score is not None else float("nan")
    # The HPARAMS tab: this run's settings beside its final numbers (plain floats, copied out of the tensors).
    settings = {key: plain(cfg[key]) for key in ("model", "loss", "optimizer", "scheduler", "data", "trainer", "seed")}
    final = {"hp/test_acc": test_metrics["test/acc"], "hp/best_val_acc": best_val_acc}
    logger.log_hyperparams(settings, final, step=trainer.global_step)
    logger.finalize("success")  # flush and close: Lightning closed the writer after test, this reopened it
    return {
        "test_images": min(test_loader.sampler.size, int(trainer.num_test_batches[0]) * test_loader.batch_size * trainer.world_size),
        "is_global_zero": trainer.is_global_zero,
        "test_acc": test_metrics["test/acc"],
        "test_loss": test_metrics["test/loss"],
        "best_val_acc": best_val_acc,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "run_dir": logger.log_dir,
        "best_checkpoint": best.best_model_path,
    }


def print_summary(summary: dict[str, Any]) -> None:
    print(
        f"\ntest accuracy {summary['test_acc']:.4f} (loss {summary['test_loss']:.4f}) on {summary['test_images']:,} "
        "MNIST test images\n"
        f"best val accuracy {summary['best_val_acc']:.4f} after {summary['epochs']} epochs, {summary['global_step']} steps\n"
        f"run folder       {summary['run_dir']}\n"
        f"best checkpoint  {summary['best_checkpoint']}\n"
        f"curves           tensorboard --logdir {summary['run_dir']}"
    )


def exit_on_config_error(error: ConfigError) -> None:
    """One line on stderr and exit status 2; the traceback too when HYDRA_FULL_ERROR=1."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def resume_command(checkpoint: Path) -> str:
    """The command line, quoted for a shell, that continues this run from ``checkpoint``."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")] if HydraConfig.initialized() else []
    return shlex.join(["python", "-m", "src.train", *overrides, f"ckpt_path={checkpoint}"])


def sweep_job(cfg: DictConfig) -> float:
    """One job of a multirun: its failure becomes a row of the sweep summary, and the other jobs still run."""
    started = time.perf_counter()
    job = HydraConfig.get()
    swept = swept_overrides(job.overrides.task, job.sweeper.params)
    row: dict[str, Any] = {"overrides": " ".join(swept), "folder": job.runtime.output_dir}
    try:
        summary = train(cfg)
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
    except ConfigError as error:
        exit_on_config_error(error)
    except Interrupted as stop:
        print(f"\nstopped by a signal; the current step is saved. Resume with:\n  {resume_command(stop.checkpoint)}", file=sys.stderr)
        sys.exit(130)
    except (NonFiniteLoss, CheckpointWriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if summary["is_global_zero"]:
        print_summary(summary)
    return summary["best_val_acc"]


if __name__ == "__main__":
    try:
        check_group_choices(sys.argv[1:], CONF_DIR)
    except ConfigError as error:
        exit_on_config_error(error)
    os.environ[SWEPT_KEYS_VARIABLE] = ",".join(swept_keys(sys.argv[1:]))
    main()
