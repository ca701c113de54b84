"""A run's settings, read, checked and decided in one place: :func:`load` turns the composed config and its context
(Hydra's runtime, the DDP ranks' environment) into a frozen :class:`RunSpec`, or raises one :class:`ConfigError` line.
Nothing below it looks the context up again.

Types, unknown keys and ranges: pydantic, once, against the signature of what each ``_target_`` names (this project's
classes declare their ranges there), strict on the values as JSON holds them. Here too: the rules no single class
knows (run length, the batch against the split, what Lightning refuses only as it sets a run up), what torch checks
only in its constructors, this machine (devices, folders, a logger's server), and what a checkpoint allows.
"""

import difflib
import importlib.util
import json
import math
import os
import re
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.experimental.arguments_schema import generate_arguments_schema
from pydantic_core import SchemaValidator

from src import checkpoints, ranks, runs
from src.cli import ConfigError, first_line, overrides_of, show
from src.data.datasets import DATASETS, TEST_IMAGES, TRAIN_IMAGES

GROUPS = ("model", "loss", "optimizer", "scheduler", "data", "trainer", "logger", "callbacks")
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
VALIDATION_METRICS = ("acc/val", "loss/val")  # what Classifier.validation_step logs: what a callback may monitor
# The settings people compare runs by (TensorBoard's HPARAMS, MLflow's params), each named by its last part.
COMPARED = (
    "data.dataset optimizer.lr optimizer.weight_decay model.dropout model.input_dropout data.batch_size trainer.max_epochs "
    "trainer.accumulate_grad_batches data.rotate data.scale data.shift data.elastic_alpha data.flip data.erase "
    "mixup trainer.precision seed"
).split()


def folder_name(name: str) -> str:
    if name in ("", ".", "..") or "/" in name:
        raise ValueError("not a folder name; use text without /")
    return name


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


def duration(text: str) -> str:
    """Lightning's text form of a Trainer's ``max_time``: days, hours, minutes and seconds."""
    if not re.fullmatch(r"\d+:\d+:\d+:\d+", text):
        raise ValueError("Input should be a duration DD:HH:MM:SS such as 00:01:30:00")
    return text


BATCHES = Annotated[int | float, Field(ge=0)]  # a count of batches, or a share of them (check_epoch)


class TrainerRanges(BaseModel):
    """The ranges of Trainer settings that Lightning looks at only in the middle of a run (or never), or only as it
    builds the Trainer (which a sweep's check, before any job, does not)."""

    model_config = ConfigDict(extra="allow")
    limit_train_batches: BATCHES | None = None
    limit_val_batches: BATCHES | None = None
    limit_test_batches: BATCHES | None = None
    max_time: Annotated[str, AfterValidator(duration)] | None = None  # a dict reaches Lightning as a DictConfig: fails
    accumulate_grad_batches: int = Field(1, ge=1)
    log_every_n_steps: int | None = Field(None, ge=1)
    check_val_every_n_epoch: int | None = Field(1, ge=1)
    val_check_interval: float | None = Field(None, gt=0)
    gradient_clip_val: float | None = Field(None, ge=0)


class OptimizerRanges(BaseModel):
    """torch takes a learning rate of 0 (and then trains nothing)."""

    model_config = ConfigDict(extra="allow")
    lr: float = Field(gt=0)


