"""Checks on the command line and the composed config, run before any work starts.

Each failure is one line that names the key, the bad value and what is allowed; the entry points print it and exit
with status 2 (no traceback unless HYDRA_FULL_ERROR=1).
"""

import importlib.util
import os
import tempfile
import typing
from collections.abc import Sequence
from pathlib import Path

import torch
from lightning.fabric.connector import _PRECISION_INPUT_STR
from omegaconf import DictConfig

MNIST_TRAIN_IMAGES = 60_000  # the official training file; train and val splits are carved out of it
PRECISIONS = typing.get_args(_PRECISION_INPUT_STR)


class ConfigError(ValueError):
    """A bad setting; its message names the key, the value and what is allowed."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# Config choices that need an optional Hydra plugin: (module it provides, the pyproject extra that installs it).
PLUGINS = {
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/launcher=joblib": ("hydra_plugins.hydra_joblib_launcher", "parallel"),
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
    "hparams_search=optuna": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
}


def check_group_choices(overrides: Sequence[str], conf_dir: Path) -> None:
    """``optimizer=adamm``: name the group's real choices (Hydra's own message spans many lines and exits 1).

    A choice that needs a plugin which is not installed names the extra to install; a search without ``-m``
    (which would quietly train one run with the defaults) says to add it.
    """
    multirun = "-m" in overrides or "--multirun" in overrides
    for override in overrides:
        if override.startswith("hparams_search=") and override != "hparams_search=null" and not multirun:
            raise ConfigError(f"{override}: a search runs many trials and needs multirun; python -m src.train -m {override}")
        if override in PLUGINS and importlib.util.find_spec(PLUGINS[override][0]) is None:
            raise ConfigError(f"{override}: needs a Hydra plugin that is not installed; pip install -e '.[{PLUGINS[override][1]}]'")
        key, assigned, value = override.lstrip("+~").partition("=")
        group = conf_dir / key
        if not assigned or not group.is_dir() or "(" in value or key.startswith("hydra/"):
            # choice(...), range(...), and Hydra's own groups (their choices come from plugins): left to Hydra
            continue
        choices = sorted(path.stem for path in group.glob("*.yaml"))
        for choice in value.split(","):  # multirun: a,b,c
            _require(choice in choices or choice == "null", f"{key}={choice}: no such choice; choose from {', '.join(choices)}")


def _writable_folder(folder: Path) -> bool:
    """Can files be created in ``folder`` (made if missing)? Tried for real: permission bits do not stop root."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_config(cfg: DictConfig) -> None:
    """Reject settings that would fail later, after data was fetched or time was spent."""
    trainer, data = cfg.trainer, cfg.data
    accelerator = str(trainer.accelerator)
    devices = trainer.devices
    if accelerator in ("gpu", "cuda"):
        _require(
            torch.cuda.is_available(),
            f"trainer.accelerator={accelerator}: no CUDA GPU is visible on this machine; "
            "use trainer.accelerator=cpu (or auto, which picks a GPU when there is one)",
        )
        available, unit = torch.cuda.device_count(), "GPU(s)"
    else:
        available, unit = os.cpu_count() or 1, "CPU core(s)"
    if isinstance(devices, int):
        _require(1 <= devices <= available, f"trainer.devices={devices}: {available} {unit} here; use 1 to {available}")
    _require(str(trainer.precision) in PRECISIONS, f"trainer.precision={trainer.precision}: unknown; use one of {', '.join(PRECISIONS)}")
    _require(int(trainer.max_epochs) >= 1 or (int(trainer.max_epochs) == -1 and int(trainer.max_steps) > 0),
             f"trainer.max_epochs={trainer.max_epochs}: must be a whole number >= 1 (or -1 with trainer.max_steps > 0)")
    accumulate = trainer.accumulate_grad_batches
    _require(int(accumulate) >= 1, f"trainer.accumulate_grad_batches={accumulate}: must be a whole number >= 1")
    val_size = int(data.val_size)
    _require(0 < val_size < MNIST_TRAIN_IMAGES,
             f"data.val_size={val_size}: the validation split comes out of {MNIST_TRAIN_IMAGES:,} training images; use 1 to {MNIST_TRAIN_IMAGES - 1}")
    train_size = MNIST_TRAIN_IMAGES - val_size
    _require(1 <= int(data.batch_size) <= train_size,
             f"data.batch_size={data.batch_size}: must be between 1 and the training split's {train_size:,} images")
    _require(int(data.eval_batch_size) >= 1, f"data.eval_batch_size={data.eval_batch_size}: must be a whole number >= 1")
    _require(0 <= int(data.shift) <= 13, f"data.shift={data.shift}: pixels to move a 28x28 image by; use 0 (off) to 13")
    _require(0 <= float(data.rotate) <= 180, f"data.rotate={data.rotate}: the largest turn in degrees; use 0 (off) to 180")
    _require(0 <= float(data.scale) < 1, f"data.scale={data.scale}: the largest resize, as a fraction; use 0 (off) to below 1")
    lr = cfg.optimizer.get("lr")
    _require(lr is not None and float(lr) > 0, f"optimizer.lr={lr}: the learning rate must be > 0")
    raw = Path(data.data_dir) / "MNIST" / "raw"
    _require(_writable_folder(raw), f"data.data_dir={data.data_dir}: cannot write to {raw}; point data.data_dir at a writable folder")
