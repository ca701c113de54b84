"""Ctrl-C stops training at the end of the current batch, with a checkpoint of that step, as SIGTERM does; so does the
signal a SLURM job gets ahead of its time limit or a preemption, before the job is requeued."""

import functools
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

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
    Lightning notes the handlers its teardown puts back: it outlives that teardown until ``src.train`` reports the stop.

    In a job of ``hydra/launcher=slurm``, submitit's handler of SIGUSR2 (what the launcher asks SLURM to send
    ``signal_delay_s`` ahead of the time limit, and what a preemption sends) would requeue the job in the middle of a
    step, unsaved: that step is finished and saved first, and :attr:`requeue` is then the handler to call."""

    def __init__(self) -> None:
        self.interrupted = False
        self.requeue: Callable[[], None] | None = None
        self._previous: dict[int, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def stop_after_this_batch(signum: int, frame: FrameType | None) -> None:
            if self.interrupted:
                raise Aborted
            self.interrupted = True
            os.kill(os.getpid(), signal.SIGTERM)

        def stop_then_requeue(signum: int, frame: FrameType | None) -> None:
            self.requeue = functools.partial(requeue, signum, None)
            os.kill(os.getpid(), signal.SIGTERM)

        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, stop_after_this_batch)
        if callable(requeue := signal.getsignal(signal.SIGUSR2)):  # submitit's, in a SLURM job
            self._previous[signal.SIGUSR2] = signal.signal(signal.SIGUSR2, stop_then_requeue)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):  # Lightning runs the checkpoint callbacks' on_exception last
            for callback in trainer.checkpoint_callbacks:
                callback.save_on_exception = False
