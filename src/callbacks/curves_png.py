"""Draws the run's ``curves.png`` (src/figures.py) when fit ends and again after the test, from the logger's files."""

from pathlib import Path

import lightning as L

from src.figures import draw_run, read_curves


class CurvesPNG(L.Callback):
    """``<run folder>/curves.png``: accuracy and loss against step, train and val, the test accuracy marked."""

    def _draw(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero or trainer.logger is None or trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.logger.experiment.flush()  # the picture is read back from the event files
        run_dir = Path(trainer.logger.log_dir)
        draw_run(read_curves(run_dir), run_dir / "curves.png", str(run_dir))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer)
