"""Writes the run's composed config into its run folder once training has really started."""

from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import OmegaConf


class SaveConfig(L.Callback):
    """``<run folder>/<file_name>``: the composed, resolved config, written when training starts and not before, so a
    run that Lightning refuses during its set-up leaves no trace in a run folder (see ``src.train``)."""

    def __init__(self, config: dict[str, Any], file_name: str = "config.yaml") -> None:
        self.config, self.file_name = config, file_name
        self.training_started = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.training_started = True
        if trainer.fast_dev_run:  # a debugging run keeps nothing
            return
        folder = Path(trainer.default_root_dir)  # the run folder (src/loggers.py)
        if trainer.is_global_zero:
            folder.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(self.config), folder / self.file_name)
