"""Writing checkpoints atomically: a Lightning ``CheckpointIO`` plugin (``conf/trainer/default.yaml``)."""

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
    """``torch.save`` to a temporary file beside the target, ``fsync``, ``os.replace`` onto it: the old complete file
    or the new one, never a partial one. (Lightning's own writer moves a file from the system's temporary folder, by a
    copy where that is another file system.) A failed or interrupted write removes its file; a failed one names what
    is wrong (torch's zip writer reports a full disk as a RuntimeError)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # To a path, not a Python file: torch's C++ writer then calls no Python code that a second Ctrl-C's exception
            # could fail inside it (it would report a RuntimeError in its place).
            torch.save(checkpoint, str(partial))
            with partial.open("rb") as written:
                os.fsync(written.fileno())
            os.replace(partial, target)
        except BaseException as error:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            if not isinstance(error, OSError | RuntimeError):  # a second Ctrl-C (src/callbacks/interrupt.py)
                raise
            needed = tensor_bytes(checkpoint)
            free = shutil.disk_usage(target.parent if target.parent.exists() else Path.cwd()).free
            reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0]
            raise CheckpointWriteError(
                f"could not write checkpoint {target}: {os.strerror(errno.ENOSPC) if free < needed else reason}; "
                f"{target.parent} has {free / 2**20:.1f} MiB free and a checkpoint needs about {needed / 2**20:.1f} MiB; "
                f"the previous {target.name} (if any) is unchanged. Free disk space (or fix the folder's permissions), "
                "then resume from the last checkpoint"
            ) from error
        # The partial files that processes no longer running left (a kill -9 in the middle of a save cannot remove its own).
        for stale in target.parent.glob(f".{target.name}.partial-*"):
            pid = stale.name.rpartition("-")[2]
            if pid.isdigit() and not running(int(pid)):
                with contextlib.suppress(OSError):
                    stale.unlink()


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True


def tensor_bytes(data: Any) -> int:
    """The bytes of all tensors in a checkpoint: about what it takes on disk."""
    if isinstance(data, dict | list | tuple):
        return sum(map(tensor_bytes, data.values() if isinstance(data, dict) else data))
    return data.nbytes if isinstance(data, torch.Tensor) else 0
