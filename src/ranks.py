"""What DDP ranks share through the process: Lightning starts ranks 1..N-1 by running this process's command line again
(its Hydra support), with ``LOCAL_RANK`` set. They learn rank 0's run folder from :data:`RUN_DIR`; a sweep's job hands
them its own overrides as the command line, and leaves nothing of its ranks behind for the next job."""

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

RUN_DIR = "MNIST_LIGHTNING_RUN_DIR"  # rank 0's run folder, for the ranks it starts


def rank_zero_run_dir() -> Path | None:
    """In a rank that rank 0 started, rank 0's run folder; else None."""
    started = os.environ.get("LOCAL_RANK", "0") != "0" and RUN_DIR in os.environ
    return Path(os.environ[RUN_DIR]) if started else None


def share_run_dir(run_dir: Path) -> None:
    os.environ[RUN_DIR] = str(run_dir)


@contextmanager
def process_group_ends() -> Iterator[None]:
    """A run whose strategy joined a process group leaves it, on every rank: gloo's worker threads, still running at
    interpreter exit, abort the process (``terminate called without an active exception``, exit -6), and Lightning's
    launcher then kills the other ranks."""
    try:
        yield
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@contextmanager
def sweep_job(overrides: Sequence[str]) -> Iterator[None]:
    """One job of a sweep, run in the sweep's process: the ranks it starts run this job (its overrides as the command
    line), not a sweep of their own; afterwards Lightning's variables (``LOCAL_RANK``, ``MASTER_PORT``, ...) are gone, so
    that the next job starts its ranks afresh."""
    environment, argv = dict(os.environ), list(sys.argv)
    sys.argv[1:] = [override for override in overrides if not override.startswith("hparams_search=")]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(environment)
        sys.argv[:] = argv