@dataclass(frozen=True)
class Context:
    """What the composed config does not hold: the command line's overrides, the groups' choices, and for a sweep's job
    its folder and swept overrides (Hydra's runtime), and on a SLURM cluster how often it was requeued (its environment);
    for a DDP rank started by rank 0, rank 0's run folder."""

    overrides: tuple[str, ...] = ()
    choices: Mapping[str, Any] = field(default_factory=dict)
    multirun: bool = False
    job_dir: Path | None = None
    swept: tuple[str, ...] = ()
    rank_zero_dir: Path | None = None
    cluster_job: bool = False  # a job of hydra/launcher=slurm, in a process of its own
    restarts: int = 0  # how often SLURM has requeued this job

    @classmethod
    def of(cls, hydra: DictConfig | None) -> "Context":
        """Read from Hydra's config (``HydraConfig.get()``, or a composed config's ``hydra`` node); none: composed by hand
        (tests, notebooks)."""
        rank_zero_dir = ranks.rank_zero_run_dir()
        if hydra is None:
            return cls(rank_zero_dir=rank_zero_dir)
        multirun = hydra.mode == RunMode.MULTIRUN
        fixed = hydra.job.config.override_dirname.exclude_keys
        overrides = tuple(hydra.overrides.task)
        swept = sorted(o for o in overrides if o.lstrip("+~").partition("=")[0] not in fixed) if multirun else []
        job_dir = Path(hydra.runtime.output_dir) if multirun and hydra.runtime.output_dir else None
        cluster = (os.environ.get("SUBMITIT_EXECUTOR") == "slurm", int(os.environ.get("SLURM_RESTART_COUNT", "0")))
        choices = OmegaConf.to_container(hydra.runtime.choices)
        return cls(overrides, choices, multirun, job_dir, tuple(swept), rank_zero_dir, *cluster)

    @classmethod
    def current(cls) -> "Context":
        """The context of the command Hydra runs; outside one (a config composed by hand), none."""
        return cls.of(HydraConfig.get() if HydraConfig.initialized() else None)


@dataclass(frozen=True)
class RunSpec:
    """A checked run, as :func:`src.build.build` builds it."""

    config: dict[str, Any]  # the composed config, resolved: each group's settings, what checkpoints keep
    run_dir: Path
    new_folder: bool  # to be claimed (not a resume's, a sweep job's or rank 0's)
    start: checkpoints.Start  # a checkpoint to resume, or weights to start from
    loggers: dict[str, dict[str, Any]]  # each configured logger by its key (logger, logger.csv, ...)
    settings: dict[str, Any]  # what tells this run apart from others, for the loggers
    context: Context


def load(cfg: DictConfig, context: Context | None = None) -> RunSpec:
    """Check the composed training config against its targets and this machine, and decide where the run goes and what
    it starts from; a :class:`ConfigError` for the first thing that would fail later."""
    # The thread count set to what it is, before torch's first operation here: torch then also turns MKL's dynamic
    # threading off, under which one matrix product may run on fewer threads than another and round its sums otherwise
    # (a resume would not match a straight run).
    torch.set_num_threads(torch.get_num_threads())
    context = context or Context.current()
    config = resolved(cfg)
    check(config, context)
    settings = compared_settings(config, context)
    loggers = logger_configs(config.get("logger"))
    own = context.job_dir / "checkpoints" / "last.ckpt" if context.restarts and context.job_dir else None
    start = checkpoints.starting_point(config, requeued=own)  # a requeued job: submitit's resubmission names none
    runs_dir = Path(config["log_dir"]) / config["name"]
    run_dir, new = runs.run_folder(runs_dir, start.checkpoint, context.job_dir, context.rank_zero_dir)
    return RunSpec(config, run_dir, new, start, loggers, settings, context)


def call(function: Callable[..., Any], cfg: DictConfig) -> Any:
    """What an entry point after training runs, called with its composed settings (conf/eval.yaml, ...) once pydantic
    has checked them against the function's signature, where their ranges are declared. A value left ``???`` arrives
    as None: the function says what it needs (a checkpoint, an image)."""
    settings = {key: None if value == "???" else value for key, value in resolved(cfg).items()}
    validator, names = arguments_validator(function, ())
    try:
        validator.validate_json(json.dumps(settings), strict=True)
    except ValidationError as error:
        raise ConfigError(first_error("", error, settings, names, function.__name__)) from None
    return function(**settings)


def resolved(node: Any) -> Any:
    """A resolved plain-Python copy of a config node, its ``~/`` paths expanded (as a shell would, where one did not:
    a quoted value, a config file): what is checked, and what goes into checkpoints."""
    value = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item) for item in value]
    return os.path.expanduser(value) if isinstance(value, str) and (value == "~" or value.startswith("~/")) else value


