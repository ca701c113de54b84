"""The loggers (``conf/logger/``) that write into the run folder: TensorBoard into it, the CSV logger
``csv/version_<K>/metrics.csv`` per start (Lightning's would empty an existing file), MLflow its own store (SQLite under
``log_dir``, or a server) with a run named after the folder, which a resume continues (its id is in the checkpoint)."""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import get_object, instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from tensorboard.plugins.hparams.summary_v2 import hparams_pb  # what tensorboard.plugins.hparams.api (TF) exports

from src.cli import command
from src.runs import next_version


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

RUN_IDS_KEY = "logger_run_ids"  # in a checkpoint: {"MLFlowLogger": run id}


def build_loggers(configs: Iterable[Mapping[str, Any]], run_dir: Path, state: dict[str, Any] | None) -> list[Logger]:
    """Each configured logger, told the run folder (and, resuming from ``state``, where to continue)."""
    loggers = []
    resumed_ids = state.get(RUN_IDS_KEY, {}) if state else {}
    for config in configs:
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
