"""The run folder, and the loggers (``conf/logger/``) that write into it.

Every run has one folder: ``<log_dir>/<name>/version_<N>/`` for a new run (claimed atomically, so two runs started at
once never share one), the job folder in a sweep, the checkpoint's own folder when a run is resumed. ``config.yaml``,
``checkpoints/`` and ``curves.png`` go there whatever the logger; TensorBoard's event files go there too, the CSV
logger writes ``csv/version_<K>/metrics.csv`` inside it (one file per start: Lightning's CSV logger would empty an
existing one), and MLflow keeps its own store (a local SQLite file under ``log_dir``, or a server) with a run named
after the folder. A resumed run continues its MLflow run: the run id is kept in the checkpoint.
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
from tensorboard.plugins.hparams.summary_v2 import hparams_pb

from src import figures
from src.cli import command
from src.figures import Curves


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoard logger without the ``epoch`` staircase that Lightning adds to every logged step (the x
    axis is the optimizer step and the val points mark the epochs), so that the first charts are the metrics."""

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
    """The folder this run writes to, and whether it is a new one, which :func:`claim` creates (nothing is created
    here): a resumed run's own folder, a sweep job's (Hydra makes it), rank 0's for the DDP ranks it starts."""
    if checkpoint is not None and checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent, False  # resume: the checkpoint's own run folder
    if os.environ.get("LOCAL_RANK", "0") != "0" and RUN_DIR_VARIABLE in os.environ:
        return Path(os.environ[RUN_DIR_VARIABLE]), False  # a DDP rank started by rank 0: rank 0's choice
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().runtime.output_dir), False
    return next_version(Path(cfg.log_dir) / cfg.name), True


def claim(run_dir: Path) -> list[Path] | None:
    """Create the new run folder; the folders that creating it made (the deepest first), or None if another run
    created it first (then this run takes the next one)."""
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


# The settings people compare runs by (TensorBoard's HPARAMS, MLflow's params), flat, with their real types: a name
# and the config key it reads. The optimizer, schedule, loss and widths are added by name; a sweep adds its swept keys.
COMPARED = {
    "dataset": "data.dataset",
    "lr": "optimizer.lr",
    "weight_decay": "optimizer.weight_decay",
    "dropout": "model.dropout",
    "batch_size": "data.batch_size",
    "accumulate_grad_batches": "trainer.accumulate_grad_batches",
    "max_epochs": "trainer.max_epochs",
    "rotate": "data.rotate",
    "scale": "data.scale",
    "shift": "data.shift",
    "elastic_alpha": "data.elastic_alpha",
    "precision": "trainer.precision",
    "seed": "seed",
}


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return value if isinstance(value, bool | int | float | str) else str(value)


def compared_settings(cfg: DictConfig) -> dict[str, Any]:
    """The flat set of settings that tells runs apart, a sweep's swept keys first (``optimizer.lr`` named ``lr``)."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    names = {key: name for name, key in COMPARED.items()}
    swept = {names.get(key, key): str(choices[key]) if key in choices else _value(cfg, key) for key in swept_keys()}
    usual = {
        group: str(choices.get(group) or (cfg[group]._target_.rpartition(".")[2] if cfg[group] else "none"))
        for group in ("optimizer", "scheduler", "loss")
    }
    usual["hidden"] = "x".join(str(width) for width in cfg.model.hidden)
    usual |= {name: _value(cfg, key) for name, key in COMPARED.items()}
    return swept | {name: value for name, value in usual.items() if name not in swept}


def swept_keys() -> list[str]:
    """In a sweep job, the keys the sweep varies (``src/sweeps.py`` names those the command line fixes)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    job = HydraConfig.get()
    keys = [override.lstrip("+~").partition("=")[0] for override in job.overrides.task]
    return [key for key in keys if key not in job.job.config.override_dirname.exclude_keys]


class KeepRunIds(L.Callback):
    """Puts each logger's run id (MLflow's) into the checkpoint, so that a resumed run continues the same run."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        ids = {type(logger).__name__: logger.run_id for logger in trainer.loggers if isinstance(logger, MLFlowLogger)}
        if ids:
            checkpoint[RUN_IDS_KEY] = ids


class LogSettings(L.Callback):
    """When training starts: TensorBoard's chart layout, and the compared settings as params for the loggers that show
    them while a run goes on (MLflow, CSV's hparams.yaml); a resumed run has them already (MLflow refuses a param that
    changes, and the Trainer's settings may change on a resume). TensorBoard gets them with the final numbers
    (:func:`log_final`), in its HPARAMS tab."""

    def __init__(self, settings: dict[str, Any], resumed: bool = False) -> None:
        self.settings, self.resumed = settings, resumed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, LightningTensorBoardLogger):
                logger.experiment.add_custom_scalars({"metrics": {title: ["Multiline", tags] for title, tags in CHARTS.items()}})
            elif not self.resumed:
                logger.log_hyperparams(self.settings)


def log_final(loggers: list[Logger], settings: dict[str, Any], results: dict[str, float], step: int) -> None:
    """The run's final numbers (``result/best_val_acc``; the test logged ``result/test_acc``) and, for TensorBoard, the
    run's settings as an HPARAMS session (TensorBoard's ``hparams_pb``): TensorBoard then lays out its table itself,
    the settings that differ between the runs it shows (a sweep's swept keys) ticked first, and the runs' scalars as the
    metrics."""
    for logger in loggers:
        logger.log_metrics({name: value for name, value in results.items() if name != "result/test_acc"}, step=step)
        if isinstance(logger, LightningTensorBoardLogger):
            logger.experiment.file_writer.add_summary(hparams_pb(settings), step)
        logger.finalize("success")


def read_curves(loggers: list[Logger], run_dir: Path) -> Curves:
    """Every metric the run's loggers recorded, as ``{tag: [(step, value), ...]}``: from the run folder's files
    (TensorBoard, CSV), or from MLflow's store when MLflow is the only logger."""
    for logger in loggers:
        if isinstance(logger, LightningTensorBoardLogger | CSVLogger):
            logger.save()  # flush what is buffered: the picture is read back from the files
            return figures.read_curves(run_dir)
    mlflow = next((logger for logger in loggers if isinstance(logger, MLFlowLogger)), None)
    return read_mlflow_curves(mlflow.experiment, mlflow.run_id) if mlflow is not None else {}


def read_mlflow_curves(client: Any, run_id: str) -> Curves:
    """A run's metric histories from MLflow (``client``: an ``MlflowClient``); where a resumed run logged a step again,
    the later value counts."""
    curves = {}
    for key in client.get_run(run_id).data.metrics:
        latest = {m.step: m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)}
        curves[key] = sorted(latest.items())
    return curves


def where_to_look(loggers: list[Logger], run_dir: Path) -> list[str]:
    """Summary lines: where each logger's records are and the command that shows them."""
    lines = []
    for logger in loggers:
        if isinstance(logger, LightningTensorBoardLogger):
            lines.append(f"curves           {command('tensorboard', '--logdir', run_dir)}")
        elif isinstance(logger, CSVLogger):
            lines.append(f"metrics          {command(Path(logger.log_dir) / 'metrics.csv')}")
        elif isinstance(logger, MLFlowLogger):
            uri = logger.experiment.tracking_uri
            if uri.startswith("http"):
                lines.append(f"mlflow run       {uri.rstrip('/')}/#/experiments/{logger.experiment_id}/runs/{logger.run_id}")
            else:
                lines.append(f"mlflow run       {logger.run_id}: {command('mlflow', 'ui', '--backend-store-uri', uri)}")
    return lines
