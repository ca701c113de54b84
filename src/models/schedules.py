"""The learning-rate schedules of ``conf/scheduler/``, stepped every optimizer step and sized by ``total_steps``
(Lightning's ``estimated_stepping_batches``): right whatever the batch size, accumulation or epochs."""

from typing import Annotated

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, validate_call
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LRScheduler, MultiStepLR, OneCycleLR

checked = validate_call(config={"arbitrary_types_allowed": True})  # the ranges below, also when called from Python


@checked
def cosine(optimizer: Optimizer, total_steps: int, min_lr: NonNegativeFloat = 0.0) -> LRScheduler:
    """Cosine decay from the optimizer's learning rate to ``min_lr`` over the whole run."""
    return CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)


@checked
def one_cycle(
    optimizer: Optimizer,
    total_steps: int,
    pct_start: Annotated[float, Field(gt=0, lt=1)] = 0.25,
    div_factor: PositiveFloat = 25.0,
    final_div_factor: PositiveFloat = 1e4,
) -> LRScheduler:
    """``OneCycleLR``: from the optimizer's lr / ``div_factor`` up to it for ``pct_start`` of the run, then down to it /
    (``div_factor`` x ``final_div_factor``); each phase at least one step (under 3 steps: the lr stays)."""
    if total_steps < 3:
        return ConstantLR(optimizer, factor=1.0, total_iters=0)
    pct_start = min(max(pct_start, 2 / total_steps), (total_steps - 1) / total_steps)
    peak = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(
        optimizer, peak, total_steps=total_steps, pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor
    )


@checked
def step(optimizer: Optimizer, total_steps: int, drops: NonNegativeInt = 2, gamma: PositiveFloat = 0.1) -> LRScheduler:
    """Multiply the learning rate by ``gamma`` ``drops`` times, at evenly spaced points of the run."""
    milestones = [round(total_steps * (i + 1) / (drops + 1)) for i in range(drops)]
    return MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
