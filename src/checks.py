"""Checks of the training config that no single class can make: against this machine, and across keys.

Each value is checked where it is used (the DataModule, the network, the classifier, Lightning's Trainer); what is
left here are rules that add a fix the user can act on. Each failure is a :class:`ConfigError` of one line.
"""

import os
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig

from src.cli import ConfigError


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


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
    trainer = cfg.trainer
    accelerator = str(trainer.accelerator)
    if accelerator in ("gpu", "cuda"):
        _require(
            torch.cuda.is_available(),
            f"trainer.accelerator={accelerator}: no CUDA GPU is visible on this machine; "
            "use trainer.accelerator=cpu (or auto, which picks a GPU when there is one)",
        )
        available, unit = torch.cuda.device_count(), "GPU(s)"
    else:
        available, unit = os.cpu_count() or 1, "CPU core(s)"
    devices = trainer.devices
    if isinstance(devices, int) and not isinstance(devices, bool):  # Lightning would start that many processes
        _require(1 <= devices <= available, f"trainer.devices={devices}: {available} {unit} here; use 1 to {available}")
    max_epochs, max_steps = trainer.max_epochs, trainer.get("max_steps", -1)
    _require(
        max_epochs == -1 and isinstance(max_steps, int) and max_steps > 0 or isinstance(max_epochs, int) and max_epochs >= 1,
        f"trainer.max_epochs={max_epochs}: must be a whole number >= 1 (or -1 with trainer.max_steps > 0)",
    )
    accumulate = trainer.accumulate_grad_batches  # Lightning itself only notices during fit
    _require(
        isinstance(accumulate, int) and accumulate >= 1,
        f"trainer.accumulate_grad_batches={accumulate}: must be a whole number >= 1",
    )
    raw = Path(cfg.data.data_dir) / "MNIST" / "raw"
    _require(
        _writable_folder(raw),
        f"data.data_dir={cfg.data.data_dir}: cannot write to {raw}; point data.data_dir at a writable folder",
    )