def check(config: dict[str, Any], context: Context) -> None:
    check_model("", TrainSettings, {key: value for key, value in config.items() if key not in GROUPS}, GROUPS)
    if config["ckpt_path"] is not None and config["init_from"] is not None:
        raise ConfigError(
            f"init_from={config['init_from']}: give ckpt_path (resume a run as it was) or init_from (a new run from its "
            "weights), not both"
        )
    check_hydra_choices(config, context)
    for group in ("model", "loss", "optimizer", "scheduler", "data", "trainer"):
        if config[group]:  # scheduler=none is empty
            check_arguments(group, config[group], GIVEN_BY_CODE.get(group, {}))
    for key, node in logger_configs(config.get("logger")).items():
        check_arguments(key, node, GIVEN_BY_CODE["logger"])
    for name, node in (config.get("callbacks") or {}).items():
        if node is not None:  # callbacks.<name>: null leaves it out (src/build.py)
            check_arguments(f"callbacks.{name}", node)
            if node.get("monitor") not in (None, *VALIDATION_METRICS):  # else Lightning fails at the first validation
                raise ConfigError(
                    f"callbacks.{name}.monitor={node['monitor']}: not a metric every validation logs; monitor "
                    f"{' or '.join(VALIDATION_METRICS)}"
                )
            if node["_target_"].endswith("EarlyStopping") and config["trainer"].get("limit_val_batches") == 0:
                raise ConfigError(  # else Lightning fails at the end of the first epoch
                    f"trainer.limit_val_batches=0: callbacks.{name} stops on {node['monitor']}, which only validation "
                    f"logs; give validation batches, or leave early stopping out (~callbacks.{name})"
                )
    if config["trainer"].get("barebones"):  # Lightning then refuses the loggers, callbacks and self.log the run needs
        raise ConfigError(
            "trainer.barebones=true: a run of src.train logs, checkpoints and tests its best checkpoint, all of which "
            "barebones mode turns off; leave it out (benchmarks/ times the bare training step: docs/speed.md)"
        )
    check_model("trainer", TrainerRanges, config["trainer"])
    check_model("optimizer", OptimizerRanges, config["optimizer"])
    check_torch(config, context.overrides)
    check_data(config["data"])
    check_run_length(config["trainer"])
    check_epoch(config["data"], config["trainer"])
    check_machine(config)


def check_model(key: str, model: type[BaseModel], values: Mapping[str, Any], groups: tuple[str, ...] = ()) -> None:
    """``values`` against ``model``; an unknown key is told the model's keys and the config ``groups`` beside them."""
    try:
        model.model_validate(values)
    except ValidationError as error:
        raise ConfigError(first_error(key, error, values, [*model.model_fields, *groups])) from None


def logger_configs(node: Mapping[str, Any] | None) -> dict[str, Any]:
    """The configured loggers by their key: ``logger=tensorboard`` is one (``logger``), ``logger=many`` several
    (``logger.tensorboard``, ``logger.csv``, ...), ``logger=none`` none."""
    if not node:
        return {}
    if "_target_" in node:
        return {"logger": node}
    return {f"logger.{name}": entry for name, entry in node.items() if entry}


def check_arguments(key: str, node: Mapping[str, Any], given_by_code: Mapping[str, str] | None = None) -> None:
    """The arguments in ``node`` (a config with a ``_target_``) against the signature of that target, by pydantic: types
    and the ranges declared there; a nested config with a ``_target_`` of its own (a Trainer's ``plugins``) against its
    own target."""
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
def arguments_validator(target: str | Callable[..., Any], skipped: tuple[str, ...]) -> tuple[SchemaValidator, list[str]]:
    """pydantic's validator of the keyword arguments of ``target`` (a class: its ``__init__``; a path: what it names),
    and their names; the arguments the project passes itself are left out."""
    target = get_object(target) if isinstance(target, str) else target
    function = target.__init__ if isinstance(target, type) else target

    def leave_out(index: int, name: str, annotation: Any) -> str | None:
        return "skip" if name in skipped or name == "self" else None

    config = ConfigDict(arbitrary_types_allowed=True)  # a hint naming a class (Strategy, Tensor) is an isinstance check
    schema = generate_arguments_schema(function, schema_type="arguments", parameters_callback=leave_out, config=config)
    return SchemaValidator(schema), [argument["name"] for argument in schema["arguments_schema"]]


