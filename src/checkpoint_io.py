"""Checkpoint files written so that a crash, a full disk or ``kill -9`` never leaves a damaged one in place."""

import contextlib
import os
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
        except OSError as error:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            reason = error.strerror or str(error)
            raise CheckpointWriteError(
                f"could not write checkpoint {target}: {reason}; the previous {target.name} (if any) is unchanged. "
                "Free disk space or fix the folder's permissions, then resume from the last checkpoint"
            ) from error
