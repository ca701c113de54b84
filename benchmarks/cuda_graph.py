"""The plain loop's whole training step as one CUDA graph: the limit's anchor of ``benchmarks.bench`` (path (d)) and
the step that ``benchmarks.loop_cost`` runs inside Lightning's loop.

Captured as torch's CUDA-graph recipe does: a few eager steps on a side stream first (the optimizer's state and
autograd's buffers then exist), the gradients set to None before the capture (the captured backward writes them), the
optimizer built with ``capturable=True`` where torch offers it (its step counters stay on the device), the batch read
from static tensors that each step copies into. No host sync inside the step. Without CUDA nothing is captured: the
same step runs eagerly, so the code runs (and is tested) on a CPU too.
"""

import inspect
import time
from collections.abc import Callable, Sequence

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from torch import Tensor


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def capture(step: Callable[[], None], device: torch.device, warmup: int = 3) -> tuple[Callable[[], None], bool]:
    """``step`` captured in a CUDA graph, after ``warmup`` eager runs on a side stream (torch's recipe: the optimizer's
    state and autograd's buffers exist before the capture); returns the replay and whether it is a graph. Without
    CUDA: ``step`` itself."""
    if device.type != "cuda":
        return step, False
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay, True


def capturable_optimizer(cfg: DictConfig, params: Sequence[Tensor], device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer, with ``capturable=True`` on CUDA where torch offers it (Adam, AdamW, RMSprop, ...)."""
    offers = "capturable" in inspect.signature(get_class(cfg.optimizer._target_)).parameters
    return instantiate(cfg.optimizer, params=params, **({"capturable": True} if device.type == "cuda" and offers else {}))


def whole_step(
    net: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Callable[[], tuple[Tensor, Tensor]], loss: Tensor
) -> Callable[[], None]:
    """One whole optimizer step on the tensors ``batch()`` returns (static ones), its loss written into ``loss``; no
    host sync. The optimizer's own update is bound here, before anyone replaces ``optimizer.step`` by a replay."""
    update = optimizer.step

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)  # so that the captured backward writes the gradients instead of adding
        images, labels = batch()
        batch_loss = torch.nn.functional.cross_entropy(net(images), labels)
        batch_loss.backward()
        update()
        loss.copy_(batch_loss.detach())

    return step


def plain_graphed(
    cfg: DictConfig, images: Tensor, labels: Tensor, batch_size: int, warmup: int, steps: int
) -> tuple[float, bool]:
    """(d): ms per optimizer step of the plain loop with its step replayed from a CUDA graph, and whether it was one."""
    device = images.device
    net = instantiate(cfg.model, compile=False).to(device)
    optimizer = capturable_optimizer(cfg, list(net.parameters()), device)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(labels), generator=generator).to(device)
    index = order[:batch_size].clone()  # static: each step copies its batch's indices in; the gather is in the graph
    loss = torch.zeros((), device=device)
    replay, graphed = capture(whole_step(net, optimizer, lambda: (images[index], labels[index]), loss), device)
    position = batch_size
    for done in range(warmup + steps):
        if done == warmup:
            synchronize(device)
            start = time.perf_counter()
        if position + batch_size > len(order):
            order, position = torch.randperm(len(labels), generator=generator).to(device), 0
        index.copy_(order[position : position + batch_size])
        position += batch_size
        replay()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3 / steps, graphed
