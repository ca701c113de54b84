"""The run folder, and the loggers (``conf/logger/``) that write into it.

One folder a run: ``<log_dir>/<name>/version_<N>/`` for a new run (claimed atomically: two runs started at once never
share one), a sweep job's folder, a resumed run's own. TensorBoard writes into it, the CSV logger
``csv/version_<K>/metrics.csv`` per start (Lightning's would empty an existing file), MLflow its own store (SQLite under
``log_dir``, or a server) with a run named after the folder, which a resume continues (its id is in the checkpoint).
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_object, instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from tensorboard.plugins.hparams.summary_v2 import hparams_pb  # what tensorboard.plugins.hparams.api (TF) exports

from src.cli import command


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoard logger without the ``epoch`` chart it adds to every step: the first charts are metrics."""

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics({name: value for name, value in metrics.items() if name != "epoch"}, step)


# TensorBoard's CUSTOM SCALARS tab: train, val and test of one metric in one chart.
CHARTS = {
    "accuracy (train: mean over each logging window)": ["^acc/train$", "^acc/val$", "^result/test_acc$"],
    "loss (train: mean over each logging window)": ["^loss/train$", "^loss/val$", "^result/test_loss$"],
    "learning rate": ["^lr"],
}

# Rank 0 chooses the run folder and leaves it here for the processes it starts (DDP ranks 1..N-1; src/train.py).
RUN_DIR_VARIABLE = "MNIST_LIGHTNING_RUN_DIR"
RUN_IDS_KEY = "logger_run_ids"  # in a checkpoint: {"MLFlowLogger": run id}


def logger_configs(node: Mapping[str, Any] | None) -> dict[str, Any]:
    """The configured loggers by their key: ``logger=tensorboard`` is one (``logger``), ``logger=many`` several
    (``logger.tensorboard``, ``logger.csv``, ...), ``logger=none`` none."""
    if not node:
        return {}
    if "_target_" in node:
        return {"logger": node}
    return {f"logger.{name}": entry for name, entry in node.items() if entry}


def next_version(runs: Path) -> Path:
    """``runs/version_<N>`` with N one more than the largest there (0 in a new folder), as Lightning's loggers count."""
    numbers = [int(p.name[8:]) for p in runs.glob("version_*") if p.name[8:].isdigit()] if runs.is_dir() else []
    return runs / f"version_{max(numbers, default=-1) + 1}"


def choose_run_dir(cfg: DictConfig, checkpoint: Path | None) -> tuple[Path, bool]:
    """The run's folder, and whether it is a new one (for :func:`claim`): a resumed run's own, a sweep job's, rank 0's."""
    if checkpoint is not None and checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent, False  # resume: the checkpoint's own run folder
    if os.environ.get("LOCAL_RANK", "0") != "0" and RUN_DIR_VARIABLE in os.environ:
        return Path(os.environ[RUN_DIR_VARIABLE]), False  # a DDP rank started by rank 0: rank 0's choice
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().runtime.output_dir), False
    return next_version(Path(cfg.log_dir) / cfg.name), True


def claim(run_dir: Path) -> list[Path] | None:
    """Create a new run folder: the folders made (the deepest first), or None if another run created it first."""
    created = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()]
    try:
        run_dir.mkdir(parents=True)
    except FileExistsError:
        return None
    return created


def build_loggers(node: Mapping[str, Any] | None, run_dir: Path, state: dict[str, Any] | None) -> list[Logger]:
    """Each configured logger, told the run folder (and, resuming from ``state``, where to continue)."""
    loggers = []
    resumed_ids = state.get(RUN_IDS_KEY, {}) if state else {}
    for config in logger_configs(node).values():
        target = get_object(config["_target_"])
        given: dict[str, Any] = {}
        if issubclass(target, CSVLogger):  # the next file of this run folder
            given = {"save_dir": str(run_dir), "name": "csv", "version": next_version(run_dir / "csv").name}
        elif issubclass(target, LightningTensorBoardLogger):
            given = {"save_dir": str(run_dir), "name": "", "version": ""}
            if state is not None:
                # Lightning logs the batch that makes optimizer step k at step k-1: what the interrupted run logged at the
                # checkpoint's step or later came after the checkpoint, and is dropped.
                given["purge_step"] = int(state["global_step"])
        elif issubclass(target, MLFlowLogger):  # the run is named after its folder; a resume continues its run
            if config.get("run_name") is None:
                given["run_name"] = f"{run_dir.parent.name}/{run_dir.name}"
            if config.get("run_id") is None and resumed_ids.get(target.__name__):
                given["run_id"] = resumed_ids[target.__name__]
        loggers.append(instantiate(config, **given))
    return loggers


