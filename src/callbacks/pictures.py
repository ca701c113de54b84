"""The pictures a run draws after its test (``conf/callbacks/pictures.yaml``; drawn by ``src/figures.py``): the curves,
a confusion matrix and the misclassified test digits, as PNG files in the run folder and in the logger."""

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger  # src.loggers' is a subclass
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from pydantic import NonNegativeInt, validate_call
from torchmetrics.classification import MulticlassConfusionMatrix

from src.figures import draw_confusion, draw_misclassified, draw_run, read_curves


class CurvesPNG(L.Callback):
    """``<run folder>/curves.png``: accuracy and loss against step, train and val, the test accuracy marked, drawn from
    the files TensorBoard or the CSV logger wrote (MLflow draws its own; without a logger, no curves)."""

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        kept = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger | CSVLogger)]  # not MLflow's
        if trainer.is_global_zero and kept and not trainer.fast_dev_run:
            kept[0].save()  # flushed: the picture is read back from the files
            run_dir = Path(trainer.default_root_dir)
            draw_run(read_curves(run_dir), run_dir / "curves.png", f"{run_dir.parent.name}/{run_dir.name}")


class TestFigures(L.Callback):
    """Collects the test predictions (``test_step`` returns them) and logs two figures at the end of the test:
    ``confusion_matrix``, true (rows) against predicted (columns), counted by torchmetrics, the errors coloured on their
    own scale; ``misclassified``, up to ``max_digits`` wrong test digits labelled true→predicted (under DDP, rank 0's)."""

    @validate_call
    def __init__(self, max_digits: NonNegativeInt = 24) -> None:
        self.max_digits = max_digits
        self.confusion: MulticlassConfusionMatrix | None = None
        self.wrong: list[tuple[np.ndarray, int, int]] = []  # (image, predicted, true)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.confusion = MulticlassConfusionMatrix(pl_module.net.num_classes).to(pl_module.device)
        self.wrong = []

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        images, targets = batch
        self.confusion.update(outputs, targets)
        missed = (outputs != targets).nonzero().flatten()[: self.max_digits - len(self.wrong)].tolist()
        self.wrong += [(images[i, 0].float().cpu().numpy().copy(), int(outputs[i]), int(targets[i])) for i in missed]

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = self.confusion.compute().cpu().numpy()  # on every rank: under DDP this gathers all ranks' counts
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        data_set = trainer.datamodule.data_set
        figures = {
            "confusion_matrix": draw_confusion(counts, data_set),
            "misclassified": draw_misclassified(self.wrong, int(counts.sum() - counts.trace()), data_set),
        }
        for name, figure in figures.items():
            canvas = FigureCanvasAgg(figure)  # drawn once, an H x W x 3 uint8 image for the PNG and every logger
            canvas.draw()
            image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
            Image.fromarray(image).save(Path(trainer.default_root_dir) / f"{name}.png")
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(f"test/{name}", image, global_step=trainer.global_step, dataformats="HWC")
                elif isinstance(logger, MLFlowLogger):
                    logger.experiment.log_image(logger.run_id, image, artifact_file=f"test/{name}.png")