@contextmanager
def refused(group: str, overrides: tuple[str, ...] = ()) -> Iterator[None]:
    """What torch's or Lightning's constructors raise for ``group``, as one line: their message after the setting at
    fault, the one the command line gave the group (or the one of them the message names), else after the group and
    the settings given to it (``trainer (trainer.devices=2 trainer.accelerator=gpu): ...``)."""
    from lightning.pytorch.utilities.exceptions import MisconfigurationException  # Lightning: not on src.predict's path

    try:
        yield
    except (ValueError, TypeError, RuntimeError, ImportError, MisconfigurationException, InstantiationException) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ is not None else error
        if isinstance(cause, ConfigError):
            raise cause from None
        message, given = first_line(str(cause)), overrides_of(group, overrides)
        named = [o for o in given if re.search(rf"\b{re.escape(o.partition('=')[0].rpartition('.')[2])}\b", message)]
        at_fault = given if len(given) == 1 else named if len(named) == 1 else None
        where = at_fault[0] if at_fault else f"{group} ({' '.join(given)})" if given else group
        raise ConfigError(f"{where}: {message}") from error


def check_torch(config: dict[str, Any], overrides: tuple[str, ...]) -> None:
    """What torch checks only as it builds the optimizer and the schedule or calls the loss (``weight_decay=-1``,
    ``label_smoothing=1.5``): declared nowhere pydantic could read, so torch is asked, on a throwaway parameter."""
    with refused("loss", overrides):
        instantiate(config["loss"], _partial_=True)(torch.zeros(2, 2), torch.tensor([0, 1]))
    with refused("optimizer", overrides):
        optimizer = instantiate(config["optimizer"], params=[torch.nn.Parameter(torch.zeros(1))])
    if config["scheduler"]:
        with refused("scheduler", overrides):
            instantiate(config["scheduler"], optimizer=optimizer, total_steps=100)


def check_hydra_choices(config: dict[str, Any], context: Context) -> None:
    """What only Hydra's record of the command line tells: a search without ``-m``, a list of one-object configs."""
    if not context.choices:  # composed by hand (tests, notebooks)
        return
    if not context.multirun and context.choices.get("hparams_search"):
        choice = f"hparams_search={context.choices['hparams_search']}"
        raise ConfigError(f"{choice}: a search runs many trials and needs multirun; python -m src.train -m {choice}")
    for group in GROUPS[:-1]:  # each builds one object (callbacks files add their entries up: a list of them is fine)
        if group in config and group not in context.choices:  # composed, but from a list of the group's files
            use = "logger=many for tensorboard and csv" if group == "logger" else "one file of the group"
            typed = next((o for o in context.overrides if o.partition("=")[0] == group), group)
            raise ConfigError(f"{typed}: one {group} config at a time (Hydra merges a list of them into one); {use}")


def check_data(data: Mapping[str, Any]) -> None:
    """The rules that tie the DataModule's arguments together (its signature checks each alone)."""
    data_set, train = DATASETS[data["dataset"]], TRAIN_IMAGES - data["val_size"]
    if data["batch_size"] > train:
        raise ConfigError(f"data.batch_size={data['batch_size']}: out of range; use a whole number 1 to {train} (its split)")
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


