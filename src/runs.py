"""Where runs live: one folder per run, lightning_logs/<name>/version_<N>/, holding events, config and checkpoints
(in a multirun: the job's folder inside the sweep's, see src/sweeps.py).

Resuming continues in the checkpoint's own run folder, and TensorBoard is told to drop what the interrupted run
logged after the checkpoint (``purge_step``), so the curves have no gap and no step twice.
"""

from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from src.checks import ConfigError


def sweep_job_logger_args() -> dict[str, Any]:
    """In a Hydra multirun, log straight into the job's own folder (Hydra names it by job number and overrides)."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return {"save_dir": HydraConfig.get().runtime.output_dir, "name": "", "version": ""}
    return {}


def last_checkpoint(save_dir: Path, name: str) -> Path | None:
    """The ``last.ckpt`` of the most recently written run under ``save_dir/name``, if any."""
    candidates = list((save_dir / name).glob("*/checkpoints/last.ckpt"))
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def existing_checkpoint(ckpt_path: str) -> Path:
    """``ckpt_path`` as a path, or a ConfigError when no such file exists (for the entry points that use a model)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file; give a .ckpt written by python -m src.train")
    return path


def run_folder(checkpoint: Path) -> Path:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), else the folder it lies in."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


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


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents (tensors memory-mapped, plain data only), or a ConfigError that says it is damaged."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # a truncated or corrupted file raises many kinds of errors
        others = sorted(str(other) for other in path.parent.glob("*.ckpt") if other != path)
        raise ConfigError(
            f"ckpt_path={path}: the file is damaged and cannot be read ({type(error).__name__}); "
            f"other checkpoints of this run: {', '.join(others) or 'none'}"
        ) from error


def check_same_network(state: dict[str, Any], model: torch.nn.Module, path: Path) -> None:
    """Name the first layer whose shape differs between the checkpoint and the configured network."""
    saved, ours = state.get("state_dict", {}), model.state_dict()
    for name, tensor in ours.items():
        if name not in saved:
            raise ConfigError(f"ckpt_path={path}: made by a different network: it has no {name}; use that run's model settings (its config.yaml)")
        if tuple(saved[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"ckpt_path={path}: made by a different network: {name} is {list(saved[name].shape)} there but "
                f"{list(tensor.shape)} with this config; use that run's model settings (its config.yaml)"
            )
    extra = sorted(saved.keys() - ours.keys())
    if extra:
        raise ConfigError(f"ckpt_path={path}: made by a different network: it has {extra[0]}, which this config's network lacks")


def resumed_logger_args(checkpoint: Path | None, state: dict[str, Any] | None) -> dict[str, Any]:
    """TensorBoardLogger arguments that reopen the checkpoint's run folder, or none for a new run.

    ``purge_step``: Lightning logs the batch that makes optimizer step k at step k-1, so everything the interrupted
    run logged at the checkpoint's ``global_step`` or later came after the checkpoint and is dropped.
    A checkpoint outside the ``<save_dir>/<name>/<version>/checkpoints/`` layout starts a new run folder.
    """
    if checkpoint is None or state is None or checkpoint.parent.name != "checkpoints":
        return {}
    run = checkpoint.parent.parent
    return {"save_dir": str(run.parent.parent), "name": run.parent.name, "version": run.name, "purge_step": int(state["global_step"])}
