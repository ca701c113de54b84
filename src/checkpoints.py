"""Checkpoints (``<run folder>/checkpoints/``: the best by val accuracy, ``last.ckpt``): found, read and held to the run
that goes on from them (what a resume may change), each refusal naming the file and what to do; the trained network
they hold. No Lightning here, so that ``src.predict`` and ``src.serve`` start fast (writing: ``src/checkpoint_io.py``)."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from src import runs
from src.cli import ConfigError, show, shown_path
from src.data.datasets import DATASETS

# What a resume (ckpt_path=) continues with: the run's own settings. The Trainer's, the loggers' and the callbacks' may
# change (train longer, on a GPU, ...), and so may where the data comes from.
KEPT_ON_RESUME = ("seed", "mixup", "model", "loss", "optimizer", "scheduler", "data")
FREE_ON_RESUME = {"data.data_dir", "data.sources", "data.checksums", "data.num_workers", "data.loader"}
# The Trainer settings that decide how many optimizer steps a run takes: what its learning-rate schedule is sized for.
RUN_LENGTH = ("max_epochs", "max_steps", "accumulate_grad_batches", "limit_train_batches", "overfit_batches", "devices")
CONFIG_KEY = "config"  # in a checkpoint: the resolved config its run was (re)started with (src/callbacks/save_config.py)


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used; the message starts with ``ckpt_path=<value>:`` (or ``init_from=``)."""


@dataclass(frozen=True)
class Start:
    """What a run starts from: a checkpoint to resume, with its contents, or a network's weights (init_from=)."""

    checkpoint: Path | None = None
    state: dict[str, Any] | None = None
    init_weights: dict[str, Any] | None = None  # the network's own, as MLP loads them
    note: str | None = None  # what the resume cannot continue (:func:`missing_best`)


def starting_point(config: Mapping[str, Any], requeued: Path | None = None) -> Start:
    """The checkpoint that ``ckpt_path`` (else, where it exists, a requeued job's ``requeued`` last.ckpt) resumes, held
    to the run's own settings and network, or the weights ``init_from`` starts a new run with."""
    log_dir = Path(config["log_dir"])
    checkpoint = resolve(config["ckpt_path"], log_dir / config["name"])
    if checkpoint is None and requeued is not None and requeued.is_file():
        checkpoint = requeued
    if checkpoint is not None:
        state = read(checkpoint)
        check_resume(state, config)
        check_same_network(state, config["model"], checkpoint)
        return Start(checkpoint, state, note=missing_best(state, checkpoint))
    if (start := resolve(config["init_from"], log_dir, key="init_from")) is not None:  # last: the newest of any run name
        init = read(start, key="init_from")
        check_same_network(init, config["model"], start, key="init_from")
        return Start(init_weights=network_weights(init["state_dict"]))
    return Start()


