"""What every entry point shares: Hydra runs it, and every refusal, Hydra's or the project's, is one line.

A refusal reads ``error: <key>=<value>: <what is wrong>; <what to do>`` on stderr, exit status 2, no traceback
(``HYDRA_FULL_ERROR=1`` shows one). The project raises :class:`ConfigError` with that message; Hydra's refusals of the
command line are worded here from their exceptions' attributes. No Lightning here: ``src.predict`` starts fast.
"""

import difflib
import functools
import gc
import logging
import os
import shlex
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

# Config choices that come from optional Hydra plugins: the missing config -> the pyproject extra that installs it.
PLUGIN_EXTRAS = {"hydra/launcher/joblib": "parallel", "hydra/launcher/submitit_slurm": "slurm", "hydra/sweeper/optuna": "optuna"}
CONF = Path(__file__).resolve().parent.parent / "conf"
TRACEBACK_VARIABLE = "MNIST_LIGHTNING_FULL_ERROR"  # the user's own HYDRA_FULL_ERROR, kept for the processes started


class ConfigError(ValueError):
    """A setting that cannot work; the message reads ``<key>=<value>: <what is wrong>; <what to do>``."""


def run(hydra_main: Callable[[], Any]) -> None:
    """Call a ``@hydra.main`` function so that each refusal is one line. With ``HYDRA_FULL_ERROR=1`` Hydra raises what
    it would print in its own layout: what it raises before it hands over to the task (the command line refused) is
    worded by :func:`hydra_refusal`; anything else the task raises is a bug, shown with its traceback."""
    register_resolvers()
    os.environ.setdefault(TRACEBACK_VARIABLE, os.environ.get("HYDRA_FULL_ERROR", ""))
    os.environ["HYDRA_FULL_ERROR"] = "1"
    quiet_lightning()
    # What the imports built (torch's, Lightning's objects) lives as long as the process: frozen, the garbage collector
    # stops scanning it at every full collection and at exit (docs/speed.md has the seconds this saves). The entry
    # points, run as commands, paused the collector for their imports (src/train.py says why): it resumes here.
    gc.freeze()
    gc.enable()
    try:
        hydra_main()
    except Exception as error:
        if os.environ[TRACEBACK_VARIABLE] == "1" or not isinstance(error, ConfigError) and task.started:
            raise
        exit_with_error(error if isinstance(error, ConfigError) else hydra_refusal(error))


