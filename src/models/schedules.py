"""The learning-rate schedules of ``conf/scheduler/``, stepped every optimizer step and sized by ``total_steps``
(Lightning's ``estimated_stepping_batches``): right whatever the batch size, accumulation or epochs."""

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LRScheduler, MultiStepLR, OneCycleLR

from src.validate import number, whole_number


def cosine(optimizer: Optimizer, total_steps: int, min_lr: float = 0.0) -> LRScheduler:
    """Cosine decay from the optimizer's learning rate to ``min_lr`` over the whole run."""
    number("min_lr", min_lr, 0)
    return CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)


def one_cycle(
    optimizer: Optimizer, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0, final_div_factor: float = 1e4
) -> LRScheduler:
    """``OneCycleLR``: from the optimizer's lr / ``div_factor`` up to it for ``pct_start`` of the run, then down to it /
    (``div_factor`` x ``final_div_factor``); each phase at least one step (under 3 steps: the lr stays)."""
    number("pct_start", pct_start, 0, 1, above_low=True, below_high=True)
    number("div_factor", div_factor, 0, above_low=True)
    number("final_div_factor", final_div_factor, 0, above_low=True)
    if total_steps < 3:
        return ConstantLR(optimizer, factor=1.0, total_iters=0)
    pct_start = min(max(pct_start, 2 / total_steps), (total_steps - 1) / total_steps)
    peak = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(
        optimizer, peak, total_steps=total_steps, pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor
    )


def step(optimizer: Optimizer, total_steps: int, drops: int = 2, gamma: float = 0.1) -> LRScheduler:
    """Multiply the learning rate by ``gamma`` ``drops`` times, at evenly spaced points of the run."""
    whole_number("drops", drops, 0)
    number("gamma", gamma, 0, above_low=True)
    milestones = [round(total_steps * (i + 1) / (drops + 1)) for i in range(drops)]
    return MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
