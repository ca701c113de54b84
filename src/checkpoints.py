"""Checkpoints: find them, read them, check them against the configured network (writing: ``src/checkpoint_io.py``).

A run keeps its checkpoints in ``<run folder>/checkpoints/``: the best by val accuracy and ``last.ckpt``. Every
reading error names the file and what to do (:class:`CheckpointError`). Nothing here imports Lightning, so that
``src.predict`` and ``src.eval`` start fast.
"""

from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message starts with ``ckpt_path=<value>:`` (or ``init_from=``)."""


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
            raise CheckpointError(
                f"{key}=last: no run under {runs} has checkpoints/last.ckpt; give {key}=<path to a .ckpt>, or "
                "log_dir=<the folder that holds the runs>"
            )
        return found
    return existing(ckpt_path, key)


def needed(ckpt_path: str | None, runs: Path, key: str = "ckpt_path") -> Path:
    """:func:`resolve` for the commands that cannot do without a checkpoint (``src.eval``, ``src.predict``,
    ``src.export``): None (``???`` in their config, not given) is refused."""
    found = resolve(ckpt_path, runs, key)
    if found is None:
        raise CheckpointError(f"{key}=???: a checkpoint is needed; give {key}=<path to a .ckpt> or {key}=last")
    return found


def existing(ckpt_path: str, key: str = "ckpt_path") -> Path:
    """``ckpt_path`` as the path of an existing file."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"{key}={ckpt_path}: no such file; give a .ckpt written by python -m src.train (or {key}=last)")
    return path


def read(path: Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint's contents (tensors memory-mapped, plain data only), or a CheckpointError that says the file is
    not a Lightning checkpoint or is damaged, and names the run's checkpoints."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except PermissionError as error:
        raise CheckpointError(f"{key}={path}: cannot be read ({error.strerror}); check its permissions") from error
    except Exception as error:  # a truncated or corrupted file raises many kinds of errors
        with open(path, "rb") as file:
            damaged = file.read(4) == b"PK\x03\x04" and path.suffix == ".ckpt"  # torch.save writes a zip archive
        problem = f"the file is damaged and cannot be read ({type(error).__name__})" if damaged else "not a Lightning checkpoint"
        raise CheckpointError(f"{key}={path}: {problem}; {other_checkpoints(path)}") from error
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(f"{key}={path}: not a Lightning checkpoint (no state_dict in it); {other_checkpoints(path)}")
    return state


def other_checkpoints(path: Path) -> str:
    """What to give instead of ``path``: the checkpoints of its run (beside it, or in ``checkpoints/`` of the run
    folder it lies in)."""
    folders = {path.parent, run_folder(path) / "checkpoints"}
    others = sorted({str(other) for folder in folders for other in folder.glob("*.ckpt") if other.resolve() != path.resolve()})
    return f"checkpoints of this run: {', '.join(others)}" if others else "give a .ckpt written by python -m src.train"


def network_weights(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The network's own weights in a classifier's ``state_dict`` (``net.*``, prefix dropped): what ``MLP`` loads."""
    return {name.removeprefix("net."): tensor for name, tensor in state_dict.items() if name.startswith("net.")}


def check_same_data_set(state: dict[str, Any], dataset: str, path: Path) -> None:
    """A resume continues on the data set it started on (checkpoints from before Fashion-MNIST hold MNIST)."""
    saved = state.get("datamodule_hyper_parameters", {}).get("dataset", "mnist")
    if saved != dataset:
        raise CheckpointError(
            f"ckpt_path={path}: a run on {saved}, resumed with data.dataset={dataset}; resume it with data.dataset={saved} "
            "(its config.yaml), or start a new run from its weights with init_from="
        )


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
