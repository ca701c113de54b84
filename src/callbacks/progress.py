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
    batches (``experiment=tutorial``), a line every ``every_n_steps`` optimizer steps instead of one every epoch."""

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

    def _print(self, where: str, trainer: L.Trainer, pl_module: L.LightningModule, stage: str = "") -> None:
        """``where`` and the progress bar's metrics (those of ``stage`` only, where given)."""
        if self._enabled and trainer.is_global_zero:
            metrics = self.get_metrics(trainer, pl_module)
            shown = [(k, v) for k, v in metrics.items() if k.endswith(f"/{stage}" if stage else "") and k != "v_num"]
            print(" ".join([where, *(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown)]), flush=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._batches_done = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        # The epoch's size from the trainer: Lightning's total_train_batches shrinks to the steps left when only
        # max_steps is set, down to 0 on the last step.
        done, epoch_size, step = batch_idx + 1, trainer.num_training_batches, trainer.global_step
        self._batches_done = done
        steps_left = trainer.max_steps - step if trainer.max_steps > 0 else None
        short_epochs = epoch_size < self.every_n_steps  # not an endless epoch (inf)
        if short_epochs:  # a line every N optimizer steps of the run
            due = (step % self.every_n_steps == 0 or steps_left == 0) and step != self._shown_step
        else:
            due = done % self.every_n_steps == 0 or done == epoch_size or steps_left == 0
        if not due:
            return
        self._shown_step = step
        elapsed = time.perf_counter() - self._epoch_start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = epoch_size - done  # batches to the end of the epoch, or of the run where epochs are short and steps counted
        if steps_left is not None and (short_epochs or steps_left * trainer.accumulate_grad_batches < left):
            left = steps_left * trainer.accumulate_grad_batches
        eta = left / rate if rate > 0 and left != float("inf") else 0.0
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        steps = f" step {step}/{trainer.max_steps}" if steps_left is not None else ""
        where = f"epoch {trainer.current_epoch + 1}{epochs} batch {done}/{epoch_size}{steps} {rate:.1f} it/s eta {eta:.0f}s"
        self._print(where, trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        where = f"epoch {trainer.current_epoch + 1}"
        if trainer.state.fn == TrainerFn.FITTING:  # where in training: several validations an epoch (val_check_interval)
            where += f" batch {self._batches_done}/{trainer.num_training_batches} step {trainer.global_step}"
        self._print(f"{where} validation:", trainer, pl_module, "val")


class Bar(TQDMProgressBar):
    """Lightning's tqdm bar without ``v_num`` (the run folder is in the summary)."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float | dict]:
        return {name: value for name, value in super().get_metrics(trainer, pl_module).items() if name != "v_num"}


@validate_call
def progress_bar(refresh_rate: PositiveInt = 25, every_n_steps: PositiveInt = 100) -> ProgressBar:
    """Lightning's tqdm bar (redrawn every ``refresh_rate`` steps) when stderr is a terminal, else :class:`LineProgress`."""
    return Bar(refresh_rate=refresh_rate) if sys.stderr.isatty() else LineProgress(every_n_steps=every_n_steps)
