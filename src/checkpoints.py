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
