"""After the test: a confusion-matrix image and a grid of misclassified test digits, as PNG files in the run folder and
in the logger (TensorBoard's IMAGES tab, MLflow's artifacts)."""

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger
from matplotlib import pyplot
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
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        confusion, _ = self.confusion.plot(val=matrix, add_text=True)
        confusion.set_size_inches(7, 7)
        for name, figure in (("confusion_matrix", confusion), ("misclassified", self._grid())):
            figure.savefig(Path(trainer.default_root_dir) / f"{name}.png", dpi=100)
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_figure(f"test/{name}", figure, global_step=trainer.global_step, close=False)
                elif isinstance(logger, MLFlowLogger):
                    logger.experiment.log_figure(logger.run_id, figure, f"test/{name}.png")
        pyplot.close(confusion)  # torchmetrics draws with pyplot, which keeps every figure until closed

    def _grid(self) -> Figure:
        """The misclassified digits tiled into one image (one ``imshow``, not an axes per digit: 10x faster to draw),
        each labelled with what was predicted and what is true."""
        columns, cell = 8, 36  # a 28-pixel digit, a band above it for its label
        rows = max(1, -(-len(self.wrong) // columns))
        mosaic = torch.zeros(rows * cell, columns * cell)
        figure = Figure(figsize=(columns * 1.1, rows * 1.1 + 0.5))
        axis = figure.subplots()
        for index, (image, predicted, true) in enumerate(self.wrong):
            row, column = divmod(index, columns)
            digit = image.squeeze(0)
            mosaic[row * cell + 8 : row * cell + 36, column * cell + 4 : column * cell + 32] = (digit - digit.min()) / (
                digit.max() - digit.min() + 1e-8
            )
            axis.text(
                column * cell + 18, row * cell + 4, f"p{predicted} t{true}", color="red", fontsize=8, ha="center", va="center"
            )
        axis.imshow(mosaic.numpy(), cmap="gray", vmin=0, vmax=1)
        axis.axis("off")
        figure.suptitle("misclassified test digits: p = predicted, t = true")
        figure.tight_layout()
        return figure
