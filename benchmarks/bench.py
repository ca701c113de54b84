"""``python -m benchmarks.bench``: training throughput of this project against a plain PyTorch loop, in one process.

Three paths train the same network with the same loss and optimizer on the same data (MNIST's 55k training
images, normalized once):

  (a) plain:      a hand-written loop: shuffled index slices of tensors on the device, forward, backward, step.
                  The floor: nothing can feed this network faster.
  (b) lightning:  this project's training path: the composed default config (conf/train.yaml with its callbacks and
                  TensorBoard logging), the Classifier and the device-resident DataModule, through Trainer.fit.
  (c) dataloader: the same, but data.loader=dataloader: torchvision's dataset with per-sample transforms and a
                  DataLoader, the usual Lightning pipeline.
  (d) graphed:    the plain loop's step captured once in a CUDA graph and replayed (benchmarks/cuda_graph.py): what
                  this GPU needs for the step, the limit's anchor. 32-true, uncompiled; only on CUDA ("-" elsewhere).

Method: each path runs ``warmup`` steps, then is timed over about ``samples`` samples (at least 20 steps), by wall
clock, with a device synchronize before reading the clock on a GPU; samples/s = steps * batch size / seconds.
Validation (and with it the best-checkpoint callback) and the progress bar are off in (b) and (c); everything else
in the path is kept, the last.ckpt writes included. With ``trainer.precision=bf16-mixed`` (a) runs its forward under
``torch.autocast`` in bfloat16 too (other precisions: (a) stays in float32), and with ``model.compile=true`` its network
is compiled as well. The first step of (a) and of (b) is timed on its own in the first round, (b)'s from the start of
training (``on_train_start``), and is not counted in samples/s (unless ``--warmup 0``): it holds the device's start-up
and, with ``model.compile=true``, the compilation, which (a) pays because it runs first (the compiled code is then
reused in the same process). ``--skip-dataloader`` leaves (c) out (on a GPU it is bound by the CPU's per-sample
transforms). The paths alternate per batch size, so machine noise hits them alike, and each path's best of ``rounds``
rounds is kept (interference from other work only ever slows a round down). Ratios within one run are what to compare,
never times across runs.
"""

import argparse
import contextlib
import cProfile
import math
import platform
import pstats
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from benchmarks.cuda_graph import plain_graphed, synchronize
from src.build import build_callbacks, build_classifier, build_trainer
from src.config import logger_configs, resolved
from src.data.mnist import MNISTDataModule
from src.loggers import build_loggers

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@dataclass
class Timing:
    path: str
    batch_size: int
    samples_per_s: float
    first_step_s: float  # the first round's first step: (a) from its start, (b) from the start of fit


AUTOCAST = {"bf16-mixed": torch.bfloat16}  # precisions the plain loop reproduces with torch.autocast


