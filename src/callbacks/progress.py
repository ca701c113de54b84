"""Progress while training: Lightning's tqdm bar in a terminal, plain lines every N steps elsewhere (CI, log files)."""

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar
from lightning.pytorch.trainer.states import TrainerFn
from pydantic import PositiveInt, validate_call


class LineProgress(ProgressBar):
    """One line every ``every_n_steps`` training batches and at the end of each epoch, and one after each validation,
    with the batch and optimizer step it followed: no carriage returns. Where epochs are shorter than ``every_n_steps``
    batches (``experiment=tutorial``: 14), a line every ``every_n_steps`` optimizer steps instead of one every epoch."""

    def __init__(self, every_n_steps: int = 100) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._epoch_start = 0.0
        self._shown_step = -1
        self._batches_done = 0  # training batches of the current epoch so far, for the validation lines

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, text: str) -> None:
        if self._enabled and self.trainer.is_global_zero:
            print(text, flush=True)

    def _metrics(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str = "") -> str:
        metrics = self.get_metrics(trainer, pl_module)
        shown = {k: v for k, v in metrics.items() if k.endswith(f"/{stage}" if stage else "") and k != "v_num"}
        return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._batches_done = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        # The epoch's size from the trainer: Lightning's total_train_batches shrinks to the steps left when only
        # max_steps is set, down to 0 on the last step.
        done, epoch_size = batch_idx + 1, trainer.num_training_batches
        self._batches_done = done
        steps_left = trainer.max_steps - trainer.global_step if trainer.max_steps and trainer.max_steps > 0 else None
        if epoch_size >= self.every_n_steps:  # also an endless epoch (inf)
            due = done % self.every_n_steps == 0 or done == epoch_size or steps_left == 0
        else:  # short epochs: a line every N optimizer steps of the run
            on_time = trainer.global_step % self.every_n_steps == 0 or steps_left == 0
            due = on_time and trainer.global_step != self._shown_step
        if not due:
            return
        self._shown_step = trainer.global_step
        elapsed = time.perf_counter() - self._epoch_start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = epoch_size - done  # batches to the end of the epoch, or of the run where epochs are short and steps counted
        if steps_left is not None and (epoch_size < self.every_n_steps or steps_left * trainer.accumulate_grad_batches < left):
            left = steps_left * trainer.accumulate_grad_batches
        eta = left / rate if rate > 0 and left != float("inf") else 0.0
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        steps = f" step {trainer.global_step}/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
        self._print(
            f"epoch {trainer.current_epoch + 1}{epochs} batch {done}/{epoch_size}{steps} "
            f"{rate:.1f} it/s eta {eta:.0f}s {self._metrics(trainer, pl_module)}"
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        where = f"epoch {trainer.current_epoch + 1}"
        if trainer.state.fn == TrainerFn.FITTING:  # where in training: several validations an epoch (val_check_interval)
            where += f" batch {self._batches_done}/{trainer.num_training_batches} step {trainer.global_step}"
        self._print(f"{where} validation: {self._metrics(trainer, pl_module, 'val')}")


class Bar(TQDMProgressBar):
    """Lightning's tqdm bar without ``v_num`` (the run folder is in the summary)."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float | dict]:
        return {name: value for name, value in super().get_metrics(trainer, pl_module).items() if name != "v_num"}


@validate_call
def progress_bar(refresh_rate: PositiveInt = 25, every_n_steps: PositiveInt = 100) -> ProgressBar:
    """Lightning's tqdm bar (redrawn every ``refresh_rate`` steps) when stderr is a terminal, else :class:`LineProgress`."""
    if sys.stderr.isatty():
        return Bar(refresh_rate=refresh_rate)
    return LineProgress(every_n_steps=every_n_steps)
