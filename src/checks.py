"""Checks of the composed training config, made before anything is built or written.

Every value is checked by type against the signature of what it configures (``src/signatures.py``); ranges are checked
by the classes themselves when they are built, and here for the Trainer's settings, which Lightning only looks at in
the middle of training. What else is here: rules against this machine (a GPU, devices, writable folders) and across
keys. Each failure is a :class:`ConfigError` of one line.
"""

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.accelerators import AcceleratorRegistry
from omegaconf import DictConfig, OmegaConf

from src.builders import plain
from src.cli import CONF_DIR, ConfigError, shown_path
from src.data.datasets import DATASETS, MNIST
from src.loggers import logger_configs
from src.signatures import check_arguments, show
from src.validate import whole_number

# Loggers whose package is an optional extra: the package, the pyproject extra that installs it.
LOGGER_PACKAGES = {"MLFlowLogger": ("mlflow", "mlflow")}

# The arguments the project passes itself, for each group's target, and what a user sets instead.
RUN_FOLDER = "runs go to <log_dir>/<name>/version_<N>/: set log_dir or name"
GIVEN_BY_CODE = {
    "loss": {"logits": "the classifier passes the network's output", "targets": "the classifier passes the labels"},
    "optimizer": {"params": "the classifier passes the network's parameters"},
    "scheduler": {"optimizer": "the classifier passes the optimizer", "total_steps": "the run's length decides it"},
    "trainer": {
        "logger": "choose logger=tensorboard | csv | mlflow | many | none",
        "callbacks": "choose callbacks=default | minimal | none, or drop one with ~callbacks.<name>",
        "default_root_dir": RUN_FOLDER,
    },
    "logger": {"save_dir": RUN_FOLDER, "name": RUN_FOLDER, "version": RUN_FOLDER},
}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _nothing_written_yet_writable(folder: Path) -> bool:
    """Could ``folder`` be created and written? Tried for real on its nearest existing parent (permission bits do
    not stop root), leaving nothing behind."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing):
            return existing.is_dir()
    except OSError:
        return False


def _is_fraction_or_count(value: Any) -> bool:
    """Lightning's ``limit_*_batches``, ``overfit_batches``: a fraction 0.0-1.0 of the batches, or a count >= 0."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) and value >= 0 or isinstance(value, float) and 0.0 <= value <= 1.0


def check_types(cfg: DictConfig) -> None:
    """Every key of every group against its target's signature; the top-level keys against conf/train.yaml."""
    top_level = set(OmegaConf.load(CONF_DIR / "train.yaml")) - {"defaults", "hydra"}
    groups = {"model", "loss", "optimizer", "scheduler", "data", "trainer", "logger", "callbacks"}
    known = ", ".join(sorted(top_level | groups))
    for key in cfg:
        _require(key in top_level | groups, f"{key}={show(plain(cfg[key]))}: no such setting; the top-level keys are {known}")
    seed, name = cfg.seed, cfg.name
    try:
        whole_number("seed", seed, 0)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    _require(
        isinstance(name, str) and name not in ("", ".", "..") and "/" not in name,
        f"name={show(name)}: not a folder name; use text without /",
    )
    for key in ("ckpt_path", "init_from"):
        value = cfg[key]
        _require(value is None or isinstance(value, str), f"{key}={show(value)}: wrong type; use a .ckpt file path, last or null")
    _require(
        cfg.ckpt_path is None or cfg.init_from is None,
        f"init_from={cfg.init_from}: give ckpt_path (resume a run as it was) or init_from (a new run from its weights), not both",
    )
    _require(isinstance(cfg.log_dir, str) and cfg.log_dir != "", f"log_dir={show(cfg.log_dir)}: not a folder; use a folder path")
    _require(isinstance(cfg.print_config, bool), f"print_config={show(cfg.print_config)}: wrong type; use true or false")
    try:
        for group in sorted(groups - {"callbacks", "logger"}):
            node = plain(cfg[group])
            if node:  # scheduler=none is empty
                check_arguments(group, node, GIVEN_BY_CODE.get(group))
        for name, node in logger_configs(cfg).items():
            check_arguments(name, plain(node), GIVEN_BY_CODE["logger"])
            package, extra = LOGGER_PACKAGES.get(node._target_.rpartition(".")[2], (None, None))
            if package and importlib.util.find_spec(package) is None:
                raise ConfigError(f"{name}={package}: {package} is not installed; pip install -e '.[{extra}]'")
        for name, node in plain(cfg.get("callbacks") or {}).items():
            if node is not None:  # callbacks.<name>: null leaves it out (src/builders.py)
                check_arguments(f"callbacks.{name}", node)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def check_trainer_ranges(trainer: DictConfig) -> None:
    """Ranges of the Trainer's settings that Lightning checks late (in the middle of a run) or never."""

    def named(key: str) -> str:
        return f"trainer.{key}={show(trainer.get(key))}"

    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches"):
        if key in trainer:
            _require(_is_fraction_or_count(trainer[key]), f"{named(key)}: use a fraction 0.0-1.0 of the batches or a count >= 0")
    try:
        whole_number("log_every_n_steps", trainer.get("log_every_n_steps", 50), 1)
        whole_number("accumulate_grad_batches", trainer.get("accumulate_grad_batches", 1), 1)
        whole_number("max_steps", trainer.get("max_steps", -1), -1)
        whole_number("num_sanity_val_steps", trainer.get("num_sanity_val_steps", 2), -1)
        if trainer.get("check_val_every_n_epoch") is not None:
            whole_number("check_val_every_n_epoch", trainer.check_val_every_n_epoch, 1)
    except ValueError as error:
        raise ConfigError(f"trainer.{error}") from error
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)  # ~trainer.max_epochs: None
    _require(max_steps != 0, f"{named('max_steps')}: use -1 (no limit) or a whole number >= 1")
    _require(
        max_epochs == -1 and max_steps > 0 or isinstance(max_epochs, int) and max_epochs >= 1,
        f"{named('max_epochs')}: a run needs a length; use a whole number >= 1, or -1 with trainer.max_steps > 0",
    )
    clip = trainer.get("gradient_clip_val")
    _require(clip is None or clip >= 0, f"{named('gradient_clip_val')}: use null (off) or a number >= 0")
    interval = trainer.get("val_check_interval")
    _require(
        interval is None or isinstance(interval, float) and 0 < interval <= 1 or isinstance(interval, int) and interval >= 1,
        f"{named('val_check_interval')}: use a fraction of an epoch (0.0-1.0] or a number of batches >= 1",
    )


