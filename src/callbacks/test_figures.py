"""After the test: a confusion-matrix image and a grid of misclassified test digits, in TensorBoard's IMAGES tab."""

from typing import Any

import lightning as L
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from src.validate import whole_number


class TestFigures(L.Callback):
    """Collects the test predictions (``test_step`` returns them) and logs two figures at the end of the test.

    ``test/confusion_matrix``: counts of true (rows) against predicted (columns) classes, by torchmetrics.
    ``test/misclassified``: up to ``max_digits`` wrongly classified test digits, each titled predicted/true
    (under DDP, from rank 0's shard of the test set).
    """

    def __init__(self, max_digits: int = 64) -> None:
        self.max_digits = whole_number("max_digits", max_digits, 0)
        self.confusion: MulticlassConfusionMatrix | None = None
        self.wrong: list[tuple[Tensor, int, int]] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.confusion = MulticlassConfusionMatrix(pl_module.net.num_classes).to(pl_module.device)
        self.wrong = []

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        images, targets = batch
        self.confusion.update(outputs, targets)
        if len(self.wrong) < self.max_digits:
            missed = (outputs != targets).nonzero().flatten()[: self.max_digits - len(self.wrong)].tolist()
            self.wrong += [(images[i].detach().float().cpu().clone(), int(outputs[i]), int(targets[i])) for i in missed]

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = self.confusion.compute()  # on every rank: under DDP this gathers all ranks' counts
        writer = getattr(trainer.logger, "experiment", None)
        if not trainer.is_global_zero or not hasattr(writer, "add_figure"):
            return
        step = trainer.global_step
        figure, _ = self.confusion.plot(val=matrix, add_text=True)
        figure.set_size_inches(7, 7)
        writer.add_figure("test/confusion_matrix", figure, global_step=step, close=True)
        writer.add_figure("test/misclassified", self._grid(), global_step=step, close=True)

    def _grid(self) -> Figure:
        columns = 8
        rows = max(1, -(-len(self.wrong) // columns))
        figure = Figure(figsize=(columns * 1.2, rows * 1.4))
        axes = figure.subplots(rows, columns, squeeze=False)
        for axis in axes.flat:
            axis.axis("off")
        for axis, (image, predicted, true) in zip(axes.flat, self.wrong, strict=False):
            axis.imshow(image.squeeze(0).numpy(), cmap="gray")
            axis.set_title(f"p{predicted} t{true}", fontsize=9, color="red")
        figure.suptitle("misclassified test digits: p = predicted, t = true")
        figure.tight_layout()
        return figure
