"""Checks on the composed config, run before any work starts: each failure is one line naming key, value and fix."""

import torch
from omegaconf import DictConfig


class ConfigError(ValueError):
    """A bad setting; its message names the key, the value and what is allowed. The entry point exits with 2."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_config(cfg: DictConfig) -> None:
    """Reject settings that would fail later, after data was fetched or time was spent."""
    trainer, data = cfg.trainer, cfg.data
    accelerator = str(trainer.accelerator)
    if accelerator in ("gpu", "cuda"):
        _require(
            torch.cuda.is_available(),
            f"trainer.accelerator={accelerator}: no CUDA GPU is visible on this machine; "
            "use trainer.accelerator=cpu (or auto, which picks a GPU when there is one)",
        )
    devices = trainer.devices
    if isinstance(devices, int) and accelerator in ("gpu", "cuda"):
        available = torch.cuda.device_count()
        _require(devices <= available, f"trainer.devices={devices}: only {available} GPU(s) here; use trainer.devices<={available}")
    _require(int(data.batch_size) >= 1, f"data.batch_size={data.batch_size}: must be a whole number >= 1")
    _require(int(data.eval_batch_size) >= 1, f"data.eval_batch_size={data.eval_batch_size}: must be a whole number >= 1")
    accumulate = trainer.accumulate_grad_batches
    _require(int(accumulate) >= 1, f"trainer.accumulate_grad_batches={accumulate}: must be a whole number >= 1")
    _require(int(trainer.max_epochs) >= 1, f"trainer.max_epochs={trainer.max_epochs}: must be a whole number >= 1")
    lr = cfg.optimizer.get("lr")
    _require(lr is not None and float(lr) > 0, f"optimizer.lr={lr}: the learning rate must be > 0")
