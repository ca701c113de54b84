"""The run folder, and the loggers (``conf/logger/``) that write into it.

Every run has one folder: ``<log_dir>/<name>/version_<N>/`` for a new run, the job folder in a sweep, the checkpoint's
own folder when a run is resumed. ``config.yaml``, ``checkpoints/`` and ``curves.png`` go there whatever the logger;
TensorBoard's event files go there too, the CSV logger writes ``csv/version_<K>/metrics.csv`` inside it (one file per
start: Lightning's CSV logger would empty an existing one), and MLflow keeps its own store (a local SQLite file under
``log_dir``, or a server) with a run named after the folder. A resumed run continues its MLflow run: the run id is kept
in the checkpoint.
"""

import importlib.util
import inspect
import os
import re
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_object, instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard.summary import hparams

from src import figures
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


# Rank 0 chooses the run folder and leaves it here for the processes it starts (DDP ranks 1..N-1).
RUN_DIR_VARIABLE = "MNIST_LIGHTNING_RUN_DIR"
RUN_IDS_KEY = "logger_run_ids"  # in a checkpoint: {"MLFlowLogger": run id}


def logger_configs(cfg: DictConfig) -> dict[str, DictConfig]:
    """The configured loggers by name: ``logger=tensorboard`` is one (named ``logger``), ``logger=many`` several
    (``logger.tensorboard``, ``logger.csv``, ...), ``logger=none`` none."""
    node = cfg.get("logger")
    if not node:
        return {}
    if "_target_" in node:
        return {"logger": node}
    return {f"logger.{name}": entry for name, entry in node.items() if entry}


def next_version(runs: Path) -> Path:
    """``runs/version_<N>`` with N one more than the largest there (0 in a new folder), as Lightning's loggers count."""
    numbers = [int(p.name[8:]) for p in runs.glob("version_*") if p.name[8:].isdigit()] if runs.is_dir() else []
    return runs / f"version_{max(numbers, default=-1) + 1}"


def choose_run_dir(cfg: DictConfig, checkpoint: Path | None) -> Path:
    """The folder this run writes to (nothing is created here)."""
    if checkpoint is not None and checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent  # resume: the checkpoint's own run folder
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().runtime.output_dir)
    if os.environ.get("LOCAL_RANK", "0") != "0" and RUN_DIR_VARIABLE in os.environ:
        return Path(os.environ[RUN_DIR_VARIABLE])  # a DDP rank started by rank 0: rank 0's choice
    run_dir = next_version(Path(cfg.log_dir) / cfg.name)
    os.environ[RUN_DIR_VARIABLE] = str(run_dir)
    return run_dir


def build_loggers(cfg: DictConfig, run_dir: Path, state: dict[str, Any] | None) -> list[Logger]:
    """Each configured logger, told the run folder (and, resuming from ``state``, where to continue)."""
    loggers = []
    resumed_ids = state.get(RUN_IDS_KEY, {}) if state else {}
    for node in logger_configs(cfg).values():
        target = get_object(node._target_)
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
            if node.get("run_name") is None:
                given["run_name"] = f"{run_dir.parent.name}/{run_dir.name}"
            if node.get("run_id") is None and resumed_ids.get(target.__name__):
                given["run_id"] = resumed_ids[target.__name__]
        loggers.append(instantiate(node, **given))
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


def _setting(cfg: DictConfig, key: str) -> Any:
    """The value of ``key``, or the default of the argument it sets when its file leaves it out (AdamW's weight decay)."""
    value = OmegaConf.select(cfg, key, default=None)
    group, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, group) if group else None
    if value is None and isinstance(node, DictConfig) and "_target_" in node:
        parameter = inspect.signature(get_object(node._target_)).parameters.get(name)
        value = parameter.default if parameter is not None and parameter.default is not inspect.Parameter.empty else None
    return value if isinstance(value, bool | int | float | str) else str(value)


def _choice(cfg: DictConfig, group: str) -> str:
    """The group's chosen file (``adamw``), from Hydra when it runs, else the name of what the group builds."""
    if HydraConfig.initialized() and group in HydraConfig.get().runtime.choices:
        return str(HydraConfig.get().runtime.choices[group])
    node = cfg.get(group)
    return node._target_.rpartition(".")[2] if node and "_target_" in node else "none"


def compared_settings(cfg: DictConfig) -> dict[str, Any]:
    """The flat set of settings that tells runs apart: optimizer, lr, schedule, loss, widths, ... and in a sweep every
    swept key (named as on the command line)."""
    settings: dict[str, Any] = {group: _choice(cfg, group) for group in ("optimizer", "scheduler", "loss")}
    settings["hidden"] = "x".join(str(width) for width in cfg.model.hidden)
    settings |= {name: _setting(cfg, key) for name, key in COMPARED.items()}
    for key in swept_keys():
        if key not in settings:  # a group (experiment=fast,best) by its choice, a key by its value
            choices = HydraConfig.get().runtime.choices
            settings[key] = str(choices[key]) if key in choices else _setting(cfg, COMPARED.get(key, key))
    return settings


