"""The run's composed config: written into its run folder when training starts, and kept in each checkpoint."""

from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import OmegaConf

from src.checkpoints import CONFIG_KEY


class SaveConfig(L.Callback):
    """``<run folder>/config.yaml`` (``config.resumed.yaml`` for a resumed run): the composed, resolved config, written
    when training starts. Each checkpoint holds it too, so that a resume can be held to the run's own settings
    (``src/checkpoints.py``)."""

    def __init__(self, config: dict[str, Any], resumed: bool = False) -> None:
        self.config, self.file_name = config, "config.resumed.yaml" if resumed else "config.yaml"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.fast_dev_run:  # a debugging run keeps nothing
            OmegaConf.save(OmegaConf.create(self.config), Path(trainer.default_root_dir) / self.file_name)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config
