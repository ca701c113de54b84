"""What a checked training config builds: the DataModule, the classifier, the callbacks, the Trainer and the loggers.

Each constructor checks its own arguments; what one refuses becomes one line naming its config group (:func:`building`).
All is built before anything is written: the Trainer before the loggers (MLflow creates its store when its logger is
built), a new run's folder claimed last."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import DeviceStatsMonitor, LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.loggers.logger import DummyLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from src import checkpoints
from src.callbacks.save_config import SaveConfig
from src.cli import ConfigError, first_line, resolved, setting
from src.data.sources import DataUnavailable
from src.loggers import LogSettings, build_loggers, choose_run_dir, claim, compared_settings
from src.models.classifier import Classifier

# Lightning's callbacks that refuse to run without a logger: left out with logger=none.
NEED_A_LOGGER = (LearningRateMonitor, DeviceStatsMonitor)
# Trainer switches and the kind of callback each turns off (Lightning refuses such a callback while its switch is off).
TRAINER_SWITCHES = {
    "enable_progress_bar": ProgressBar,
    "enable_model_summary": ModelSummary,
    "enable_checkpointing": ModelCheckpoint,
}


@contextmanager
def building(group: str) -> Iterator[None]:
    """What building ``group`` raised, as one :class:`ConfigError` line: torch's or Lightning's message after the group
    and its settings on the command line (``trainer (trainer.accelerator=gpu): ...``)."""
    try:
        yield
    except (ValueError, TypeError, RuntimeError, ImportError, MisconfigurationException, InstantiationException) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ is not None else error
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"{group}{given_settings(group)}: {first_line(str(cause))}") from error


def given_settings(group: str) -> str:
    """The command line's overrides of ``group``, as ``" (trainer.accelerator=gpu)"``; empty when there are none."""
    given = setting(group, HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return f" ({' '.join(given)})" if given else ""


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    with building("data"):
        return instantiate(cfg.data, _convert_="all")


def build_classifier(cfg: DictConfig) -> Classifier:
    """The classifier, and what torch checks only when the loss is called and the optimizer and schedule are built:
    tried once on throwaway inputs, so that such a setting fails here, named, and not in the middle of a run."""
    with building("model"):
        groups = {group: resolved(cfg[group]) for group in ("model", "loss", "optimizer", "scheduler")}
        model = Classifier(**groups, mixup=cfg.mixup)
    with building("loss"):
        model.loss_fn(torch.zeros(2, model.net.num_classes), torch.tensor([0, 1]))
    with building("optimizer"):
        optimizer = instantiate(cfg.optimizer, params=[torch.nn.Parameter(torch.zeros(1))])
    if cfg.scheduler:
        with building("scheduler"):
            instantiate(cfg.scheduler, optimizer=optimizer, total_steps=100)
    return model


def build_callbacks(cfg: DictConfig, run_dir: Path, has_logger: bool) -> list[L.Callback]:
    """The configured callbacks, less those of a kind a Trainer switch turns off (``trainer.enable_progress_bar=false``:
    the progress bar, ...) and those that log where there is no logger, so that each switch works alone as Lightning
    documents it. Checkpoints go to ``<run_dir>/checkpoints/`` unless a callback names its own ``dirpath``."""
    switched_off = tuple(kind for switch, kind in TRAINER_SWITCHES.items() if cfg.trainer.get(switch) is False)
    switched_off += () if has_logger else NEED_A_LOGGER
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:  # callbacks.<name>: null in a config file leaves it out, as ~callbacks.<name> does
            continue
        with building(f"callbacks.{name}"):
            callback = instantiate(node)
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = str(run_dir / "checkpoints")
        if not isinstance(callback, switched_off):
            callbacks.append(callback)
    return callbacks


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback], run_dir: Path) -> L.Trainer:
    """The Trainer (:func:`build_run` adds the loggers once it has checked its settings), its own files in ``run_dir``."""
    with building("trainer"):
        trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks, default_root_dir=str(run_dir))
    if isinstance(trainer.accelerator, CPUAccelerator):
        # Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (so that asking for CUDA does not start it before a fork); with
        # it, torch 2.14's optimizers look for NVML's library at every step on a machine without a GPU: 0.4 ms a step on
        # the 2-core CPU, more than Adam's update of this network. A CPU run has no CUDA to keep unstarted.
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    return trainer


