"""Bad settings in-process, through config.load and build as src.train calls them (conftest.py's table): each refused in
one line that names the key, before anything is written. The Trainer's switches, and what they leave out."""

import inspect
from pathlib import Path

import lightning as L
import pytest
from hydra.errors import MissingConfigException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar

from src.build import build, build_callbacks
from src.cli import ConfigError, hydra_refusal
from src.config import Context, load, resolved
from src.train import why_no_best_checkpoint
from tests.conftest import BAD_COMMANDS, CONF


@pytest.mark.parametrize(("arguments", "start"), BAD_COMMANDS["load"])
def test_a_bad_setting_is_named_in_one_line_before_anything_is_written(compose_config, tmp_path, arguments, start) -> None:
    cfg = compose_config(*arguments, f"data.data_dir={tmp_path / 'data'}")
    with pytest.raises(ConfigError) as caught:
        build(load(cfg, Context(overrides=tuple(arguments))))  # the command line's overrides, as Hydra hands them over
    message = str(caught.value)
    assert message.startswith(start) and "\n" not in message, message
    assert list(tmp_path.iterdir()) == []  # no run folder, no data folder


def test_composed_by_hand_what_torch_refuses_names_its_group_alone(compose_config) -> None:
    """No command line (a notebook): no settings given to name after the group."""
    with pytest.raises(ConfigError, match=r"^optimizer: Invalid weight_decay value: -1"):
        load(compose_config("optimizer.weight_decay=-1"))


def test_a_home_path_the_shell_left_alone_is_the_home_folder(compose_config, tmp_path, monkeypatch) -> None:
    """A quoted ~ (or one in a config file) is expanded as a shell would, not a folder named ~ in the working one."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = load(compose_config("log_dir='~/runs'", "data.data_dir='~/data'"))
    assert spec.run_dir == tmp_path / "home" / "runs" / "mnist" / "version_0"
    assert spec.config["data"]["data_dir"] == str(tmp_path / "home" / "data")


def test_good_values_pass_strict_types(compose_config) -> None:
    """Strict, but as JSON holds values: an int where a float belongs and a list where a tuple belongs pass."""
    load(compose_config("optimizer.lr=1", "optimizer.betas=[0.9,0.99]", "trainer.deterministic=warn", "trainer=ddp_cpu"))
    load(compose_config("trainer.precision=bf16-mixed", "trainer.max_time=00:00:01:00", "+trainer.barebones=false"))


@pytest.mark.parametrize("group", ["debug", "experiment"])
def test_every_shipped_recipe_passes_its_own_checks(compose_config, group) -> None:
    """As a user runs them, on MNIST's sizes (no data here: its official counts); the tests that train them override
    their lengths and limits for the tiny data set."""
    for recipe in sorted(path.stem for path in (CONF / group).glob("*.yaml")):
        load(compose_config(f"{group}={recipe}"))


def test_a_plugin_that_is_not_installed_names_its_extra() -> None:
    missing = MissingConfigException("Could not find 'hydra/launcher/joblib'", "hydra/launcher/joblib", ["basic"])
    expected = "hydra/launcher=joblib: needs a Hydra plugin that is not installed; pip install -e '.[parallel]'"
    assert hydra_refusal(missing) == expected


def test_the_trainer_switches_people_use_are_listed_with_lightnings_defaults(compose_config) -> None:
    """All but those the project sets on purpose (conf/trainer/default.yaml marks each "here:")."""
    listed = {key: value for key, value in compose_config().trainer.items() if key != "_target_"}
    defaults = {name: p.default for name, p in inspect.signature(L.Trainer.__init__).parameters.items() if name != "self"}
    assert set(listed) <= set(defaults)  # every key is a Trainer argument
    switches = "fast_dev_run limit_train_batches overfit_batches max_steps max_time val_check_interval check_val_every_n_epoch"
    switches += " profiler detect_anomaly gradient_clip_val deterministic benchmark enable_checkpointing enable_progress_bar"
    assert {*switches.split(), "enable_model_summary", "accumulate_grad_batches"} <= set(listed)
    ours = set("devices precision max_epochs num_sanity_val_steps log_every_n_steps use_distributed_sampler plugins".split())
    assert {k: v for k, v in listed.items() if k not in ours} == {k: defaults[k] for k in listed if k not in ours}


def test_callbacks_a_switch_turns_off_are_left_out(compose_config, tmp_path) -> None:
    """Lightning refuses a progress bar with enable_progress_bar=false (and so on), and a learning-rate monitor without
    a logger: such callbacks are left out, so that each switch works alone."""

    def kinds(*overrides: str) -> set[type]:
        callbacks = build_callbacks(resolved(compose_config(*overrides)), tmp_path)
        return {
            kind for kind in (ProgressBar, ModelCheckpoint, LearningRateMonitor) if any(isinstance(c, kind) for c in callbacks)
        }

    assert kinds() == {ProgressBar, ModelCheckpoint, LearningRateMonitor}
    assert kinds("trainer.enable_progress_bar=false") == {ModelCheckpoint, LearningRateMonitor}
    assert kinds("trainer.enable_checkpointing=false") == {ProgressBar, LearningRateMonitor}
    assert kinds("logger=none") == {ProgressBar, ModelCheckpoint}
    checkpoints = [c for c in build_callbacks(resolved(compose_config()), tmp_path / "run") if isinstance(c, ModelCheckpoint)]
    assert {Path(c.dirpath) for c in checkpoints} == {tmp_path / "run" / "checkpoints"}


def test_the_summary_says_why_there_is_no_best_checkpoint(tiny_config) -> None:
    """(checkpointing is off, validation never ran: test_habits.py, through the command line.)"""

    def why(*overrides: str) -> str:
        trainer = build(load(tiny_config(*overrides))).trainer
        return why_no_best_checkpoint(trainer, next((c for c in trainer.checkpoint_callbacks if c.monitor), None))

    assert why("trainer.fast_dev_run=true") == "fast_dev_run keeps none"
    assert why("~callbacks.checkpoint") == "no checkpoint callback monitors acc/val"
