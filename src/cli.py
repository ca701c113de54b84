"""The command line of every entry point: checked with Hydra's own parser and composer before Hydra runs anything,
and errors printed as one line with exit status 2. Nothing here imports Lightning, so that ``src.predict`` starts fast.

The classes below the entry points raise plain exceptions that name their own argument (``ValueError("shift=14:
...")``); the builders (``src/builders.py``) add the config group in front (``data.shift=14: ...``) and raise
:class:`ConfigError`, which :func:`exit_on_error` prints as ``error: <key>=<value>: <what is wrong>; <what to do>``.
"""

import difflib
import inspect
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import MissingConfigException, OverrideParseException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from src.checkpoints import CheckpointError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# Config choices that come from optional Hydra plugins: the missing config -> the pyproject extra that installs it.
PLUGIN_EXTRAS = {
    "hydra/launcher/joblib": "parallel",
    "hydra/launcher/submitit_slurm": "slurm",
    "hydra/sweeper/optuna": "optuna",
}
# Hydra's flags that make it print something instead of running (left to Hydra), and those that take a value.
INFO_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--cfg",
    "-c",
    "--info",
    "-i",
    "--resolve",
    "--shell-completion",
    "-sc",
    "--version",
}
# Those that print and exit before the config is composed; the others (--help, --cfg, --info) compose it: it is checked.
HELP_FLAGS = {"--hydra-help", "--shell-completion", "-sc", "--version"}
# What --info may be followed by (its value is optional).
INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--package",
    "-p",
    "--experimental-rerun",
}


# Config groups that are off unless chosen (``experiment: null`` in the defaults list).
OPTIONAL_GROUPS = ("experiment", "debug", "hparams_search")


class ConfigError(ValueError):
    """A setting that cannot work; the message reads ``<key>=<value>: <what is wrong>; <what to do>``."""


USER_ERRORS = (ConfigError, CheckpointError)


def exit_on_error(error: Exception, status: int = 2) -> NoReturn:
    """One line on stderr and exit ``status``; the traceback instead when HYDRA_FULL_ERROR=1."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    print(f"error: {error}", file=sys.stderr)
    sys.exit(status)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def shown_path(path: str | Path) -> str:
    """A path as the project prints it: relative to the working folder when it lies inside it (as the default
    ``lightning_logs/...``), else absolute; either way it pastes into a command run from here."""
    relative = os.path.relpath(Path(path).resolve(), Path.cwd())
    return relative if not relative.startswith("..") else str(Path(path).resolve())


# --- the command line, checked before Hydra runs anything -------------------------------------------------------------


def flags_and_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Hydra's flags (each followed by its value, if it takes one) and the ``key=value`` overrides, each in order."""
    flags: list[str] = []
    overrides: list[str] = []
    arguments = list(argv)
    while arguments:
        argument = arguments.pop(0)
        if not argument.startswith("-"):
            overrides.append(argument)
            continue
        flags.append(argument)
        topic = argument in ("--info", "-i") and bool(arguments) and arguments[0] in INFO_TOPICS
        if (argument in FLAGS_WITH_VALUE or topic) and arguments:
            flags.append(arguments.pop(0))
    return flags, overrides


def split_arguments(argv: Sequence[str]) -> tuple[list[str], bool, bool]:
    """``(overrides, multirun, info)``: the ``key=value`` arguments, whether ``-m`` was given, and whether a flag
    asks Hydra to print something (``--help``, ``--cfg job``) instead of running."""
    flags, overrides = flags_and_overrides(argv)
    return overrides, bool({"-m", "--multirun"} & set(flags)), bool(INFO_FLAGS & set(flags))


def hydra_order(argv: Sequence[str], *added: str) -> list[str]:
    """The overrides and ``added`` in one run, then the flags: Hydra's parser takes no more overrides once a flag has
    come between them (``python -m src.train trainer.max_epochs=1 -m seed=1,2``), and takes an override right after a
    bare ``--info`` as its value."""
    flags, overrides = flags_and_overrides(argv)
    return [*overrides, *added, *flags]