def check_accelerator(key: str, accelerator: str) -> None:
    """The accelerator exists and this machine has it; ``key`` is the setting as the command names it
    (``trainer.accelerator`` for src.train, ``accelerator`` for src.eval)."""
    named = f"{key}={accelerator}"
    if accelerator in ("gpu", "cuda"):
        _require(
            torch.cuda.is_available(),
            f"{named}: no CUDA GPU is visible on this machine; use {key}=cpu (or auto, which picks a GPU when there is one)",
        )
        return
    known = AcceleratorRegistry.available_accelerators()
    _require(accelerator == "auto" or accelerator in known, f"{named}: no such accelerator; use auto, cpu or gpu")
    accelerator_class = AcceleratorRegistry[accelerator]["accelerator"] if accelerator in known else None
    _require(
        accelerator_class is None or accelerator_class.is_available(),
        f"{named}: not available on this machine; use {key}=cpu (or auto)",
    )


def check_machine(cfg: DictConfig) -> None:
    """What this machine must offer: the accelerator, enough devices, writable data and log folders."""
    trainer = cfg.trainer
    accelerator = str(trainer.accelerator)
    check_accelerator("trainer.accelerator", accelerator)
    if accelerator in ("gpu", "cuda"):
        available, unit = torch.cuda.device_count(), "GPU(s)"
    else:
        available, unit = os.cpu_count() or 1, "CPU core(s)"
    devices = trainer.devices
    if isinstance(devices, int) and not isinstance(devices, bool):  # Lightning would start that many processes
        _require(1 <= devices <= available, f"trainer.devices={devices}: {available} {unit} here; use 1 to {available}")
    data_set = DATASETS.get(cfg.data.get("dataset"), MNIST)  # an unknown name is refused by the DataModule, by name
    raw = Path(cfg.data.data_dir) / data_set.folder / "raw"
    data_dir = cfg.data.data_dir
    _require(
        _nothing_written_yet_writable(raw),
        f"data.data_dir={data_dir}: cannot write to {raw}; point data.data_dir at a writable folder",
    )
    _require(
        _nothing_written_yet_writable(Path(cfg.log_dir)),
        f"log_dir={cfg.log_dir}: cannot write to {cfg.log_dir}; point log_dir at a writable folder",
    )


def check_config(cfg: DictConfig) -> None:
    """Reject settings that would fail later, after data was fetched or time was spent."""
    check_types(cfg)
    check_trainer_ranges(cfg.trainer)
    check_machine(cfg)


# What a resume (ckpt_path=) continues with: the run's own settings. The Trainer's, the loggers' and the callbacks' may
# change (train longer, on a GPU, ...), and so may where the data comes from.
KEPT_ON_RESUME = ("seed", "model", "loss", "optimizer", "scheduler", "data")
FREE_ON_RESUME = {"data.data_dir", "data.sources", "data.num_workers", "data.loader"}


def _flat(node: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    return {key: value for name, child in node.items() for key, value in _flat(child, f"{prefix}.{name}").items()}


def check_resume_settings(cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to resume a run with other settings than it was started with (its ``config.yaml``): ``ckpt_path=last``
    after ``experiment=fast`` would otherwise continue with the default loss and learning rate, without a word."""
    started = run_dir / "config.yaml"
    if not started.is_file():
        return
    before, now = OmegaConf.to_container(OmegaConf.load(started)), plain(cfg)
    changed = []
    for key in KEPT_ON_RESUME:
        then, current = _flat(before.get(key), key), _flat(now.get(key), key)
        for name in dict.fromkeys([*then, *current]):
            if name not in FREE_ON_RESUME and then.get(name) != current.get(name):
                changed.append(f"{name}={show(then.get(name))} (now {show(current.get(name))})")
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path}: the run was started with {', '.join(changed[:3])}{more}; resume it with its own "
            f"settings ({shown_path(started)}: the same experiment= and overrides), or start a new run from its weights "
            f"with init_from={cfg.ckpt_path}"
        )
