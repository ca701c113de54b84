"""The LightningModule: the tutorial's network plus a configurable loss, optimizer, schedule and metrics."""

import random
from collections.abc import Sequence
from functools import partial
from typing import Any

import lightning as L
import torch
from hydra.utils import get_method, instantiate
from torch import Tensor
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy


def accumulation_scales(batch_sizes: Sequence[int], accumulate: int) -> list[float]:
    """Per-batch factors that turn a per-sample loss *sum* into the mean over its whole accumulation window. Lightning
    divides every loss by ``accumulate``, also in an epoch's last window, which may hold fewer (and shorter) batches:
    ``sum * accumulate / window_samples`` makes each step's gradient the mean over exactly the samples it saw."""
    scales: list[float] = []
    for start in range(0, len(batch_sizes), accumulate):
        window = batch_sizes[start : start + accumulate]
        scales += [accumulate / sum(window)] * len(window)
    return scales


class Classifier(L.LightningModule):
    """Trains a network built from ``model`` with a loss, optimizer and optional schedule, all plain config (dicts with
    a Hydra ``_target_``), so checkpoints load with ``weights_only=True``. The optimizer and schedule are built in
    ``configure_optimizers``, the only place that knows the parameters and the run's length. ``mixup`` > 0 trains on
    mixup's blends (Zhang et al. 2018), by shares drawn from Beta(mixup, mixup): :meth:`mixup_step`."""

    def __init__(
        self,
        model: dict[str, Any],
        loss: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        mixup: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the loggers get a curated set (src/loggers.py)
        self.net = instantiate(model, _convert_="all")
        # A plain partial: Hydra 1.3.8's partial objects re-run its target checks on every call, costlier than a training step.
        arguments = {key: value for key, value in loss.items() if not key.startswith("_")}
        self.loss_fn = partial(get_method(loss["_target_"]), **arguments)
        # nan_strategy="disable": a NaN shows as NaN, with no per-step NaN check (a host sync); validate_args=False: the
        # argument checks sync with the host on every call, which costs more than the step.
        self.train_acc = MeanMetric(nan_strategy="disable")  # of right answers (0/1): cheaper than stat scores (docs/speed.md)
        self.train_loss = MeanMetric(nan_strategy="disable")
        for window in (self.train_acc, self.train_loss):  # kept in checkpoints: a resumed run logs what a straight one logs
            window.persistent(True)
        self.val_acc = MulticlassAccuracy(self.net.num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(self.net.num_classes, average="micro", validate_args=False)
        self.val_loss = MeanMetric(nan_strategy="disable")
        self.test_loss = MeanMetric(nan_strategy="disable")
        self._loss_scales: list[float] = []
        self._logged_at = -1  # the optimizer step whose train metrics were logged last
        self._schedule_start = 0  # the step where the current leg of the schedule began (> 0 once trained longer)

    @property
    def example_input_array(self) -> Tensor:
        """Lets the model summary show each layer's shapes, in the network's dtype (float64 under 64-true)."""
        return torch.zeros(1, 1, 28, 28, dtype=self.dtype)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def on_train_start(self) -> None:
        self.on_train_epoch_start()  # a run resumed in the middle of an epoch does not get it for that epoch

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader  # a DataLoader or DeviceBatches: full batches, then maybe a short one
        full, rest = divmod(len(loader.sampler), loader.batch_size)
        sizes = [loader.batch_size] * full + ([rest] if rest and not loader.drop_last else [])
        batches = int(self.trainer.num_training_batches)
        self._loss_scales = accumulation_scales(sizes[:batches], self.trainer.accumulate_grad_batches)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, targets = batch
        if self.hparams.mixup > 0:
            logits, losses, targets = self.mixup_step(images, targets)
        else:
            logits = self.net(images)
            losses = self.loss_fn(logits, targets)
        # loss/train and acc/train are means over every batch since the last logged step (the log_every_n_steps window),
        # not one batch's values: the metrics accumulate on the device each step and are computed only when logged.
        self.train_loss.update(losses.detach())
        self.train_acc.update((logits.detach().argmax(dim=1) == targets).float())
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0 and self._logged_at != self.global_step:
            # Only on the steps the logger writes (Lightning logs step k at k+1 % n == 0): each self.log call walks
            # Lightning's result objects and costs milliseconds, more than a whole step of this network on a CPU.
            self._logged_at = self.global_step
            window = {"loss/train": self.train_loss.compute(), "acc/train": self.train_acc.compute()}
            self.log_dict(window, prog_bar=True, logger=False)
            # Written here: Lightning writes what self.log collects only after the step's callbacks, one of which may save
            # a periodic checkpoint holding the window emptied; a kill -9 between the two would lose it for good.
            scalars = {name: float(value) for name, value in window.items()}
            for logger in self.loggers:
                logger.log_metrics(scalars, step=self.global_step)
                logger.save()
            self.train_loss.reset()
            self.train_acc.reset()
        return losses.sum() * self._loss_scales[batch_idx]

    def mixup_step(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The logits and per-sample losses of a batch mixed with itself in another order, the loss mixed by the same
        share, and the labels that acc/train counts (those with the larger share). The share comes from Python's random,
        the order from torch's: RNGState restores both on resume."""
        share = random.betavariate(self.hparams.mixup, self.hparams.mixup)
        order = torch.randperm(len(images), device=images.device)
        logits = self.net(share * images + (1 - share) * images[order])
        losses = share * self.loss_fn(logits, targets) + (1 - share) * self.loss_fn(logits, targets[order])
        return logits, losses, targets if share >= 0.5 else targets[order]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "acc/val", self.val_acc, "loss/val", self.val_loss)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Returns the predicted classes, for callbacks that report on them (src/callbacks/pictures.py).
        The test's numbers are the run's result: ``result/`` sorts after the curves' ``acc/``, ``loss/``, ``lr``."""
        return self._evaluate(batch, "result/test_acc", self.test_acc, "result/test_loss", self.test_loss)

    def _evaluate(self, batch: tuple[Tensor, Tensor], acc_tag: str, accuracy: Metric, loss_tag: str, loss: Metric) -> Tensor:
        images, targets = batch
        logits = self.net(images)
        accuracy.update(logits, targets)
        loss.update(self.loss_fn(logits, targets))
        self.log(acc_tag, accuracy, prog_bar=True)
        self.log(loss_tag, loss)
        return logits.argmax(dim=1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.hparams.scheduler:
            checkpoint["schedule_steps"] = int(self.trainer.estimated_stepping_batches)
            checkpoint["schedule_start"] = self._schedule_start

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming: the schedule continues where it was (a resume keeps the run's length: ``src/checkpoints.py``). A
        finished run trained longer: the added steps get a new leg of the same schedule (a warm restart as in SGDR), the
        optimizer's momenta kept and its learning rate back where the schedule starts."""
        steps, done = checkpoint.get("schedule_steps"), int(checkpoint["global_step"])
        self._schedule_start = int(checkpoint.get("schedule_start", 0))
        if steps is not None and done >= steps:  # the schedule is over: only a longer run can continue from here
            self._schedule_start = done
            checkpoint["lr_schedulers"] = []  # Lightning restores nothing into the new leg's scheduler
            for optimizer in checkpoint.get("optimizer_states", []):
                for group in optimizer["param_groups"]:
                    group["lr"] = group.get("initial_lr", group["lr"])

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer, params=self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        # A leg of the schedule spans the steps from its start to the end of the run (the whole run, unless trained longer).
        steps = max(1, int(self.trainer.estimated_stepping_batches) - self._schedule_start)
        scheduler = instantiate(self.hparams.scheduler, optimizer=optimizer, total_steps=steps)
        # "name": the learning-rate monitor logs it as "lr" (beside acc/ and loss/), not "lr-AdamW".
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"}}