def check_command_line(config_name: str, argv: Sequence[str]) -> list[Override]:
    """Compose the config as Hydra will (each swept value once), so that a bad override stops here with one line;
    return the parsed overrides.

    Hydra's own parser and composer do the work; this only names the override at fault and cuts the message to a line.
    """
    flags, given = flags_and_overrides(argv)
    if "--hydra-help" in flags and given:
        raise ConfigError(f"--hydra-help {' '.join(given)}: Hydra's own help takes no overrides; drop them (or use --help)")
    if HELP_FLAGS & set(flags):
        return []
    if "--resolve" in flags and not {"--cfg", "-c", "--help", "-h"} & set(flags):
        raise ConfigError("--resolve: resolves what --cfg prints; add --cfg job (or --help)")
    modes = [flag for flag in flags if flag in ("-m", "--multirun", "-r", "--run", "-c", "--cfg", "-i", "--info")]
    if len(modes) > 1:
        raise ConfigError(f"{' '.join(modes)}: Hydra takes one of these at a time; keep one")
    overrides, multirun, _ = split_arguments(argv)
    overrides = [group_switched_off(override) for override in overrides]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        top_level = [o for o in overrides if "." not in o.partition("=")[0] and not o.startswith(("hydra", "-"))]
        selections = [first for first in map(_first_value, top_level) if first is not None]
        base = target_defaults(config_name, selections)  # composed once for all the overrides
        if base is None:  # a bad group choice or top-level key: named before the others, which depend on them
            _compose_or_name(config_name, selections)
        overrides = [as_target_argument(override, base) for override in overrides]
    parsed: list[Override] = []
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parsed += parser.parse_overrides([override])
        except OverrideParseException as error:
            raise ConfigError(
                f"{override}: Hydra cannot parse this ({first_line(error.message)}); a value holding = , [ ] ( ) or "
                f"spaces needs quotes, e.g. key='a=b'"
            ) from error
    for override in parsed:
        if override.key_or_group == "hparams_search" and override.value() not in (None, "null") and not multirun:
            line = override.input_line
            raise ConfigError(f"{line}: a search runs many trials and needs multirun; python -m src.train -m {line}")
        if override.key_or_group == "hydra/launcher" and override.value() == "slurm" and shutil.which("srun") is None:
            line = override.input_line
            raise ConfigError(f"{line}: SLURM is not here (no srun); run it on the cluster's login node, or drop it")
    alternatives = [_alternatives(override, multirun) for override in parsed]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        first = [values[0] for values in alternatives if values]
        if base is None or first != selections:  # else composed already: only group choices and top-level keys
            _compose_or_name(config_name, first)
        for values in alternatives:
            for value in values[1:]:
                _compose_or_name(config_name, [value if v == values[0] else v for v in first], culprit=value)
    return parsed


def group_switched_off(override: str) -> str:
    """``logger=false`` / ``logger=null`` as ``logger=none`` (Lightning's ``logger=False``), and so for every group
    with a ``none`` choice; ``experiment=null`` as ``~experiment`` for a group that is off unless chosen. Hydra itself
    only takes ``~group`` to remove a group. A group the run cannot do without says so."""
    key, assigned, value = override.partition("=")
    folder = CONF_DIR / key
    if assigned and folder.is_dir() and value.startswith("[") and not key.startswith("hydra") and _builds_one(folder, value):
        loggers = "logger=many for tensorboard and csv (and add mlflow to them: +logger@logger.mlflow=mlflow)"
        what_to_do = loggers if key == "logger" else f"choose one of {', '.join(sorted(p.stem for p in folder.glob('*.yaml')))}"
        raise ConfigError(f"{override}: one {key} config at a time (Hydra would merge the list into one); {what_to_do}")
    if not assigned or value.lower() not in ("null", "false", "none", "~") or not folder.is_dir() or key.startswith("hydra"):
        return override
    if (folder / "none.yaml").is_file():
        return f"{key}=none"
    if key in OPTIONAL_GROUPS:
        return f"~{key}"
    choices = ", ".join(sorted(path.stem for path in folder.glob("*.yaml")))
    raise ConfigError(f"{override}: a run cannot do without {key}; choose from {choices}")


def _builds_one(folder: Path, choices: str) -> bool:
    """Whether a list of a group's configs names one that builds a single object (a ``_target_`` at its top): merged
    into one by Hydra, only the last would be built. Lists of callbacks files, each adding its own keys, merge well."""
    names = [name.strip() for name in choices.strip("[]").split(",") if name.strip()]
    files = [folder / f"{name}.yaml" for name in names]
    return any(file.is_file() and "_target_" in (OmegaConf.load(file) or {}) for file in files)


def target_defaults(config_name: str, selections: Sequence[str]) -> DictConfig | None:
    """The config as the command line's group choices and top-level values compose it (a sweep's first value standing
    for the others): what decides each group's ``_target_``. None where that does not compose (reported later)."""
    try:
        return compose(config_name, overrides=list(selections), return_hydra_config=True)
    except Exception:  # a bad group choice: reported by the composition that follows
        return None


def as_target_argument(override: str, base: DictConfig | None) -> str:
    """``trainer.enable_checkpointing=false`` as ``++trainer.enable_checkpointing=false`` when the group's file does not
    list the key but its ``_target_`` takes it: every argument of the Trainer, the optimizer, the DataModule, ... can be
    set as ``group.key=value``, while the files set only what differs from the targets' defaults."""
    key, assigned, value = override.partition("=")
    group, _, name = key.rpartition(".")
    if base is None or not assigned or not group or key[0] in "+~" or "(" in value:
        return override
    node = OmegaConf.select(base, group)
    if not isinstance(node, DictConfig) or name in node or "_target_" not in node:
        return override
    try:
        target = get_object(node._target_)
        parameters = inspect.signature(target.__init__ if inspect.isclass(target) else target).parameters
    except Exception:
        return override
    return f"++{override}" if name in parameters else override