@dataclass
class Run:
    """Everything one training run needs, built; nothing is in its run folder yet (a new one is claimed, empty)."""

    run_dir: Path
    created: list[Path]  # the folders claimed for a new run (none for a resumed run, a sweep job or a DDP rank > 0)
    checkpoint: Path | None  # resume from here, or None
    start_step: int  # the checkpoint's optimizer step, or 0
    datamodule: L.LightningDataModule
    model: Classifier
    trainer: L.Trainer
    settings: dict[str, Any]  # what tells this run apart from others (src/loggers.py), for the loggers
    notes: list[str]  # what the run says before it trains


def build_run(cfg: DictConfig) -> Run:
    """Read the checkpoints the config names, build everything, fetch the data, claim a new run's folder."""
    config = resolved(cfg)
    checkpoint = checkpoints.resolve(cfg.ckpt_path, Path(cfg.log_dir) / cfg.name)
    state = checkpoints.read(checkpoint) if checkpoint else None
    if state is not None:
        checkpoints.check_resume(state, config)
    start = checkpoints.resolve(cfg.init_from, Path(cfg.log_dir), key="init_from")  # last: the newest of any name
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # The thread count set to what it is: torch then also turns MKL's dynamic threading off, under which one matrix
    # product may run on fewer threads than another and round its sums otherwise. A fixed count is among MKL's
    # conditions for run-to-run reproducibility: a resumed run matches a straight one bit for bit.
    torch.set_num_threads(torch.get_num_threads())
    datamodule = build_datamodule(cfg)
    model = build_classifier(cfg)
    if checkpoint is not None:
        checkpoints.check_same_network(state, model, checkpoint)
    if start is not None:  # a new run that starts from these weights; optimizer, schedule and step start afresh
        weights = checkpoints.read(start, key="init_from")
        checkpoints.check_same_network(weights, model, start, key="init_from")
        model.net.load_state_dict(checkpoints.network_weights(weights["state_dict"]))
    settings = compared_settings(cfg)
    start_step = int(state["global_step"]) if state is not None else 0
    prepared = False
    while True:
        run_dir, new = choose_run_dir(cfg, checkpoint)
        notes = [note] if state is not None and (note := checkpoints.missing_best(state, run_dir / "checkpoints")) else []
        callbacks = build_callbacks(cfg, run_dir, has_logger=bool(cfg.get("logger")))
        callbacks += [SaveConfig(config, resumed=state is not None), LogSettings(settings, resumed=state is not None)]
        trainer = build_trainer(cfg, callbacks, run_dir)
        if not prepared and trainer.local_rank == 0:  # under DDP, rank 0 fetched the data before it started the others
            try:
                datamodule.prepare_data()
            except DataUnavailable as error:
                raise ConfigError(f"data.data_dir={cfg.data.data_dir}: {error}") from error
            prepared = True
        if trainer.fast_dev_run:  # as Lightning does for it: loggers that record nothing, and no run folder
            trainer.loggers = [DummyLogger()] if cfg.get("logger") else []
            return Run(run_dir, [], checkpoint, start_step, datamodule, model, trainer, settings, notes)
        trainer.loggers = build_loggers(cfg.get("logger"), run_dir, state)  # MLflow opens (creates) its store here
        created = claim(run_dir) if new else []
        if created is not None:  # else another run claimed this folder since it was chosen: the next one
            return Run(run_dir, created, checkpoint, start_step, datamodule, model, trainer, settings, notes)