# The settings people compare runs by (TensorBoard's HPARAMS, MLflow's params), flat, with their real types, each named
# by its last part (optimizer.lr: lr); the optimizer, schedule, loss and widths by name, and in a sweep its swept keys.
COMPARED = (
    "data.dataset optimizer.lr optimizer.weight_decay model.dropout model.input_dropout data.batch_size trainer.max_epochs "
    "trainer.accumulate_grad_batches data.rotate data.scale data.shift data.elastic_alpha data.flip data.erase "
    "mixup trainer.precision seed"
).split()


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return value if isinstance(value, bool | int | float | str) else str(value)


def compared_settings(cfg: DictConfig) -> dict[str, Any]:
    """The flat set of settings that tells runs apart (a swept ``optimizer.lr`` is the ``lr`` already there)."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    settings = {
        group: str(choices.get(group) or _value(cfg, f"{group}._target_")) for group in ("optimizer", "scheduler", "loss")
    }
    settings["hidden"] = "x".join(str(width) for width in cfg.model.hidden)
    names = {key: key.rpartition(".")[2] for key in COMPARED}
    settings |= {name: _value(cfg, key) for key, name in names.items()}
    swept = [override.lstrip("+~").partition("=")[0] for override in swept_overrides()]
    return settings | {names.get(key, key): str(choices[key]) if key in choices else _value(cfg, key) for key in swept}


def swept_overrides() -> list[str]:
    """In a sweep job, its overrides less those the command line fixes for every job (``src/sweeps.py`` names them),
    sorted: what tells the runs of a sweep apart, as Hydra's names of their folders (``override_dirname``) do."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    job, fixed = HydraConfig.get(), HydraConfig.get().job.config.override_dirname.exclude_keys
    return sorted(override for override in job.overrides.task if override.lstrip("+~").partition("=")[0] not in fixed)


class LogSettings(L.Callback):
    """When training starts: TensorBoard's chart layout, and the compared settings as params of the other loggers
    (MLflow, CSV's hparams.yaml), but for a resumed run, which has them (MLflow refuses a changed param, and a resume may
    change the Trainer's settings); TensorBoard gets them with the results (:func:`log_final`). In each checkpoint:
    MLflow's run id, so that a resumed run continues that run."""

    def __init__(self, settings: dict[str, Any], resumed: bool = False) -> None:
        self.settings, self.resumed = settings, resumed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, LightningTensorBoardLogger):
                logger.experiment.add_custom_scalars({"metrics": {title: ["Multiline", tags] for title, tags in CHARTS.items()}})
            elif not self.resumed:
                logger.log_hyperparams(self.settings)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if ids := {type(logger).__name__: logger.run_id for logger in trainer.loggers if isinstance(logger, MLFlowLogger)}:
            checkpoint[RUN_IDS_KEY] = ids


def log_final(loggers: list[Logger], settings: dict[str, Any], results: dict[str, float], step: int) -> None:
    """The run's final numbers (the test logged ``result/test_acc``) and, for TensorBoard, its settings as an HPARAMS
    session (``hparams_pb``): TensorBoard lays the table out itself, what differs between runs (a sweep's keys) first."""
    for logger in loggers:
        logger.log_metrics({name: value for name, value in results.items() if name != "result/test_acc"}, step=step)
        if isinstance(logger, LightningTensorBoardLogger):
            logger.experiment.file_writer.add_summary(hparams_pb(settings), step)
        logger.finalize("success")


def where_to_look(loggers: list[Logger], run_dir: Path) -> list[str]:
    """Summary lines: where each logger's records are and the command that shows them."""
    lines = []
    for logger in loggers:
        if isinstance(logger, LightningTensorBoardLogger):
            lines.append(f"curves           {command('tensorboard', '--logdir', run_dir)}")
        elif isinstance(logger, CSVLogger):
            lines.append(f"metrics          {command(Path(logger.log_dir) / 'metrics.csv')}")
        elif isinstance(logger, MLFlowLogger):  # its web page on a server, else how to open its local store
            uri, run = logger.experiment.tracking_uri, logger.run_id
            web = f"{uri.rstrip('/')}/#/experiments/{logger.experiment_id}/runs/{run}"
            shown = web if uri.startswith("http") else f"{run}: {command('mlflow', 'ui', '--backend-store-uri', uri)}"
            lines.append(f"mlflow run       {shown}")
    return lines