def plain_loop(
    cfg: DictConfig, images: torch.Tensor, labels: torch.Tensor, batch_size: int, warmup: int, steps: int
) -> tuple[float, float]:
    """(a) The tutorial's loop over tensors already on the device; returns samples/s over the timed steps and the
    seconds of the first step."""
    device = images.device
    net = instantiate(cfg.model).to(device)
    optimizer = instantiate(cfg.optimizer, params=net.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    autocast_dtype = AUTOCAST.get(str(cfg.trainer.precision))
    order = torch.empty(0, dtype=torch.long, device=device)
    position, first_step_s, started = 0, 0.0, time.perf_counter()
    for step in range(warmup + steps):
        if step == 1:
            synchronize(device)
            first_step_s = time.perf_counter() - started
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        if position + batch_size > len(order):
            order, position = torch.randperm(len(labels), generator=generator).to(device), 0
        batch = order[position : position + batch_size]
        position += batch_size
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            loss = loss_fn(net(images[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - start), first_step_s


class StepTimer(L.Callback):
    """Wall clock from the start of the first batch at optimizer step ``warmup`` or later to the end of the first batch
    that reaches step ``warmup + steps``; ``steps`` then holds the optimizer steps in between (more than one a batch
    where a training step takes several, as in benchmarks/loop_cost.py).

    It stops at that batch's end, before the epoch-end checkpoint that Lightning writes when ``max_steps`` is reached.
    ``first_step_s`` is the time from the start of fit to the end of the first step.
    """

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.last = warmup, warmup + steps
        self.start = self.end = self.fit_start = self.first_step_s = 0.0
        self.start_step = self.steps = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step >= self.warmup and not self.start:
            synchronize(pl_module.device)
            self.start, self.start_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step >= 1 and not self.first_step_s:
            synchronize(pl_module.device)
            self.first_step_s = time.perf_counter() - self.fit_start
        if trainer.global_step >= self.last and not self.end:
            synchronize(pl_module.device)
            self.end, self.steps = time.perf_counter(), trainer.global_step - self.start_step


def lightning_path(cfg: DictConfig, datamodule: MNISTDataModule, warmup: int, steps: int) -> tuple[float, float]:
    """(b) or (c): Trainer.fit on the composed config for warmup + steps optimizer steps; returns samples/s and the
    seconds of the first step."""
    L.seed_everything(cfg.seed, verbose=False)
    timer = timed_fit(cfg, build_classifier(resolved(cfg)), datamodule, warmup, steps)
    return timer.steps * datamodule.hparams.batch_size / (timer.end - timer.start), timer.first_step_s


def timed_fit(cfg: DictConfig, model: L.LightningModule, datamodule: L.LightningDataModule, warmup: int, steps: int) -> StepTimer:
    """``Trainer.fit`` of ``model`` with the config's callbacks and logger (in a temporary folder), timed by a
    :class:`StepTimer` over ``steps`` optimizer steps after ``warmup``."""
    timer = StepTimer(warmup, steps)
    with tempfile.TemporaryDirectory() as logs:
        trainer = build_trainer(resolved(cfg), [*build_callbacks(resolved(cfg), Path(logs)), timer], Path(logs))
        trainer.loggers = build_loggers(logger_configs(resolved(cfg).get("logger")).values(), Path(logs), None)
        trainer.fit(model, datamodule=datamodule)
    return timer


def bench_config(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                "~callbacks.progress_bar",
                "trainer.enable_progress_bar=false",
                "~callbacks.model_summary",
                "trainer.enable_model_summary=false",
                "++trainer.limit_val_batches=0",
                "~callbacks.checkpoint",  # it keeps the best by val accuracy, and validation is off here
                "trainer.max_epochs=-1",
                "scheduler=none",
                *overrides,
            ],
        )


def with_loader(cfg: DictConfig, loader: str) -> DictConfig:
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.data.loader = loader
    return cfg


def timed_steps(samples: int, batch_size: int) -> int:
    """Steps that cover about ``samples`` samples, at least 20, so large batches are timed over more than a few steps."""
    return max(20, math.ceil(samples / batch_size))


def run(
    batch_sizes: Sequence[int],
    warmup: int,
    samples: int,
    rounds: int,
    overrides: Sequence[str],
    dataloader: bool = True,
    profile: int = 0,
) -> list[Timing]:
    """Time every path ``rounds`` times, alternating a, b, c, and keep each path's best round per batch size."""
    timings: list[Timing] = []
    for batch_size in batch_sizes:
        steps = timed_steps(samples, batch_size)
        cfg = bench_config([*overrides, f"data.batch_size={batch_size}", f"trainer.max_steps={warmup + steps}"])
        datamodule = instantiate(with_loader(cfg, "device").data, _convert_="all")
        datamodule.prepare_data()
        datamodule.setup("fit")
        device = build_trainer(resolved(cfg), [], Path(tempfile.gettempdir())).strategy.root_device
        images, labels = (tensor.to(device) for tensor in datamodule.splits["train"])
        paths = {"lightning": "device", "dataloader": "dataloader"} if dataloader else {"lightning": "device"}
        best = dict.fromkeys(["plain", *paths], 0.0)
        first_step_s: dict[str, float] = {}
        for round_ in range(rounds):
            samples_per_s, first = plain_loop(cfg, images, labels, batch_size, warmup, steps)
            best["plain"] = max(best["plain"], samples_per_s)
            first_step_s.setdefault("plain", first)
            if device.type == "cuda":
                ms_per_step, _ = plain_graphed(cfg, images, labels, batch_size, warmup, steps)
                best["graphed"] = max(best.get("graphed", 0.0), batch_size * 1e3 / ms_per_step)
                first_step_s.setdefault("graphed", 0.0)
            for path, loader in paths.items():
                loader_cfg = with_loader(cfg, loader)
                profiler = cProfile.Profile() if profile and path == "lightning" and round_ == 0 else None
                with profiler or contextlib.nullcontext():
                    samples_per_s, first = lightning_path(
                        loader_cfg, instantiate(loader_cfg.data, _convert_="all"), warmup, steps
                    )
                if profiler:
                    print(f"(b) at batch {batch_size}, first round, profiled (slower than timed): top {profile} by own time")
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(profile)
                best[path] = max(best[path], samples_per_s)
                first_step_s.setdefault(path, first)
        timings += [Timing(path, batch_size, value, first_step_s[path]) for path, value in best.items()]
    return timings


def table(timings: list[Timing], device: str, method: str) -> str:
    """A markdown table: samples/s per path, the ratios b/a and b/c, and the first steps of (a) and (b), per batch size."""
    rows = [
        "| batch | (a) plain loop | (b) this project | (c) DataLoader path | (d) graphed plain loop | b/a | b/c | b/d "
        "| first step s, (a) / (b) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for batch_size in sorted({t.batch_size for t in timings}):
        by_path = {t.path: t for t in timings if t.batch_size == batch_size}
        a, b = by_path["plain"].samples_per_s, by_path["lightning"].samples_per_s
        c = by_path["dataloader"].samples_per_s if "dataloader" in by_path else None
        d = by_path["graphed"].samples_per_s if "graphed" in by_path else None
        c_cell, b_over_c = (f"{c:,.0f}", f"{b / c:.2f}") if c else ("-", "-")
        d_cell, b_over_d = (f"{d:,.0f}", f"{b / d:.2f}") if d else ("-", "-")
        first = f"{by_path['plain'].first_step_s:.2f} / {by_path['lightning'].first_step_s:.2f}"
        rows.append(
            f"| {batch_size} | {a:,.0f} | {b:,.0f} | {c_cell} | {d_cell} | {b / a:.2f} | {b_over_c} | {b_over_d} | {first} |"
        )
    return f"Samples/s on {device}. {method}\n\n" + "\n".join(rows) + "\n"


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (``--batch-sizes 0`` and ``--rounds 0`` are refused up front)."""

    def whole_number(text: str) -> int:
        if not text.lstrip("-").isdigit() or int(text) < low:
            raise argparse.ArgumentTypeError(f"{text}: use a whole number >= {low}")
        return int(text)

    return whole_number


def main(argv: Sequence[str] | None = None) -> list[Timing]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=at_least(1), nargs="+", default=[128, 4096])
    parser.add_argument("--warmup", type=at_least(0), default=10, help="untimed steps first (default 10)")
    parser.add_argument("--samples", type=at_least(1), default=12_800, help="samples timed per path and round (default 12800)")
    parser.add_argument("--rounds", type=at_least(1), default=5, help="rounds per path; the best is kept (default 5)")
    parser.add_argument("--skip-dataloader", action="store_true", help="leave out path (c)")
    parser.add_argument(
        "--profile", type=at_least(0), default=0, metavar="N", help="print (b)'s N costliest functions (cProfile)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("lightning_logs/bench.md"), help="markdown table (default lightning_logs/bench.md)"
    )
    parser.add_argument("overrides", nargs="*", help="training config overrides, e.g. trainer.accelerator=gpu")
    args = parser.parse_args(argv)
    timings = run(
        args.batch_sizes, args.warmup, args.samples, args.rounds, args.overrides, not args.skip_dataloader, args.profile
    )
    device = describe_device(args.overrides)
    method = (
        f"Method: one process; per batch size, {args.rounds} rounds of (a), (b)"
        + ("" if args.skip_dataloader else ", (c)")
        + f", each {args.warmup} warm-up then "
        f"max(20, {args.samples} / batch) timed optimizer steps; samples/s = steps x batch / wall seconds, best round "
        "per path; overrides: " + (" ".join(args.overrides) or "none") + "."
    )
    text = table(timings, device, method)
    print(__doc__.split("Method:")[0].strip().splitlines()[0])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return timings


def describe_device(overrides: Sequence[str]) -> str:
    if any(o in ("trainer.accelerator=gpu", "trainer.accelerator=cuda") for o in overrides) and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads (torch {torch.__version__})"


if __name__ == "__main__":
    main()
