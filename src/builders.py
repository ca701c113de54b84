"""What the training and evaluation entry points build from a composed config: the DataModule, the classifier, the
callbacks and the Trainer, each error named by the setting it concerns; plain numbers and plain config copies.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import DeviceStatsMonitor, LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from src.checkpoints import CheckpointError
from src.cli import ConfigError, first_line
from src.models.classifier import Classifier
from src.validate import named_setting

# Lightning's callbacks that refuse to run without a logger: left out with logger=none.
NEED_A_LOGGER = (LearningRateMonitor, DeviceStatsMonitor)

# Trainer switches and the kind of callback each turns off (Lightning refuses such a callback while its switch is off).
TRAINER_SWITCHES = {
    "enable_progress_bar": ProgressBar,
    "enable_model_summary": ModelSummary,
    "enable_checkpointing": ModelCheckpoint,
}


@contextmanager
def errors_named(group: str, settings: Mapping[str, Any]) -> Iterator[None]:
    """Turn what building ``group`` raised into one :class:`ConfigError` line naming the setting.

    This project's classes name their own argument (``shift=14: ...`` becomes ``data.shift=14: ...``); a library's
    message (Lightning, torch) is named by the setting it mentions or quotes. Hydra's ``instantiate`` wraps what the
    target raised; the target's own exception is its ``__cause__``.
    """
    try:
        yield
    except (ValueError, TypeError, InstantiationException, MisconfigurationException) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ is not None else error
        if isinstance(cause, CheckpointError | ConfigError):
            raise cause from None
        raise ConfigError(named_setting(group, settings, first_line(str(cause)))) from error


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    with errors_named("data", plain(cfg.data)):
        return instantiate(cfg.data, _convert_="all")


def plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node: what goes into hyper-parameters and checkpoints."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_classifier(cfg: DictConfig) -> Classifier:
    try:
        return Classifier(
            model=plain(cfg.model), loss=plain(cfg.loss), optimizer=plain(cfg.optimizer), scheduler=plain(cfg.scheduler)
        )
    except ValueError as error:  # already named from the top: model.hidden=..., optimizer.lr=...
        raise ConfigError(first_line(str(error))) from error


def build_callbacks(cfg: DictConfig, run_dir: Path | None = None, has_logger: bool = True) -> list[L.Callback]:
    """The configured callbacks, less those of a kind a Trainer switch turns off (``trainer.enable_progress_bar=false``
    drops the progress bar, and so on) and those that log when there is no logger, so that each of Lightning's switches
    (and ``logger=none``) works alone, as Lightning documents it. Checkpoints go to ``<run_dir>/checkpoints/`` unless a
    callback names its own ``dirpath``."""
    switched_off = tuple(kind for switch, kind in TRAINER_SWITCHES.items() if cfg.trainer.get(switch) is False)
    switched_off += () if has_logger else NEED_A_LOGGER
    callbacks = []
    for name, callback in (cfg.get("callbacks") or {}).items():
        if callback is None:  # callbacks.<name>=null in a config file: left out, as ~callbacks.<name> on a command line
            continue
        with errors_named(f"callbacks.{name}", plain(callback)):
            built = instantiate(callback)
        if isinstance(built, ModelCheckpoint) and built.dirpath is None and run_dir is not None:
            built.dirpath = str(run_dir / "checkpoints")
        if not isinstance(built, switched_off):
            callbacks.append(built)
    return callbacks


def build_trainer(cfg: DictConfig, loggers: list[Any], callbacks: list[L.Callback], run_dir: Path | None = None) -> L.Trainer:
    """The Trainer with these loggers (none: Lightning's ``logger=False``) and callbacks, writing what Lightning writes
    itself (a profiler's report, say) into ``run_dir``; Lightning's own argument errors name the setting."""
    root = {"default_root_dir": str(run_dir)} if run_dir is not None else {}
    with errors_named("trainer", plain(cfg.trainer)):
        return instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, **root)


def numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain Python floats copied out of (possibly live) tensors, for summaries and records.

    ``float()`` copies the value; a ``tensor.numpy()`` view would share memory and change as training goes on,
    which the tutorial warns about.
    """
    return {name: float(value.detach() if hasattr(value, "detach") else value) for name, value in metrics.items()}
