"""Checkpoints: find them, read them, check them against the configured network, write them atomically.

A run keeps its checkpoints in ``<run folder>/checkpoints/``: the best by val accuracy and ``last.ckpt``. Every
reading error names the file and what to do (:class:`CheckpointError`); every writing error leaves the previous file
whole (:class:`CheckpointWriteError`).
"""

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message starts with ``ckpt_path=<value>:`` (or ``init_from=``)."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the file it would have replaced is unchanged."""


def run_folder(checkpoint: Path) -> Path:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), else the folder it lies in."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def newest_last_checkpoint(runs: Path) -> Path | None:
    """The ``last.ckpt`` of the most recently written run folder at any depth below ``runs``, if any."""
    candidates = list(runs.rglob("checkpoints/last.ckpt"))
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def resolve(ckpt_path: str | None, runs: Path, key: str = "ckpt_path") -> Path | None:
    """``ckpt_path`` (None, ``"last"`` or a file) as an existing checkpoint file; ``"last"`` looks below ``runs``.
    ``key`` is the setting that gave it, for the messages."""
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        found = newest_last_checkpoint(runs)
        if found is None:
            raise CheckpointError(f"{key}=last: no run under {runs} has checkpoints/last.ckpt; train once without {key} first")
        return found
    return existing(ckpt_path, key)


def existing(ckpt_path: str, key: str = "ckpt_path") -> Path:
    """``ckpt_path`` as the path of an existing file."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"{key}={ckpt_path}: no such file; give a .ckpt written by python -m src.train (or {key}=last)")
    return path


def read(path: Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint's contents (tensors memory-mapped, plain data only), or a CheckpointError that says it is damaged."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # a truncated or corrupted file raises many kinds of errors
        others = sorted(str(other) for other in path.parent.glob("*.ckpt") if other != path)
        raise CheckpointError(
            f"{key}={path}: the file is damaged and cannot be read ({type(error).__name__}); "
            f"other checkpoints of this run: {', '.join(others) or 'none'}"
        ) from error


def check_same_network(state: dict[str, Any], model: torch.nn.Module, path: Path, key: str = "ckpt_path") -> None:
    """Name the first layer whose shape differs between the checkpoint and the configured network (``net.*``)."""
    saved = {name: tensor for name, tensor in state.get("state_dict", {}).items() if name.startswith("net.")}
    ours = {name: tensor for name, tensor in model.state_dict().items() if name.startswith("net.")}
    hint = "use that run's model settings (its config.yaml)"
    for name, tensor in ours.items():
        if name not in saved:
            raise CheckpointError(f"{key}={path}: made by a different network: it has no {name}; {hint}")
        if tuple(saved[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{key}={path}: made by a different network: {name} is {list(saved[name].shape)} there but "
                f"{list(tensor.shape)} with this config; {hint}"
            )
    extra = sorted(saved.keys() - ours.keys())
    if extra:
        raise CheckpointError(
            f"{key}={path}: made by a different network: it has {extra[0]}, which this config's network lacks; {hint}"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside the target, ``fsync``, then ``os.replace`` onto the target.

    The rename is atomic: readers see the old complete file or the new complete file, never a partial one. If writing
    fails (no space, no permission), the temporary file is removed and a :class:`CheckpointWriteError` names the file
    and the cause.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, target)
        except (OSError, RuntimeError) as error:  # torch's zip writer reports a full disk as a RuntimeError
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            needed, free = (
                tensor_bytes(checkpoint),
                shutil.disk_usage(target.parent if target.parent.exists() else Path.cwd()).free,
            )
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).strip().splitlines()[0]
            if free < needed:
                reason = os.strerror(errno.ENOSPC)
            raise CheckpointWriteError(
                f"could not write checkpoint {target}: {reason}; {target.parent} has {free / 2**20:.1f} MiB free and a "
                f"checkpoint needs about {needed / 2**20:.1f} MiB; the previous {target.name} (if any) is unchanged. "
                "Free disk space (or fix the folder's permissions), then resume from the last checkpoint"
            ) from error


def tensor_bytes(data: Any) -> int:
    """The bytes of all tensors in a checkpoint: about what it takes on disk."""
    if isinstance(data, torch.Tensor):
        return data.numel() * data.element_size()
    if isinstance(data, dict):
        return sum(tensor_bytes(value) for value in data.values())
    if isinstance(data, list | tuple):
        return sum(tensor_bytes(value) for value in data)
    return 0
