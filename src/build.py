"""What a checked run (:class:`src.config.RunSpec`) builds: the DataModule, the classifier, the callbacks, the Trainer and
the loggers, the data fetched and verified; then a new run's folder is claimed, last. Nothing is checked here: what
torch's or Lightning's constructors still refuse becomes one line naming the group (:func:`src.config.refused`)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import DeviceStatsMonitor, LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.loggers.logger import DummyLogger

from src import runs
from src.callbacks.save_config import SaveConfig
from src.cli import ConfigError
from src.config import RunSpec, refused
from src.data.sources import DataUnavailable
from src.loggers import LogSettings, build_loggers
from src.models.classifier import Classifier

# Lightning's callbacks that refuse to run without a logger: left out with logger=none.
NEED_A_LOGGER = (LearningRateMonitor, DeviceStatsMonitor)
# Trainer switches and the kind of callback each turns off (Lightning refuses such a callback while its switch is off).
TRAINER_SWITCHES = {
    "enable_progress_bar": ProgressBar,
    "enable_model_summary": ModelSummary,
    "enable_checkpointing": ModelCheckpoint,
}


@dataclass
class Run:
    """Everything one training run needs, built; nothing is in its run folder yet (a new one is claimed, empty)."""

    spec: RunSpec
    run_dir: Path
    datamodule: L.LightningDataModule
    model: Classifier
    trainer: L.Trainer


def build(spec: RunSpec) -> Run:
    config, overrides = spec.config, spec.context.overrides
    L.seed_everything(config["seed"], workers=True, verbose=False)
    datamodule = instantiate(config["data"], _convert_="all")
    model = build_classifier(config)
    if spec.start.init_weights is not None:  # a new run from these weights; optimizer, schedule and step start afresh
        model.net.load_state_dict(spec.start.init_weights)
    run_dir, prepared = spec.run_dir, False
    while True:
        callbacks = build_callbacks(config, run_dir, overrides)
        resumed = spec.start.state is not None
        callbacks += [SaveConfig(config, resumed=resumed), LogSettings(spec.settings, resumed=resumed)]
        trainer = build_trainer(config, callbacks, run_dir, overrides)
        if not prepared and trainer.local_rank == 0:  # under DDP, rank 0 fetches the data before it starts the others
            try:
                datamodule.prepare_data()
            except DataUnavailable as error:
                raise ConfigError(f"data.data_dir={config['data']['data_dir']}: {error}") from error
            prepared = True
        if trainer.fast_dev_run:  # as Lightning does for it: loggers that record nothing, and no run folder
            trainer.loggers = [DummyLogger()] if config.get("logger") else []
            return Run(spec, run_dir, datamodule, model, trainer)
        with refused("logger", overrides):
            trainer.loggers = build_loggers(spec.loggers.values(), run_dir, spec.start.state)  # MLflow creates its store here
        if not spec.new_folder or runs.claim(run_dir):
            return Run(spec, run_dir, datamodule, model, trainer)
        run_dir = runs.next_version(run_dir.parent)  # another run claimed this folder since it was chosen


def build_classifier(config: dict[str, Any]) -> Classifier:
    return Classifier(**{group: config[group] for group in ("model", "loss", "optimizer", "scheduler")}, mixup=config["mixup"])


def build_trainer(
    config: dict[str, Any], callbacks: list[L.Callback], run_dir: Path, overrides: tuple[str, ...] = ()
) -> L.Trainer:
    """The Trainer, its own files in ``run_dir``; :func:`build` adds the loggers."""
    with refused("trainer", overrides):
        return instantiate(config["trainer"], logger=False, callbacks=callbacks, default_root_dir=str(run_dir))


def build_callbacks(config: dict[str, Any], run_dir: Path, overrides: tuple[str, ...] = ()) -> list[L.Callback]:
    """The configured callbacks, less those of a kind a Trainer switch turns off (``trainer.enable_progress_bar=false``:
    the progress bar, ...) and those that log where there is no logger, so that each switch works alone as Lightning
    documents it. Checkpoints go to ``<run_dir>/checkpoints/`` unless a callback names its own ``dirpath``."""
    switched_off = tuple(kind for switch, kind in TRAINER_SWITCHES.items() if config["trainer"].get(switch) is False)
    switched_off += () if config.get("logger") else NEED_A_LOGGER
    callbacks = []
    for name, node in (config.get("callbacks") or {}).items():
        if node is None:  # callbacks.<name>: null in a config file leaves it out, as ~callbacks.<name> does
            continue
        with refused(f"callbacks.{name}", overrides):
            callback = instantiate(node)
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = str(run_dir / "checkpoints")
        if not isinstance(callback, switched_off):
            callbacks.append(callback)
    return callbacks