def register_resolvers() -> None:
    """The interpolations conf/ uses beyond OmegaConf's own, for what a SLURM job asks for (conf/hydra/launcher/slurm.yaml):
    ``${gpus_per_node:<accelerator>,<devices>}``, the devices of a run on GPUs, none for any other;
    ``${cpus_per_task:<tasks>}``, this machine's CPUs shared by a node's tasks."""
    OmegaConf.register_new_resolver(
        "gpus_per_node", lambda accelerator, devices: devices if accelerator in ("gpu", "cuda") else None, replace=True
    )

    def cpus_per_task(tasks: Any) -> int:  # devices=auto: one task
        return max(1, (os.cpu_count() or 1) // (tasks if isinstance(tasks, int) else 1))

    OmegaConf.register_new_resolver("cpus_per_task", cpus_per_task, replace=True)


def task(function: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """An entry point's task (under ``@hydra.main``): a :class:`ConfigError` it raises ends the command in one line
    (raised through Hydra, it would be printed after a line of Hydra's own)."""

    @functools.wraps(function)
    def run_task(cfg: DictConfig) -> Any:
        task.started = True
        quiet_lightning()  # here too: a SLURM job runs the task in a process of its own
        with refusals_exit():
            return function(cfg)

    return run_task


task.started = False  # Hydra has handed over to a task: what is raised from now on is no refusal of the command line
task.sweep_dir = None  # a multirun's folder, once Hydra has made it (src/sweeps.py)


@contextmanager
def refusals_exit() -> Iterator[None]:
    """A :class:`ConfigError` raised inside ends the command with its one line (``HYDRA_FULL_ERROR=1``: a traceback)."""
    try:
        yield
    except ConfigError as error:
        if os.environ.get(TRACEBACK_VARIABLE) == "1":
            raise
        exit_with_error(error)


def exit_with_error(error: Exception | str, status: int = 2) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(status)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def hydra_refusal(error: Exception) -> str:
    """What Hydra refused, as one line: a config file that is not there (its group, the choice and the options), an
    override it cannot parse, a key the composed config does not have (with the closest one that it has, or the ``+``
    that adds a real argument of the node's target), or a group override that composition refused (named alone)."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, choice = error.missing_cfg_file.rpartition("/")
        if extra := PLUGIN_EXTRAS.get(error.missing_cfg_file):
            return f"{group}={choice}: needs a Hydra plugin that is not installed; pip install -e '.[{extra}]'"
        return f"{group}={choice}: no such choice; choose from {', '.join(error.options or [])}"
    if isinstance(error, OverrideParseException):
        key, _, value = error.override.partition("=")
        quotes = "a value holding = , [ ] { } ( ) or spaces needs quotes, e.g. key='a=b'"
        if not value.isascii():
            quotes = f"non-ASCII text needs quotes: '{key}=\"{value}\"'"
        if value.startswith("~"):  # a shell that does not expand ~ after = (zsh): Hydra then reads its delete operator
            quotes = f"write the home folder out ({os.path.expanduser('~')}/...) or quote it: '{key}=\"{value}\"'"
        return f"{error.override}: Hydra cannot parse this ({first_line(error.message)}); {quotes}"
    if type(error).__module__.startswith("submitit"):  # sbatch refused the jobs: the cluster's word, not an override's
        sweep = task.sweep_dir
        if sweep is not None and sweep.is_dir() and not any(p.is_dir() and p.name[0] != "." for p in sweep.iterdir()):
            shutil.rmtree(sweep)  # no job has started (only submitit's .submitit/): the refused command leaves nothing
        return f"hydra/launcher=slurm: {first_line(str(error))}; check what the jobs ask for (hydra.launcher.partition, ...)"
    missing = error.__cause__
    if isinstance(missing, ConfigAttributeError | ConfigKeyError) and missing.full_key:
        return f"{as_typed(missing.full_key)}: {unknown_key_hint(missing.full_key, missing.parent_node)}"
    hydras = "; ".join(line.strip().rstrip(".") for line in str(error).splitlines() if line.strip())
    return override_at_fault(hydras)


def override_at_fault(refusal: str) -> str:
    """Hydra's refusal of a composition that names no override, with the one at fault in front: the first of the
    command line's overrides that Hydra refuses composed alone, else the first key (not group) without which the rest
    compose (``optimizer=sgd ~optimizer.betas``). A group set to null, or added with ``+`` where conf/train.yaml
    chooses it already (every group of conf/ is there), a key added with ``+`` that is there, or deleted with ``~``
    that is not, gets the hint that fits, from the config the other overrides compose."""
    from hydra._internal.utils import get_args_parser  # Hydra's own reading of its command line

    overrides = OverridesParser.create().parse_overrides(get_args_parser().parse_known_args()[0].overrides)
    lines = [override.input_line for override in overrides]
    others = {o.input_line: [line for line in lines if line != o.input_line] for o in overrides}
    at_fault = [o for o in overrides if not composes(o.input_line)]
    if not at_fault and composed(lines) is None:  # else it is no override that Hydra refuses (a flag: --resolve)
        at_fault = [o for o in overrides if not (CONF / o.key_or_group).is_dir() and composed(others[o.input_line]) is not None]
    for override in at_fault:
        group = override.key_or_group
        choices = sorted(path.stem for path in (CONF / group).glob("*.yaml"))
        if choices and (override.value() is None or isinstance(override.value(), bool)):  # logger=null, logger=false
            off = f"turn it off with {group}=none or ~{group}" if "none" in choices else None
            off = off or f"choose one of {', '.join(choices)}, or leave it out with ~{group}"
            return f"{override.input_line}: a config group is not set to {override.input_line.partition('=')[2]}; {off}"
        if choices and override.is_add():
            plain = override.input_line.removeprefix("+")
            return f"{override.input_line}: {group} is in conf/train.yaml's defaults already; choose it without +: {plain}"
        config = composed(others[override.input_line]) or composed([])
        if override.is_add() and config is not None and OmegaConf.select(config, group) is not None:
            plain = override.input_line.removeprefix("+")
            return f"{override.input_line}: {group} is in the config already; set it without +: {plain}"
        if override.is_delete() and config is not None:  # Hydra deletes no key that is absent or null
            if OmegaConf.select(config, group, default="absent") is None:
                return f"{override.input_line}: {group} is null already, nothing to delete; leave {override.input_line} out"
            parent = group.rpartition(".")[0]
            return f"{override.input_line}: {unknown_key_hint(group, OmegaConf.select(config, parent) if parent else config)}"
        return f"{override.input_line}: {refusal}"
    return refusal


def composes(override: str) -> bool:
    """Does the entry point's config (conf/<its name>.yaml) compose with ``override`` alone?"""
    return composed([override]) is not None


def composed(overrides: list[str]) -> DictConfig | None:
    """The entry point's config (conf/<its name>.yaml) composed with ``overrides``; None where Hydra refuses them."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    hydra = nullcontext() if GlobalHydra.instance().is_initialized() else initialize_config_dir(str(CONF), version_base="1.3")
    with hydra:
        try:
            return compose(Path(sys.argv[0]).stem, overrides=overrides)
        except Exception:
            return None


def overrides_of(key: str, arguments: Sequence[str]) -> list[str]:
    """The overrides among ``arguments`` that set ``key`` or a key below it (``trainer=ddp``, ``trainer.max_epoch=3``)."""
    return [argument for argument in arguments if f"{argument.lstrip('+~').partition('=')[0]}.".startswith(f"{key}.")]


def as_typed(key: str) -> str:
    """The command-line argument that set ``key`` or a key below it, as it was typed (``key`` if none did)."""
    return (overrides_of(key, sys.argv[1:]) or [key])[0]


def unknown_key_hint(key: str, parent: Any) -> str:
    """A hint for an unknown ``key``: where its node builds a ``_target_`` that takes such an argument, the ``+`` that
    adds it; else the closest key of the node it was looked up in (in the config the command line's own choices
    composed), else what that node holds."""
    prefix, _, name = key.rpartition(".")
    node = parent if isinstance(parent, DictConfig) else {}
    if "_target_" in node and name in target_arguments(str(node["_target_"])) and not as_typed(key).startswith("~"):
        given = as_typed(key).lstrip("+")
        return f"an argument of {node['_target_']} that its config does not list; add it with +{given}"
    file = CONF / "callbacks" / f"{name}.yaml"
    if prefix == "callbacks" and file.is_file() and not set(OmegaConf.load(file)) & set(node):  # a file not chosen
        return f"not among the callbacks chosen; add its file: 'callbacks=[default,{name}]'"
    keys = [str(k) for k in node if k != "hydra" and not str(k).startswith("_")]
    last = as_typed(key).lstrip("+~").partition("=")[0].rpartition(".")[2]  # extras.print_config: print_config
    if close := difflib.get_close_matches(name, keys, n=1) or difflib.get_close_matches(last, keys, n=1):
        return f"no such key; did you mean {prefix + '.' if prefix else ''}{close[0]}?"
    listed = ", ".join(keys) if len(keys) <= 16 else f"{len(keys)} keys (python -m src.{Path(sys.argv[0]).stem} --cfg job)"
    return f"no such key; {prefix + ' has' if prefix else 'the top-level keys are'} {listed}"


def target_arguments(target: str) -> list[str]:
    """The keyword arguments ``target`` takes (pydantic reads its signature); none where it cannot be imported."""
    from src.config import arguments_validator  # torch and Lightning: only on this path

    try:
        return arguments_validator(target, ())[1]
    except (ImportError, AttributeError):
        return []


def shown_path(path: str | Path) -> str:
    """A path as the project prints it: relative to the folder the command was started in (Hydra's runtime.cwd, which
    hydra.job.chdir=true leaves behind) when inside it, else absolute."""
    started_in = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else Path.cwd()
    relative = os.path.relpath(Path(path).resolve(), started_in)
    return relative if not relative.startswith("..") else str(Path(path).resolve())


def show(value: Any) -> str:
    """A value as it is typed on the command line: ``true``, ``null``, ``[512,512]``."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(show, value)) + "]"
    return str(value)


def setting(key: str, path: str | Path) -> str:
    """``key=<path>`` as Hydra's command line reads the path back: quoted where its grammar would take it apart
    (non-ASCII text, ``=``, brackets, ...)."""
    shown = shown_path(path)
    try:
        if OverridesParser.create().parse_override(f"{key}={shown}").value() == shown:
            return f"{key}={shown}"
    except HydraException:  # the grammar refuses it unquoted
        pass
    quote = "'" if '"' in shown else '"'
    return f"{key}={quote}{shown}{quote}"


def command(*words: str | Path) -> str:
    """A command line to paste into a shell: paths as :func:`shown_path` prints them, quoted where they need it."""
    return shlex.join(shown_path(word) if isinstance(word, Path) else word for word in words)


# What Lightning prints that a user of this project cannot act on.
UNACTIONABLE = (
    "GPU available:",  # the summary's accelerator line and trainer.accelerator say it
    "TPU available:",
    "HPU available:",
    "💡 Tip:",  # an advertisement
    "Trainer already configured with model summary callbacks",  # the project's own ModelSummary shows every layer
    "Loading `train_dataloader` to estimate number of stepping batches",
    "Experiment with name",  # MLflow's experiment is created on first use, as expected
    "`Trainer.fit` stopped:",  # the summary says how many epochs and steps ran; this one cuts into the progress bar
    "Restoring states from the checkpoint path at",  # the next line names the checkpoint too
    "Loaded model weights from the checkpoint at",  # before the test: the summary's best checkpoint line names it
    "An SIGTERMException was raised with message",  # the project's own line says it stopped and how to resume
    "SLURM auto-requeueing enabled",  # Lightning's, on SIGUSR1, which the launcher never asks for (src/callbacks/interrupt.py)
)


@functools.cache  # once a process
def quiet_lightning() -> None:
    """Drop Lightning's messages and warnings that a user cannot act on (called by :func:`run` and :func:`task`, not on
    import)."""
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.loggers.mlflow",
        "lightning.pytorch.trainer.connectors.signal_connector",
    ):
        logging.getLogger(name).addFilter(lambda record: not str(record.getMessage()).startswith(UNACTIONABLE))
    # MLflow's store set-up messages, and GitPython's without git; MLflow's link to the run stays.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Lightning logs every log_every_n_steps optimizer steps counted across epochs, so epochs shorter than that
    # interval (experiment=tutorial's 14 steps) still log: this warning says otherwise.
    warnings.filterwarnings("ignore", r"The number of training batches \(\d+\) is smaller than the logging interval")
    # Lightning 2.6.6 itself calls a pytree API that torch 2.14 deprecates.
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
    # Under trainer.overfit_batches the DataModule's loaders are already in order; Lightning knows only its own sampler.
    warnings.filterwarnings("ignore", r"You requested to overfit but enabled")
    # Monitors are checked before the run (config.py): this one means no validation ran yet, which the summary says.
    warnings.filterwarnings("ignore", r"`ModelCheckpoint\(monitor=.*could not find the monitored key")
    # Mixed precision keeps the weights in 32 bits, which the summary then counts: right, though it warns.
    warnings.filterwarnings("ignore", r"Precision [\w-]+ is not supported by the model summary")
    # Where SLURM is installed (a login node), a run started without srun: hydra/launcher=slurm is this project's way.
    warnings.filterwarnings("ignore", r"The `srun` command is available on your system but is not used")
