"""Where runs live: one folder per run, lightning_logs/<name>/version_<N>/, holding events, config and checkpoints.

Resuming continues in the checkpoint's own run folder, and TensorBoard is told to drop what the interrupted run
logged after the checkpoint (``purge_step``), so the curves have no gap and no step twice.
"""

from pathlib import Path
from typing import Any

import torch

from src.checks import ConfigError


def last_checkpoint(save_dir: Path, name: str) -> Path | None:
    """The ``last.ckpt`` of the most recently written run under ``save_dir/name``, if any."""
    candidates = list((save_dir / name).glob("*/checkpoints/last.ckpt"))
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def resolve_checkpoint(ckpt_path: str | None, save_dir: Path, name: str) -> Path | None:
    """Turn ``ckpt_path`` (None, "last" or a file) into an existing checkpoint file, or raise ConfigError."""
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        found = last_checkpoint(save_dir, name)
        if found is None:
            raise ConfigError(f"ckpt_path=last: no run under {save_dir / name} has checkpoints/last.ckpt; train once without ckpt_path first")
        return found
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file; give an existing .ckpt or ckpt_path=last")
    return path


def optimizer_steps(checkpoint: Path) -> int:
    """How many optimizer steps the checkpoint holds. Lightning logs the batch that makes step k at step k-1, so
    everything the interrupted run logged at this step or later came after the checkpoint."""
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"])


def resumed_logger_args(checkpoint: Path | None) -> dict[str, Any]:
    """TensorBoardLogger arguments that reopen the checkpoint's run folder, or none for a new run.

    A checkpoint outside the ``<save_dir>/<name>/<version>/checkpoints/`` layout starts a new run folder.
    """
    if checkpoint is None or checkpoint.parent.name != "checkpoints":
        return {}
    run = checkpoint.parent.parent
    return {"save_dir": str(run.parent.parent), "name": run.parent.name, "version": run.name, "purge_step": optimizer_steps(checkpoint)}
