"""Lightning's EMAWeightAveraging, tested with the weights it validated and checkpointed."""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class AveragedWeights(EMAWeightAveraging):
    """An exponential moving average of the weights, validated and saved as the checkpoint's ``state_dict`` (the
    weights being trained are kept beside them, ``current_model_state``). Lightning's callback, loading a checkpoint
    after ``fit`` in the same process (``trainer.test(ckpt_path=best)``), puts the trained weights back: the test
    would score other weights than validation chose and ``src.eval`` scores. Here only a resume does that."""

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
