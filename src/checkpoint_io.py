"""Writing checkpoints atomically: a Lightning ``CheckpointIO`` plugin (``conf/trainer/default.yaml``).

Every writing error leaves the previous file whole and is a :class:`CheckpointWriteError` naming the file and the cause.
"""

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the file it would have replaced is unchanged."""


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
