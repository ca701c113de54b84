"""The tutorial's curve: accuracy on one batch of test images, recorded every N optimizer steps."""

import lightning as L
import torch

from src.validate import whole_number


class TestBatchAccuracy(L.Callback):
    """Logs ``acc/test_batch_tutorial``: the accuracy on the first batch of the test loader, every ``every_n_steps``.

    The source tutorial records this to plot how fast its network learns. It is only a picture of learning speed: no
    checkpoint or setting is chosen by it (the best checkpoint is chosen on the validation split).
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = whole_number("every_n_steps", every_n_steps, 1)
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        if self.batch is None:
            images, labels = next(iter(trainer.datamodule.test_dataloader()))
            self.batch = images.to(pl_module.device), labels.to(pl_module.device)
        images, labels = self.batch
        pl_module.eval()
        with torch.no_grad():
            accuracy = (pl_module(images).argmax(dim=1) == labels).float().mean()
        pl_module.train()
        pl_module.log("acc/test_batch_tutorial", accuracy)
