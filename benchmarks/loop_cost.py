"""``python -m benchmarks.loop_cost``: what a training step costs once it is one CUDA graph, and what Lightning's loop
costs around such a step: the figure the GPU path's design is chosen from.

  (a) plain, eager     benchmarks.bench's plain loop: forward, loss, backward and AdamW launched from Python each step
  (d) plain, graphed   the same step captured once in a CUDA graph and replayed: the optimizer built with
                       ``capturable=True`` (its step counters on the device), the batch's indices copied into a static
                       buffer and the gather inside the graph. What this GPU needs for the step: the limit's anchor.
  (e) Lightning, K     Trainer.fit with this project's callbacks, logger and device-resident DataModule; the training
                       step (manual optimization) copies each of K batches into static buffers and calls the optimizer's
                       step through Lightning (which counts it), and that step replays the graph of (d). K optimizer
                       steps per Lightning step, as Keras' ``steps_per_execution``.

Method: per batch size, ``warmup`` untimed optimizer steps (the capture's own 3 warm-up steps come first), then about
``samples`` samples timed by wall clock with a device synchronize before reading it; ms per optimizer step, best of
``rounds`` rounds; the paths alternate within a round. (e) - (d) is what Lightning's loop adds per optimizer step at
that K; from two Ks it is split into a cost per Lightning step (its loop, batch hooks, logging: paid once per K steps)
and one per counted optimizer step (Lightning's optimizer wrapper and its hooks: paid every step). 32-true, the network
uncompiled, constant learning rate, no validation. Without CUDA nothing is captured: (d) and (e) run the same step
eagerly and the table says so (the test suite runs it that way).
"""

import argparse
import math
import platform
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from benchmarks.bench import at_least, bench_config, plain_loop, timed_fit
from benchmarks.cuda_graph import capturable_optimizer, capture, plain_graphed, whole_step
from src.build import build_trainer
from src.config import resolved


