"""Draws the run's ``curves.png`` (src/figures.py) after the test, from the logger's records."""

from pathlib import Path

import lightning as L

from src.figures import draw_run, run_name
from src.loggers import read_curves


class CurvesPNG(L.Callback):
    """``<run folder>/curves.png``: accuracy and loss against step, train and val, the test accuracy marked. Drawn from
    what the first logger recorded (TensorBoard, CSV or MLflow); a run without a logger has no curves."""

    def _draw(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero or not trainer.loggers or trainer.sanity_checking or trainer.fast_dev_run:
            return
        run_dir = Path(trainer.default_root_dir)
        draw_run(read_curves(trainer.loggers, run_dir), run_dir / "curves.png", run_name(run_dir))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer)
