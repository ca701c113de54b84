"""Stops a run whose training loss turned NaN or infinite, before a checkpoint of the broken weights is written."""

import os
from typing import Any

import lightning as L
import torch
from pydantic import PositiveInt, validate_call


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Watches the training loss without a host sync per step: each step updates, on the device, the first step whose
    loss was not finite, read every ``check_every_n_steps`` steps and before every checkpoint, so that a run gone bad
    stops, named, and no checkpoint of the broken state replaces the last good one."""

    @validate_call
    def __init__(self, check_every_n_steps: PositiveInt = 50) -> None:
        self.check_every_n_steps = check_every_n_steps
        self.first_bad_step: torch.Tensor | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.first_bad_step = torch.tensor(-1, device=pl_module.device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bad = ~torch.isfinite(outputs["loss"].detach())  # Lightning's outputs of an automatically optimized step
        self.first_bad_step.masked_fill_((self.first_bad_step < 0) & bad, trainer.global_step)
        if trainer.global_step % self.check_every_n_steps == 0:
            self._check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._check(trainer, pl_module)  # raising here leaves the previous checkpoint file untouched

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.first_bad_step is None or int(self.first_bad_step) < 0:
            return
        optimizer = trainer.optimizers[0]
        cause = f"the learning rate ({type(optimizer).__name__}, lr {optimizer.param_groups[0]['lr']:g}) is most likely "
        cause += "too high for this loss and batch size; lower optimizer.lr"
        if trainer.precision == "16-true":  # float16's range: Adam's eps rounds to 0, large activations overflow
            cause = "float16 weights and activations overflow or round to 0 (trainer.precision=16-true); use bf16-mixed"
        # Lightning names a checkpoint before it writes it: the save this check stops has a path but no file.
        paths = {p for c in trainer.checkpoint_callbacks for p in (c.last_model_path, c.best_model_path) if p}
        kept = sorted((path for path in paths if os.path.isfile(path)), key=os.path.getmtime)
        raise NonFiniteLoss(
            f"the training loss became NaN or infinite at optimizer step {int(self.first_bad_step)}: {cause}. Training "
            f"stopped; last good checkpoint: {kept[-1] if kept else 'none was written yet'}"
        )