class GraphedSteps(L.LightningModule):
    """(e): a LightningModule whose optimizer step is the replay of one captured whole step of ``batch_size`` images,
    as many optimizer steps per Lightning step as its batch holds. Lightning still runs its loop, hooks and counting
    around each step."""

    def __init__(self, cfg: DictConfig, batch_size: int) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg, self.batch_size = cfg, batch_size
        self.net = instantiate(cfg.model, compile=False)
        self.graphed = False

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Never run (validation is off here); defined so that Lightning does not warn about the val loader."""

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return capturable_optimizer(self.cfg, list(self.parameters()), self.device)

    def on_train_start(self) -> None:
        optimizer = self.optimizers().optimizer  # the torch optimizer inside Lightning's wrapper
        self.images = torch.zeros(self.batch_size, 1, 28, 28, device=self.device)
        self.labels = torch.zeros(self.batch_size, dtype=torch.long, device=self.device)
        self.loss = torch.zeros((), device=self.device)
        step = whole_step(self.net, optimizer, lambda: (self.images, self.labels), self.loss)
        replay, self.graphed = capture(step, self.device)

        def replayed(closure: Callable[[], object] | None = None) -> None:
            if closure is not None:
                closure()  # Lightning's closure: its on_before_optimizer_step hooks
            replay()

        optimizer.step = replayed  # what Lightning's optimizer step calls in the end: the graph, not an eager update

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        optimizer = self.optimizers()
        for first in range(0, len(labels) - self.batch_size + 1, self.batch_size):
            self.images.copy_(images[first : first + self.batch_size])
            self.labels.copy_(labels[first : first + self.batch_size])
            optimizer.step()  # counted by Lightning: global_step is optimizer steps
        return self.loss  # a device tensor: no host sync (the finite-loss callback reads it on the device)


def lightning_graphed(cfg: DictConfig, batch_size: int, steps_per_call: int, warmup: int, steps: int) -> tuple[float, bool]:
    """(e): ms per optimizer step of Trainer.fit around the graphed step, K = ``steps_per_call`` (the DataModule's batch
    holds K of the step's batches)."""
    L.seed_everything(cfg.seed, verbose=False)
    model = GraphedSteps(cfg, batch_size)
    datamodule = instantiate(cfg.data, batch_size=batch_size * steps_per_call, _convert_="all")
    timer = timed_fit(cfg, model, datamodule, warmup, steps)
    return (timer.end - timer.start) * 1e3 / timer.steps, model.graphed


def run(batch_sizes: Sequence[int], ks: Sequence[int], warmup: int, samples: int, rounds: int, overrides: Sequence[str]) -> str:
    """Time (a), (d) and (e) for each K, ``rounds`` times; return the markdown table (best round per path)."""
    lcm = math.lcm(*ks)
    split = len(ks) >= 2 and ks[0] != ks[1]  # two Ks separate a cost per Lightning step from one per optimizer step
    header = ["batch", "(a) plain, eager", "(d) plain, graphed", *(f"(e) Lightning, K={k}" for k in ks)]
    header += [f"(e) - (d), K={k}" for k in ks] + (["Lightning per call", "per counted step"] if split else [])
    rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    graphs: set[bool] = set()
    for batch_size in batch_sizes:
        steps = lcm * max(1, math.ceil(max(20, samples // batch_size) / lcm))  # whole Lightning steps for every K
        first = lcm * math.ceil(warmup / lcm)
        cfg = bench_config([*overrides, f"trainer.max_steps={first + steps}"])
        datamodule = instantiate(cfg.data, _convert_="all")
        datamodule.prepare_data()
        datamodule.setup("fit")
        device = build_trainer(resolved(cfg), [], Path(tempfile.gettempdir())).strategy.root_device
        images, labels = (tensor.to(device) for tensor in datamodule.splits["train"])
        best: dict[str, float] = {}
        for _ in range(rounds):
            samples_per_s, _ = plain_loop(cfg, images, labels, batch_size, first, steps)
            timings = {"a": batch_size * 1e3 / samples_per_s}
            timings["d"], graphed = plain_graphed(cfg, images, labels, batch_size, first, steps)
            graphs.add(graphed)
            for k in ks:
                timings[f"e{k}"], graphed = lightning_graphed(cfg, batch_size, k, first, steps)
                graphs.add(graphed)
            best = {name: min(value, best.get(name, math.inf)) for name, value in timings.items()}
        cells = [f"{best['a']:.3f}", f"{best['d']:.3f}", *(f"{best[f'e{k}']:.3f}" for k in ks)]
        extra = {k: best[f"e{k}"] - best["d"] for k in ks}
        cells += [f"{extra[k]:+.3f}" for k in ks]
        if split:  # extra(K) = per_call / K + per_step, solved from the first two Ks
            (k1, k2) = ks[:2]
            per_call = (extra[k1] - extra[k2]) / (1 / k1 - 1 / k2)
            cells += [f"{per_call:.3f}", f"{extra[k1] - per_call / k1:.3f}"]
        rows.append(f"| {batch_size} | " + " | ".join(cells) + " |")
    mode = "CUDA graphs" if graphs == {True} else "no CUDA: nothing captured, (d) and (e) ran eagerly"
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    method = (
        f"ms per optimizer step on {device_name} (torch {torch.__version__}, lightning {L.__version__}); {mode}. "
        f"Method: python -m benchmarks.loop_cost --help; best of {rounds} rounds; overrides: {' '.join(overrides) or 'none'}."
    )
    return method + "\n\n" + "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=at_least(1), nargs="+", default=[512, 4096])
    parser.add_argument("--k", type=at_least(1), nargs="+", default=[1, 8], help="optimizer steps per Lightning step")
    parser.add_argument("--warmup", type=at_least(0), default=10, help="untimed optimizer steps first (default 10)")
    parser.add_argument("--samples", type=at_least(1), default=200_000, help="samples timed per path and round")
    parser.add_argument("--rounds", type=at_least(1), default=3, help="rounds; the best is kept (default 3)")
    parser.add_argument("--out", type=Path, default=Path("lightning_logs/loop_cost.md"), help="markdown table")
    parser.add_argument("overrides", nargs="*", help="training config overrides, e.g. trainer.accelerator=gpu")
    args = parser.parse_args(argv)
    text = run(args.batch_sizes, args.k, args.warmup, args.samples, args.rounds, args.overrides)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
