"""The tutorial's curve: accuracy on a batch of test images after every N-th optimizer step."""

import lightning as L
import torch

from src.validate import whole_number


class TestBatchAccuracy(L.Callback):
    """Logs ``acc/test_batch_tutorial``: the accuracy on the first ``test_images`` test images, after optimizer steps
    0, N, 2N, ... (counted from 0 as the tutorial's loop counts ``j``), at those steps.

    The source tutorial measures a test batch of 5,000 after every step, taking the two halves of the 10,000 test
    images in turn, and records every 50th: since 50 is even, every recorded point is on the first half, which is
    what this measures (the measurements it does not record change nothing). Only a picture of learning speed: no
    checkpoint or setting is chosen by it (the best checkpoint is chosen on the validation split).
    """

    def __init__(self, every_n_steps: int = 50, test_images: int = 5000) -> None:
        self.every_n_steps = whole_number("every_n_steps", every_n_steps, 1)
        self.test_images = whole_number("test_images", test_images, 1)
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.logged_step = -1  # with gradient accumulation several batches end at the same step: measured once

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step - 1  # the step just taken, counted from 0
        if step % self.every_n_steps or not trainer.loggers or step == self.logged_step:
            return
        self.logged_step = step
        if self.batch is None:
            self.batch = self._first_test_images(trainer, pl_module.device)
        images, labels = self.batch
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            accuracy = (pl_module(images).argmax(dim=1) == labels).float().mean().item()
        pl_module.train(was_training)
        for logger in trainer.loggers:  # at the step it belongs to, not at the logger's next interval
            logger.log_metrics({"acc/test_batch_tutorial": accuracy}, step=step)

    def _first_test_images(self, trainer: L.Trainer, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, count = [], [], 0
        for batch_images, batch_labels in trainer.datamodule.test_dataloader():
            images.append(batch_images.to(device))
            labels.append(batch_labels.to(device))
            count += len(batch_labels)
            if count >= self.test_images:
                break
        return torch.cat(images)[: self.test_images], torch.cat(labels)[: self.test_images]