def run_folder(checkpoint: Path) -> Path:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), else the folder it lies in."""
    return runs.run_of(checkpoint) or checkpoint.parent


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
    if Path(ckpt_path).is_dir():
        inside = sorted(str(path) for path in Path(ckpt_path).rglob("*.ckpt"))[:3]
        found = f": {', '.join(inside)}" if inside else " (there is none in it)"
        raise CheckpointError(f"{key}={ckpt_path}: a folder, not a checkpoint; give one of its .ckpt files{found}")
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


def check_same_network(state: dict[str, Any], model: Mapping[str, Any], path: Path, key: str = "ckpt_path") -> None:
    """Name the first layer whose shape differs between the checkpoint and the ``model`` configured (``net.*``), built
    on the meta device: no weights."""
    with torch.device("meta"):
        shapes = {f"net.{name}": list(t.shape) for name, t in instantiate(model, _convert_="all").state_dict().items()}
    saved = {name: list(tensor.shape) for name, tensor in state["state_dict"].items() if name.startswith("net.")}
    if differs := next((name for name in {**shapes, **saved} if saved.get(name) != shapes.get(name)), None):
        there, here = saved.get(differs, "missing"), shapes.get(differs, "missing")
        raise CheckpointError(
            f"{key}={path}: made by a different network: {differs} is {there} there but {here} with this config; use that "
            "run's model settings (its config.yaml)"
        )


def _flat(node: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    return {key: value for name, child in node.items() for key, value in _flat(child, f"{prefix}.{name}").items()}


def check_resume(state: dict[str, Any], config: Mapping[str, Any]) -> None:
    """A resume continues its run as the run was started (the config its checkpoint holds): ``ckpt_path=last`` after
    ``experiment=fast``, typed without it, would otherwise go on with the default loss and learning rate. A run that has
    not finished its learning-rate schedule also keeps its length: that schedule is sized for it."""
    check_not_past(state, config["trainer"])
    then = state.get(CONFIG_KEY)
    if then is None:  # not written by this project's src.train: nothing to hold it to
        return
    changed = []
    for key in KEPT_ON_RESUME:
        before, current = _flat(then.get(key), key), _flat(config.get(key), key)
        for name in dict.fromkeys([*before, *current]):
            # A key added to the project after the run started: the run had it off (every such switch is off by default).
            absent_then = name not in before and not current.get(name)
            if name not in FREE_ON_RESUME and not absent_then and before.get(name) != current.get(name):
                changed.append(f"{name}={show(before.get(name))} (now {show(current.get(name))})")
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise CheckpointError(
            f"ckpt_path={config['ckpt_path']}: the run was started with {', '.join(changed[:3])}{more}; resume it with its "
            "own settings (the same experiment= and overrides as its config.yaml), or start a new run from its weights with "
            "init_from="
        )
    steps = state.get("schedule_steps")
    if steps is None or int(state["global_step"]) >= steps:  # no schedule, or it has run out: a longer run may follow
        return
    before, now = then["trainer"], config["trainer"]
    for key in (*RUN_LENGTH, "num_nodes"):
        if before.get(key) != now.get(key):
            raise CheckpointError(
                f"trainer.{key}={show(now.get(key))}: the run's learning-rate schedule spans {steps} steps and has not "
                f"finished; resume it with trainer.{key}={show(before.get(key))}, as it was started, then train it longer "
                "from its last.ckpt"
            )


def check_not_past(state: dict[str, Any], trainer: Mapping[str, Any]) -> None:
    """A resume whose length the run has passed already: Lightning refuses fewer epochs only once it has set the run up,
    and fewer steps train nothing."""
    epochs = state.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {}).get("processed")
    done = {
        "max_epochs": (epochs if epochs is not None else state["epoch"], "epochs"),
        "max_steps": (state["global_step"], "steps"),
    }
    for key, (count, unit) in done.items():
        limit = trainer.get(key)
        if isinstance(limit, int) and limit > 0 and count > limit:
            raise CheckpointError(
                f"trainer.{key}={limit}: the run has trained {count} {unit} already; resume it with trainer.{key} above "
                f"{count} to train it longer (src.eval tests it as it is)"
            )


def missing_best(state: dict[str, Any], checkpoint: Path) -> str | None:
    """What a resume from ``checkpoint`` cannot continue: the best checkpoint its run recorded is not in the run's
    ``checkpoints/`` beside it (a run copied without it; a checkpoint outside a run folder starts a new one), so its
    score is forgotten (src/callbacks/run_checkpoint.py) and the best is chosen among the validations to come; None when
    it is there."""
    folder = checkpoint.parent if runs.run_of(checkpoint) else None
    for key, saved in state.get("callbacks", {}).items():
        best = saved.get("best_model_path") if key.startswith("ModelCheckpoint") and saved.get("monitor") else None
        if best and not (folder is not None and (folder / Path(best).name).is_file()):
            where = shown_path(folder) if folder is not None else "the new run folder"
            return (
                f"the run's best checkpoint so far, {Path(best).name}, is not in {where}: the test will use the best of the "
                "validations from here on"
            )
    return None


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
