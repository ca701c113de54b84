"""Ctrl-C stops training at the end of the current batch, with a checkpoint of that step, as SIGTERM does."""

import os
import signal
from types import FrameType

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException


class Aborted(BaseException):
    """A second Ctrl-C: training stops where it is, saving nothing more. Not a KeyboardInterrupt, which Lightning
    answers with exit status 1 and no word of the checkpoints."""


class StopOnCtrlC(L.Callback):
    """Turns the first Ctrl-C into a SIGTERM to this process: Lightning finishes the batch and raises
    ``SIGTERMException``, the ``last_checkpoint`` callback (``save_on_exception``) saves that step and ``src.train`` prints
    the command that resumes; any other failure saves nothing. A second Ctrl-C, also during that save, raises
    :class:`Aborted` at once (the atomic writer keeps the previous ``last.ckpt`` whole). Installed when fit starts, before
    Lightning notes the handlers its teardown puts back: it outlives that teardown until ``src.train`` reports the stop."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: object = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def stop_after_this_batch(signum: int, frame: FrameType | None) -> None:
            if self.interrupted:
                raise Aborted
            self.interrupted = True
            os.kill(os.getpid(), signal.SIGTERM)

        self._previous = signal.signal(signal.SIGINT, stop_after_this_batch)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):  # Lightning runs the checkpoint callbacks' on_exception last
            for callback in trainer.checkpoint_callbacks:
                callback.save_on_exception = False