def _first_value(override: str) -> str | None:
    """A sweep's first value (``optimizer=sgd,adam``, ``seed=range(1,3)`` -> ``optimizer=sgd``, ``seed=1``); None for a
    range a sweeper samples (``interval(0,1)``) and for what Hydra cannot parse (reported later); others as they are."""
    try:
        parsed = OverridesParser.create().parse_overrides([override])[0]
    except OverrideParseException:
        return None
    if not parsed.is_sweep_override():
        return override
    if not parsed.is_discrete_sweep():
        return None
    try:
        return f"{parsed.get_key_element()}={next(iter(parsed.sweep_string_iterator()))}"
    except Exception:  # glob(), which needs the config loader
        return override


def _alternatives(override: Override, multirun: bool) -> list[str]:
    """The overrides to compose for one command-line argument: each value of a discrete sweep, none for a range that a
    sweeper samples (``interval(...)``), the argument itself otherwise."""
    if not (multirun and override.is_sweep_override()):
        return [override.input_line]
    if not override.is_discrete_sweep():
        return []
    return [f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()]


def _compose_or_name(config_name: str, overrides: list[str], culprit: str | None = None) -> None:
    try:
        compose(config_name, overrides=overrides, return_hydra_config=True)
    except Exception as error:  # Hydra raises several kinds; each becomes one line naming the override
        if culprit is None:
            culprit = _first_failing(config_name, overrides)
        raise ConfigError(f"{culprit}: {_one_line(error, culprit, config_name)}") from error


def _first_failing(config_name: str, overrides: list[str]) -> str:
    for end in range(1, len(overrides) + 1):
        try:
            compose(config_name, overrides=overrides[:end], return_hydra_config=True)
        except Exception:
            return overrides[end - 1]
    return " ".join(overrides)


def _one_line(error: Exception, override: str, config_name: str) -> str:
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        missing = error.missing_cfg_file
        if missing in PLUGIN_EXTRAS:
            return f"needs a Hydra plugin that is not installed ({missing}); pip install -e '.[{PLUGIN_EXTRAS[missing]}]'"
        return f"no such choice; choose from {', '.join(error.options or [])}"
    cause = error.__cause__
    if cause is not None and "not in struct" in str(cause):
        key = override.lstrip("+~").partition("=")[0]
        known = _config_keys(OmegaConf.to_container(compose(config_name)))
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"python -m src.{config_name} --cfg job lists the keys"
        return f"no such key; {hint}"
    if "Ambiguous value" in str(error):
        return "a comma-separated value sweeps, which needs -m (--multirun); for a list write key=[a,b], for text quote it"
    return " ".join(line.strip() for line in str(error).strip().splitlines())


def _config_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config (as plain containers), e.g. ``trainer.max_epochs``."""
    keys = []
    if isinstance(node, dict):
        for key, value in node.items():
            keys += [f"{prefix}{key}", *_config_keys(value, f"{prefix}{key}.")]
    return keys


# What Lightning prints that a user of this project cannot act on: said once here, not on every run.
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
)


class _DropUnactionable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(UNACTIONABLE)


def quiet_lightning() -> None:
    """Drop Lightning's messages and warnings that a user cannot act on (called by the entry points, not on import)."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropUnactionable())
    logging.getLogger("lightning.fabric.utilities.rank_zero").addFilter(_DropUnactionable())
    logging.getLogger("lightning.pytorch.loggers.mlflow").addFilter(_DropUnactionable())
    # MLflow (logger=mlflow): its store's set-up messages, and GitPython's when git is not installed. Its link to the
    # run ("View run ... at: http://...") stays: that one a user follows.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Lightning logs every log_every_n_steps optimizer steps counted across epochs, so epochs shorter than that
    # interval (experiment=tutorial's 14 steps) still log: this warning says otherwise.
    warnings.filterwarnings("ignore", r"The number of training batches \(\d+\) is smaller than the logging interval")
    # Lightning 2.6.6 itself calls a pytree API that torch 2.14 deprecates.
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)


def checked_command_line(config_name: str) -> list[Override]:
    """:func:`check_command_line` on ``sys.argv``, exiting with one line when it fails; ``sys.argv`` then holds the
    overrides as Hydra is to take them (``logger=false`` as ``logger=none``, a target's argument that its file does not
    list prefixed ``++``)."""
    quiet_lightning()
    try:
        parsed = check_command_line(config_name, sys.argv[1:])
    except ConfigError as error:
        exit_on_error(error)
    given = split_arguments(sys.argv[1:])[0]
    rewritten = dict(zip(given, (override.input_line for override in parsed), strict=False)) if parsed else {}
    sys.argv[1:] = [rewritten.get(argument, argument) for argument in sys.argv[1:]]
    return parsed
