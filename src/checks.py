"""The composed training config, checked before anything is built or written; each failure a :class:`ConfigError`.

Types and unknown keys: pydantic, against the type hints of what each ``_target_`` names (``torch.optim.AdamW``,
``lightning.pytorch.Trainer``, this project's classes), strict on the values as JSON holds them: ``abc``, ``1.5`` or
``true`` where a whole number belongs are refused, not converted; a list stands for a tuple. Ranges: the classes check
their own when they are built; here, only those Lightning looks at mid-run, and the rules no single class knows.
"""

import json
import os
import tempfile
import urllib.request
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_object
from omegaconf import DictConfig
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.experimental.arguments_schema import generate_arguments_schema
from pydantic_core import SchemaValidator

from src.cli import ConfigError, first_error, require_extra, resolved, show, typed, validated
from src.data.datasets import DATASETS
from src.data.mnist import TRAIN_IMAGES
from src.loggers import logger_configs

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


def folder_name(name: str) -> str:
    if name in ("", ".", "..") or "/" in name:
        raise ValueError("not a folder name; use text without /")
    return name


GROUPS = ("model", "loss", "optimizer", "scheduler", "data", "trainer", "logger", "callbacks")


class TrainSettings(BaseModel):
    """conf/train.yaml's own keys (its groups are checked each by its target); an unknown one (``+foo=1``) is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: Annotated[str, AfterValidator(folder_name)]
    log_dir: str = Field(min_length=1)
    seed: int = Field(ge=0)
    mixup: float = Field(ge=0)
    ckpt_path: str | None
    init_from: str | None
    print_config: bool


class TrainerRanges(BaseModel):
    """The ranges of Trainer settings that Lightning looks at only in the middle of a run (or never)."""

    model_config = ConfigDict(extra="allow")
    accumulate_grad_batches: int = Field(1, ge=1)
    log_every_n_steps: int | None = Field(None, ge=1)
    check_val_every_n_epoch: int | None = Field(1, ge=1)
    val_check_interval: float | None = Field(None, gt=0)
    gradient_clip_val: float | None = Field(None, ge=0)


class OptimizerRanges(BaseModel):
    """torch takes a learning rate of 0 (and then trains nothing)."""

    model_config = ConfigDict(extra="allow")
    lr: float = Field(gt=0)


def check(cfg: DictConfig) -> None:
    """Refuse every setting that would fail later, after data was fetched or time was spent."""
    settings = resolved(cfg)
    validated("", TrainSettings, {key: value for key, value in settings.items() if key not in GROUPS}, GROUPS)
    if settings["ckpt_path"] is not None and settings["init_from"] is not None:
        raise ConfigError(
            f"init_from={settings['init_from']}: give ckpt_path (resume a run as it was) or init_from (a new run from its "
            "weights), not both"
        )
    for group in ("model", "loss", "optimizer", "scheduler", "data", "trainer"):
        if settings[group]:  # scheduler=none is empty
            check_arguments(group, settings[group], GIVEN_BY_CODE.get(group, {}))
    for key, node in logger_configs(settings.get("logger")).items():
        check_arguments(key, node, GIVEN_BY_CODE["logger"])
    for name, node in (settings.get("callbacks") or {}).items():
        if node is not None:  # callbacks.<name>: null leaves it out (src/builders.py)
            check_arguments(f"callbacks.{name}", node)
    validated("trainer", TrainerRanges, settings["trainer"])
    validated("optimizer", OptimizerRanges, settings["optimizer"])
    check_data(settings["data"])
    check_run_length(settings["trainer"])
    check_machine(settings)
    check_hydra_choices(cfg)


def check_arguments(key: str, node: Mapping[str, Any], given_by_code: Mapping[str, str] | None = None) -> None:
    """The arguments in ``node`` (a config with a ``_target_``) against the type hints of that target, by pydantic; a
    nested config with a ``_target_`` of its own (a Trainer's ``plugins``, a ``strategy``) against its own target."""
    given_by_code = given_by_code or {}
    arguments = {name: value for name, value in node.items() if not name.startswith("_")}
    for name, value in list(arguments.items()):
        nested = value if isinstance(value, list) else [value]
        if nested and all(isinstance(item, dict) and "_target_" in item for item in nested):
            for index, item in enumerate(nested):
                check_arguments(f"{key}.{name}" + (f"[{index}]" if isinstance(value, list) else ""), item)
            del arguments[name]
        elif name in given_by_code:
            raise ConfigError(f"{key}.{name}={show(value)}: set by the project; {given_by_code[name]}")
    try:
        validator, names = arguments_validator(node["_target_"], tuple(given_by_code))
    except (ImportError, AttributeError) as error:
        reason = error.__cause__ or error  # Hydra's wrapper of the import's own error
        raise ConfigError(f"{key}._target_={node['_target_']}: cannot be imported ({reason}); check its spelling") from None
    try:
        validator.validate_json(json.dumps(arguments), strict=True)
    except ValidationError as error:
        raise ConfigError(first_error(key, error, arguments, names, node["_target_"])) from None


@cache
def arguments_validator(target_path: str, skipped: tuple[str, ...]) -> tuple[SchemaValidator, list[str]]:
    """pydantic's validator of the keyword arguments of ``target_path`` (a class: its ``__init__``), and their names;
    the arguments the project passes itself are left out."""
    target = get_object(target_path)
    function = target.__init__ if isinstance(target, type) else target

    def leave_out(index: int, name: str, annotation: Any) -> str | None:
        return "skip" if name in skipped or name == "self" else None

    config = ConfigDict(arbitrary_types_allowed=True)  # a hint naming a class (Strategy, Tensor) is an isinstance check
    schema = generate_arguments_schema(function, schema_type="arguments", parameters_callback=leave_out, config=config)
    return SchemaValidator(schema), [argument["name"] for argument in schema["arguments_schema"]]


def check_data(data: Mapping[str, Any]) -> None:
    """The rules that tie the DataModule's arguments together (its signature checks each alone)."""
    data_set, train = DATASETS[data["dataset"]], TRAIN_IMAGES - data["val_size"]
    if data["batch_size"] > train:
        raise ConfigError(
            f"data.batch_size={data['batch_size']}: out of range; use a whole number 1 to {train} (the training split)"
        )
    if data["num_workers"] and data["loader"] == "device":  # else silently unused
        raise ConfigError(
            f"data.num_workers={data['num_workers']}: workers feed loader=dataloader only (loader=device, the default, keeps "
            "each split on the device and needs none); add data.loader=dataloader, or leave num_workers out"
        )
    if data["tutorial_order"] and data["loader"] != "device":
        raise ConfigError("data.tutorial_order=true: the tutorial's batches are served by data.loader=device only")
    if unserved := [source for source in data["sources"] or () if source not in data_set.sources]:
        served = show(list(data_set.sources))
        raise ConfigError(f"data.sources={show(data['sources'])}: {unserved[0]} does not serve {data_set.title}; use {served}")
    if data["flip"] and not data_set.mirrorable:
        raise ConfigError(
            f"data.flip={data['flip']}: a mirrored {data_set.noun} is no longer of its class (a mirrored 7 is no digit); flips "
            "are for data sets whose classes are mirror images of themselves (data=fashion_mnist): leave data.flip at 0"
        )


def check_run_length(trainer: Mapping[str, Any]) -> None:
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if max_steps == 0:
        raise ConfigError("trainer.max_steps=0: use -1 (no limit) or a whole number >= 1")
    if not (isinstance(max_epochs, int) and max_epochs >= 1 or max_epochs in (-1, None) and max_steps > 0):
        raise ConfigError(
            f"trainer.max_epochs={show(max_epochs)}: a run needs a length; use a whole number >= 1, or -1 with "
            "trainer.max_steps > 0"
        )


def writable(folder: Path) -> bool:
    """Could ``folder`` be created and written? Tried for real on its nearest existing parent (permission bits do not
    stop root), leaving nothing behind."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing):
            return existing.is_dir()
    except OSError:
        return False


def check_machine(settings: Mapping[str, Any]) -> None:
    """What this machine must offer: enough devices, writable data and log folders, a logger's package and server."""
    trainer, data = settings["trainer"], settings["data"]
    accelerator, devices = trainer.get("accelerator"), trainer.get("devices")
    gpu = accelerator in ("gpu", "cuda") or accelerator == "auto" and torch.cuda.is_available()
    available, unit = (torch.cuda.device_count(), "GPU(s)") if gpu else (os.cpu_count() or 1, "CPU core(s)")
    if isinstance(devices, int) and not isinstance(devices, bool) and 0 < available < devices:  # that many processes
        raise ConfigError(f"trainer.devices={devices}: {available} {unit} here; use 1 to {available}")
    if data.get("dataset") in DATASETS and not writable(raw := Path(data["data_dir"]) / DATASETS[data["dataset"]].folder):
        raise ConfigError(f"data.data_dir={data['data_dir']}: cannot write to {raw}; point data.data_dir at a writable folder")
    if not writable(Path(settings["log_dir"])):
        log_dir = settings["log_dir"]
        raise ConfigError(f"log_dir={log_dir}: cannot write to {log_dir}; point log_dir at a writable folder")
    for key, node in logger_configs(settings.get("logger")).items():
        if node["_target_"].endswith("MLFlowLogger"):
            check_mlflow(key, node)


def check_mlflow(key: str, node: Mapping[str, Any]) -> None:
    """MLflow is installed, and its tracking server (if one is named) answers within seconds: MLflow's own client
    retries for minutes before it gives up, silently."""
    require_extra(f"{key}=mlflow", "mlflow", "mlflow")
    uri = str(node.get("tracking_uri") or "")
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5):
                pass
        except OSError as error:
            raise ConfigError(
                f"{key}.tracking_uri={uri}: no MLflow server answers there ({getattr(error, 'reason', error)}); start one "
                f"(mlflow server --host ... --port ...) or leave {key}.tracking_uri out for the local store under log_dir"
            ) from None


def check_hydra_choices(cfg: DictConfig) -> None:
    """What only Hydra's record of the command line tells: a search without ``-m``, a list of one-object configs."""
    if not HydraConfig.initialized():  # composed by hand (tests, notebooks)
        return
    hydra = HydraConfig.get()
    if hydra.mode == RunMode.RUN and hydra.runtime.choices.get("hparams_search"):
        choice = f"hparams_search={hydra.runtime.choices.hparams_search}"
        raise ConfigError(f"{choice}: a search runs many trials and needs multirun; python -m src.train -m {choice}")
    for group in GROUPS[:-1]:  # each builds one object (callbacks files add their entries up: a list of them is fine)
        if group in cfg and group not in hydra.runtime.choices:  # composed, but from a list of the group's files
            use = "logger=many for tensorboard and csv" if group == "logger" else "one file of the group"
            raise ConfigError(f"{typed(group)}: one {group} config at a time (Hydra merges a list of them into one); {use}")
