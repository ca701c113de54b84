"""The tutorial's curve: accuracy on a batch of test images after every N-th optimizer step."""

import lightning as L
import torch
from pydantic import PositiveInt, validate_call


class TestBatchAccuracy(L.Callback):
    """Logs ``acc/test_batch_tutorial``, the accuracy on the first ``test_images`` test images after optimizer steps 0,
    N, 2N, ... (as the tutorial's ``j`` counts). The tutorial takes the test set's halves in turn and records every 50th
    step: always the first half. A picture of learning speed only: nothing is chosen by it."""

    @validate_call
    def __init__(self, every_n_steps: PositiveInt = 50, test_images: PositiveInt = 5000) -> None:
        self.every_n_steps, self.test_images = every_n_steps, test_images
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.logged_step = -1  # with gradient accumulation several batches end at the same step: measured once

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step - 1  # the step just taken, counted from 0
        if step % self.every_n_steps or not trainer.loggers or step == self.logged_step:
            return
        self.logged_step = step
        if self.batch is None:  # the first test images, where the network is
            test = zip(*trainer.datamodule.test_dataloader(), strict=True)
            self.batch = tuple(torch.cat(part)[: self.test_images].to(pl_module.device) for part in test)
        images, labels = self.batch
        pl_module.eval()  # no dropout
        with torch.no_grad():
            accuracy = (pl_module(images).argmax(dim=1) == labels).float().mean().item()
        pl_module.train()
        for logger in trainer.loggers:  # at the step it belongs to, not at the logger's next interval
            logger.log_metrics({"acc/test_batch_tutorial": accuracy}, step=step)
