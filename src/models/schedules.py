"""Learning-rate schedules, each selected by a file in ``conf/scheduler/``.

All of them step once per optimizer step and are sized by ``total_steps``, which the classifier takes from
``Trainer.estimated_stepping_batches``: so they stay right when batch size, accumulation or epochs change.
"""

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR, OneCycleLR


def cosine(optimizer: Optimizer, total_steps: int, min_lr: float = 0.0) -> LRScheduler:
    """Cosine decay from the optimizer's learning rate to ``min_lr`` over the whole run."""
    return CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)


def one_cycle(optimizer: Optimizer, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0) -> LRScheduler:
    """Warm up to the optimizer's learning rate for ``pct_start`` of the run, then anneal to almost zero."""
    peak = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peak, total_steps=total_steps, pct_start=pct_start, div_factor=div_factor)


def step(optimizer: Optimizer, total_steps: int, drops: int = 2, gamma: float = 0.1) -> LRScheduler:
    """Multiply the learning rate by ``gamma`` ``drops`` times, at evenly spaced points of the run."""
    milestones = [round(total_steps * (i + 1) / (drops + 1)) for i in range(drops)]
    return MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