def swept_keys() -> list[str]:
    """In a sweep, the keys it sweeps, named as :func:`compared_settings` names them (``optimizer.lr`` as ``lr``)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    job, names = HydraConfig.get(), {key: name for name, key in COMPARED.items()}
    keys = [override.lstrip("+~").partition("=")[0] for override in job.overrides.task]
    return [names.get(key, key) for key in keys if key not in job.job.config.override_dirname.exclude_keys]


class KeepRunIds(L.Callback):
    """Puts each logger's run id (MLflow's) into the checkpoint, so that a resumed run continues the same run."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        ids = {type(logger).__name__: logger.run_id for logger in trainer.loggers if isinstance(logger, MLFlowLogger)}
        if ids:
            checkpoint[RUN_IDS_KEY] = ids


class LogSettings(L.Callback):
    """When training starts: the compared settings as params for the loggers that show them while a run goes on (MLflow,
    CSV's hparams.yaml; a resumed MLflow run is given them again, and MLflow refuses any that changed, see
    :func:`changed_params`), and TensorBoard's chart layout. TensorBoard gets the settings with the final numbers
    (:func:`log_final`), in its HPARAMS tab."""

    def __init__(self, settings: dict[str, Any], resumed: bool = False) -> None:
        # A resume may train longer: max_epochs keeps the value the run was started with in MLflow.
        self.settings = {k: v for k, v in settings.items() if k != "max_epochs"} if resumed else settings

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, LightningTensorBoardLogger):
                layout = {"metrics": {title: ["Multiline", tags] for title, tags in CHARTS.items()}}
                logger.experiment.add_custom_scalars(layout)
            else:
                logger.log_hyperparams(self.settings)


def log_final(loggers: list[Logger], settings: dict[str, Any], results: dict[str, float], step: int) -> None:
    """The run's final numbers (``result/test_acc``, ``result/best_val_acc``), with its settings in the HPARAMS tab."""
    for logger in loggers:
        if isinstance(logger, LightningTensorBoardLogger):
            write_hparams(logger, settings, results, step)
        else:  # result/test_acc is logged already
            logger.log_metrics({name: value for name, value in results.items() if name != "result/test_acc"}, step=step)
        logger.finalize("success")


# The settings TensorBoard's HPARAMS tab shows first when nothing is swept (it shows 5 at first).
SHOWN_FIRST = ("optimizer", "lr", "scheduler", "loss", "hidden")


def write_hparams(logger: LightningTensorBoardLogger, settings: dict[str, Any], results: dict[str, float], step: int) -> None:
    """TensorBoard's HPARAMS entry of the run: its settings and final numbers (Lightning's ``log_hyperparams``
    writes the same three summaries). The HPARAMS tab ticks the first 5 settings that "differ", in name order; so the
    swept keys (in a sweep) or :data:`SHOWN_FIRST` are marked ``differs``, to be the columns a reader sees first."""
    experiment, start, end = hparams(settings, results)
    content = experiment.value[0].metadata.plugin_data
    data = plugin_data_pb2.HParamsPluginData.FromString(content.content)
    first = set(swept_keys()) or set(SHOWN_FIRST)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in first
    content.content = data.SerializeToString()
    logger.log_metrics(results, step)  # writes result/test_acc again, same value: the columns read the scalars
    for summary in (experiment, start, end):
        logger.experiment.file_writer.add_summary(summary, step)


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


def changed_params(error: BaseException) -> str | None:
    """MLflow's refusal to change a param of the run being resumed, as ``optimizer/lr was 0.001, now 0.01``; None for
    any other error."""
    if importlib.util.find_spec("mlflow") is None:
        return None
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException) or "Changing param values is not allowed" not in str(error):
        return None
    changes = re.findall(r"'key': '([^']+)', 'old_value': '([^']*)', 'new_value': '([^']*)'", str(error))
    return ", ".join(f"{key} was {old}, now {new}" for key, old, new in changes) or "a param changed"


def describe(loggers: list[Logger], run_dir: Path) -> list[str]:
    """Summary lines: where each logger's records are and how to look at them."""
    lines = []
    for logger in loggers:
        if isinstance(logger, LightningTensorBoardLogger):
            lines.append(f"curves           tensorboard --logdir {run_dir}")
        elif isinstance(logger, CSVLogger):
            lines.append(f"metrics          {Path(logger.log_dir) / 'metrics.csv'}")
        elif isinstance(logger, MLFlowLogger):
            uri = logger.experiment.tracking_uri
            if uri.startswith("http"):
                lines.append(f"mlflow run       {uri.rstrip('/')}/#/experiments/{logger.experiment_id}/runs/{logger.run_id}")
            else:
                lines.append(f"mlflow run       {logger.run_id}: mlflow ui --backend-store-uri {uri}")
    return lines