def images(data: Mapping[str, Any], train: bool) -> int:
    """How many images a split's IDX file holds: its header where the file is there (its own checksums: any data set in
    MNIST's format), else the data set's official count."""
    name = "train-images-idx3-ubyte" if train else "t10k-images-idx3-ubyte"
    path = Path(data["data_dir"]) / DATASETS[data["dataset"]].folder / "raw" / name
    if path.is_file():
        with path.open("rb") as file:
            return int.from_bytes(file.read(8)[4:], "big")
    return TRAIN_IMAGES if train else TEST_IMAGES


def check_run_length(trainer: Mapping[str, Any]) -> None:
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if max_steps == 0:
        raise ConfigError("trainer.max_steps=0: use -1 (no limit) or a whole number >= 1")
    if not (isinstance(max_epochs, int) and max_epochs >= 1 or max_epochs in (-1, None) and max_steps > 0):
        raise ConfigError(
            f"trainer.max_epochs={show(max_epochs)}: a run needs a length; use a whole number >= 1, or -1 with "
            "trainer.max_steps > 0"
        )


def check_epoch(data: Mapping[str, Any], trainer: Mapping[str, Any]) -> None:
    """What Lightning checks only as it sets a run up, after it has written into the run folder, decided here from the
    data's size: a ``val_check_interval`` longer than an epoch, a ``limit_*_batches`` share that rounds to no batch."""
    devices = trainer.get("devices")  # a count below 1: check_machine refuses it
    ranks_ = devices if isinstance(devices, int) and devices > 0 else 1
    train = images(data, train=True) - (0 if data["tutorial_order"] else data["val_size"])
    whole = math.floor if data["tutorial_order"] else math.ceil  # the tutorial's order keeps whole batches only
    batches = {
        "train": whole(math.ceil(train / ranks_) / data["batch_size"]),
        "val": math.ceil(math.ceil(data["val_size"] / ranks_) / data["eval_batch_size"]),
        "test": math.ceil(math.ceil(images(data, train=False) / ranks_) / data["eval_batch_size"]),
    }
    for split, count in batches.items():
        limit = trainer.get(f"limit_{split}_batches")
        if isinstance(limit, float) and limit > 1:
            raise ConfigError(
                f"trainer.limit_{split}_batches={limit}: a share of the {split} batches is at most 1.0; give a share (0.25) "
                "or a whole number of batches (2)"
            )
        if isinstance(limit, float) and 0 < limit < 1 and int(count * limit) == 0:
            raise ConfigError(
                f"trainer.limit_{split}_batches={limit}: {limit} of {count} {split} batches is none; use at least {1 / count:.3g}"
            )
        if isinstance(limit, int) and not isinstance(limit, bool) or isinstance(limit, float) and limit < 1:
            batches[split] = min(count, limit) if isinstance(limit, int) else int(count * limit)
    if batches["test"] == 0:  # the summary is the test's
        raise ConfigError(
            f"trainer.limit_test_batches={trainer['limit_test_batches']}: src.train ends by testing the best checkpoint; give "
            "at least 1 batch (a share such as 0.1 tests fewer images)"
        )
    interval = trainer.get("val_check_interval")
    if isinstance(interval, int) and trainer.get("check_val_every_n_epoch") is not None and interval > batches["train"]:
        raise ConfigError(
            f"trainer.val_check_interval={interval}: longer than an epoch of {batches['train']} training batches; use at most "
            f"{batches['train']}, a share of an epoch (0.5), or trainer.check_val_every_n_epoch=null to count across epochs"
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


def check_machine(config: Mapping[str, Any]) -> None:
    """What this machine must offer: enough devices, writable data and log folders, a logger's package and server."""
    trainer, data = config["trainer"], config["data"]
    accelerator, devices = trainer.get("accelerator"), trainer.get("devices")
    gpu = accelerator in ("gpu", "cuda") or accelerator == "auto" and torch.cuda.is_available()
    available, unit = (torch.cuda.device_count(), "GPU(s)") if gpu else (os.cpu_count() or 1, "CPU core(s)")
    if isinstance(devices, int) and not isinstance(devices, bool) and available and not 0 < devices <= available:
        if not (gpu and devices == -1):  # -1: every GPU
            raise ConfigError(f"trainer.devices={devices}: {available} {unit} here; use 1 to {available}")
    if not gpu and str(trainer.get("precision")) in ("16-mixed", "16"):  # else Lightning warns and runs bf16-mixed
        raise ConfigError(f"trainer.precision={trainer['precision']}: float16 autocast needs a GPU; on a CPU use bf16-mixed")
    if not gpu:
        # Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import (asking for CUDA then starts nothing before a fork); on
        # a machine without a GPU, torch's optimizers would then look for NVML's library at every step (docs/speed.md).
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    if not writable(raw := Path(data["data_dir"]) / DATASETS[data["dataset"]].folder):
        raise ConfigError(f"data.data_dir={data['data_dir']}: cannot write to {raw}; point data.data_dir at a writable folder")
    if not writable(Path(log_dir := config["log_dir"])):
        raise ConfigError(f"log_dir={log_dir}: cannot write to {log_dir}; point log_dir at a writable folder")
    for key, node in logger_configs(config.get("logger")).items():
        if node["_target_"].endswith("MLFlowLogger"):
            check_mlflow(key, node)


def require_extra(setting: str, extra: str, *modules: str) -> None:
    """Refuse in one line what needs an optional dependency (a pyproject extra) that is not installed: its import would
    end in a traceback, and after the work done before it."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{setting}: needs {module}, which is not installed; pip install -e '.[{extra}]'")


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


def compared_settings(config: dict[str, Any], context: Context) -> dict[str, Any]:
    """The flat set of settings that tells runs apart (a swept ``optimizer.lr`` is the ``lr`` already there), with
    their real types; the optimizer, schedule, loss and widths by name."""

    composed = OmegaConf.create(config)

    def value(key: str) -> Any:
        found = OmegaConf.select(composed, key, default=None)
        return found if isinstance(found, bool | int | float | str) else str(found)

    groups = ("optimizer", "scheduler", "loss")
    settings = {group: str(context.choices.get(group) or value(f"{group}._target_")) for group in groups}
    settings["hidden"] = "x".join(str(width) for width in config["model"]["hidden"])
    names = {key: key.rpartition(".")[2] for key in COMPARED}
    settings |= {name: value(key) for key, name in names.items()}
    swept = [override.lstrip("+~").partition("=")[0] for override in context.swept]
    return settings | {names.get(key, key): str(context.choices[key]) if key in context.choices else value(key) for key in swept}


def first_error(
    key: str, error: ValidationError, given: Mapping[str, Any], names: list[str] | None = None, target: str = ""
) -> str:
    """pydantic's first error as one line, ``<key>.<name>=<value>: <what pydantic says>``; where a union was tried
    (``Literal``s, ``int | bool``), what each of its members takes."""
    errors = [e for e in error.errors(include_url=False) if e["type"] != "needs_python_object"]  # Tensor, in a union
    first = errors[0]
    name = str(first["loc"][0])
    setting = f"{key}.{name}" if key else name
    value = show(given.get(name, first["input"]))
    if first["type"] == "extra_forbidden":  # a model of this project: the top-level keys
        return f"{setting}={value}: no such setting; the top-level keys are {', '.join(names or [])}"
    if first["type"] == "unexpected_keyword_argument":
        close = difflib.get_close_matches(name, names or [], n=1)
        takes = f"it takes {', '.join(names or [])}" if len(names or []) <= 12 else "see its documentation for what it takes"
        return f"{setting}={value}: {target} has no such argument; " + (f"did you mean {key}.{close[0]}?" if close else takes)
    messages = [e["msg"].removeprefix("Value error, ") for e in errors if str(e["loc"][0]) == name]
    alternatives = " or ".join(dict.fromkeys(message.removeprefix("Input should be ") for message in messages))
    return f"{setting}={value}: {'Input should be ' if messages[0].startswith('Input should be ') else ''}{alternatives}"
