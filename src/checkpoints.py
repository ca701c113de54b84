"""Checkpoints (``<run folder>/checkpoints/``: the best by val accuracy, ``last.ckpt``): found and read, each refusal
naming the file and what to do; the trained network they hold. No Lightning here, so that ``src.predict`` and
``src.serve`` start fast (writing: ``src/checkpoint_io.py``; what a resume may change: ``src/config.py``)."""

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from src.cli import ConfigError
from src.data.datasets import DATASETS

CONFIG_KEY = "config"  # in a checkpoint: the resolved config its run was (re)started with (src/callbacks/save_config.py)


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used; the message starts with ``ckpt_path=<value>:`` (or ``init_from=``)."""


def run_folder(checkpoint: Path) -> Path:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), else the folder it lies in."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def resolve(ckpt_path: str | None, runs: Path, key: str = "ckpt_path") -> Path | None:
    """``ckpt_path`` (None, a file, or ``last``: the newest ``last.ckpt`` at any depth below ``runs``) as an existing
    checkpoint file; ``key`` is the setting that gave it, for the messages."""
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        if candidates := list(runs.rglob("checkpoints/last.ckpt")):
            return max(candidates, key=lambda path: path.stat().st_mtime)
        give = f"give {key}=<path to a .ckpt>, or log_dir=<the folder that holds the runs>"
        raise CheckpointError(f"{key}=last: no run under {runs} has checkpoints/last.ckpt; {give}")
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"{key}={ckpt_path}: no such file; give a .ckpt written by python -m src.train (or {key}=last)")
    return Path(ckpt_path)


def needed(ckpt_path: str | None, runs: Path, key: str = "ckpt_path") -> Path:
    """:func:`resolve` for the commands that cannot do without a checkpoint: ``???`` (none given) is refused."""
    if ckpt_path is None:
        raise CheckpointError(f"{key}=???: a checkpoint is needed; give {key}=<path to a .ckpt> or {key}=last")
    return resolve(ckpt_path, runs, key)


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


def trained_network(state: dict[str, Any], path: Path, key: str = "ckpt_path") -> torch.nn.Module:
    """The trained network alone, built from the checkpoint's own settings (no Lightning: predicting starts fast)."""
    try:
        model = instantiate(state["hyper_parameters"]["model"], _convert_="all")
        model.load_state_dict(network_weights(state["state_dict"]))
    except Exception as error:  # no model settings in it, or weights of another shape
        reason = " ".join(str(error).split())[:160]
        problem = f"not a network this project trained ({reason})"
        raise CheckpointError(f"{key}={path}: {problem}; {other_checkpoints(path)}") from error
    return model.eval()


class PixelClassifier(torch.nn.Module):
    """A checkpoint's network behind its data's normalization: pixels ``(N, 28, 28)`` in ``[0, 1]``, light on dark as
    its data set stores them, in; the class probabilities out. What ``src.predict`` and ``src.serve`` run."""

    def __init__(self, state: dict[str, Any], path: Path) -> None:
        super().__init__()
        self.network = trained_network(state, path)
        data = state["datamodule_hyper_parameters"]
        self.data_set = DATASETS[data["dataset"]]
        self.mean, self.std = self.data_set.mean_std(data["normalization"])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network(pixels.unsqueeze(1).sub(self.mean).div(self.std)).softmax(dim=1)
