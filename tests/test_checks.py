"""Bad settings, in-process: each refused by the layer that knows it, in one line that names the key, before anything
is written. (The same contract through the real command line, once per source of error: test_cli.py.)"""

import inspect
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar

from src.build import build, build_callbacks
from src.cli import ConfigError, hydra_refusal
from src.config import load, resolved
from src.train import why_no_best_checkpoint
from tests.conftest import CONF

BAD_SETTINGS = [
    # (overrides, the start of the one line): types, by pydantic against the target's type hints, strict
    (["data.batch_size=abc"], "data.batch_size=abc: Input should be a valid integer"),
    (["data.batch_size=1.5"], "data.batch_size=1.5: Input should be a valid integer"),
    (["data.batch_size=true"], "data.batch_size=true: Input should be a valid integer"),  # not taken as 1
    (["data.batch_size='64'"], "data.batch_size=64: Input should be a valid integer"),  # text is not converted
    (["trainer.max_epochs=two"], "trainer.max_epochs=two: Input should be a valid integer"),
    (["trainer.deterministic=maybe"], "trainer.deterministic=maybe: Input should be a valid boolean or 'warn'"),
    (["trainer.precision=8-bit"], "trainer.precision=8-bit: Input should be 64, 32 or 16 or 'transformer-engine'"),
    (["model.hidden=[a,b]"], "model.hidden=[a,b]: Input should be a valid integer"),
    (["optimizer.lr=abc"], "optimizer.lr=abc: Input should be a valid number"),
    (["optimizer.betas=[0.9]"], "optimizer.betas=[0.9]: Field required"),
    (["data.loader=foo"], "data.loader=foo: Input should be 'device' or 'dataloader'"),
    (["seed=abc"], "seed=abc: Input should be a valid integer"),
    (["print_config=maybe"], "print_config=maybe: Input should be a valid boolean"),
    (["name=a/b"], "name=a/b: not a folder name"),
    # unknown arguments, and those the project passes itself
    (["+foo=1"], "foo=1: no such setting; the top-level keys are name, log_dir"),
    (["+optimizer.momentun=0.9"], "optimizer.momentun=0.9: torch.optim.AdamW has no such argument; it takes lr, betas"),
    (
        ["+trainer.max_epoch=3"],
        "trainer.max_epoch=3: lightning.pytorch.Trainer has no such argument; did you mean trainer.max_epochs?",
    ),
    (["+trainer.logger=false"], "trainer.logger=false: set by the project; choose logger="),
    (["+logger.save_dir=elsewhere"], "logger.save_dir=elsewhere: set by the project; runs go to <log_dir>/<name>/version_<N>/"),
    (["data._target_=src.data.nowhere.DataModule"], "data._target_=src.data.nowhere.DataModule: cannot be imported"),
    # ranges: this project's classes name their own argument, the builder adds the group
    (["model.hidden=[0]"], "model.hidden=[0]: Input should be greater than 0"),
    (["model.dropout=1.5"], "model.dropout=1.5: Input should be less than 1"),
    (["mixup=-1"], "mixup=-1: Input should be greater than or equal to 0"),
    (["data.shift=14"], "data.shift=14: Input should be less than or equal to 13"),
    (["data.batch_size=55001"], "data.batch_size=55001: out of range; use a whole number 1 to 55000"),
    (["data.dataset=cifar10"], "data.dataset=cifar10: Input should be 'mnist' or 'fashion_mnist'"),
    (["data.flip=0.5"], "data.flip=0.5: a mirrored digit is no longer of its class"),
    (["data.tutorial_order=true", "data.loader=dataloader"], "data.tutorial_order=true: the tutorial's batches are served by"),
    (["data.num_workers=4"], "data.num_workers=4: workers feed loader=dataloader only"),
    (["scheduler.pct_start=1.5"], "scheduler.pct_start=1.5: Input should be less than 1"),
    (["callbacks.progress_bar.every_n_steps=0"], "callbacks.progress_bar.every_n_steps=0: Input should be greater than 0"),
    # ranges torch and Lightning check when their objects are built: the group and the settings given to it
    # (composed here, not from a command line: no settings given to name after the group; test_cli.py has them)
    (["optimizer.weight_decay=-1"], "optimizer: Invalid weight_decay value: -1"),
    (["loss=label_smoothing", "loss.label_smoothing=1.5"], "loss: label_smoothing must be between 0.0 and 1.0"),
    (["trainer.limit_train_batches=1.5"], "trainer: You have passed invalid value 1.5 for limit_train_batches"),
    (["trainer.accelerator=foo"], "trainer: You selected an invalid accelerator name"),
    # ranges Lightning would only notice in the middle of a run, and rules across keys
    (["optimizer.lr=0"], "optimizer.lr=0: Input should be greater than 0"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0: Input should be greater than or equal to 1"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0: Input should be greater than or equal to 1"),
    (["trainer.max_steps=0"], "trainer.max_steps=0: use -1 (no limit) or a whole number >= 1"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs=-1: a run needs a length"),
    (["~trainer.max_epochs"], "trainer.max_epochs=null: a run needs a length"),
    (["ckpt_path=a.ckpt", "init_from=b.ckpt"], "init_from=b.ckpt: give ckpt_path (resume a run as it was) or init_from"),
    # this machine
    (["trainer.devices=4096"], "trainer.devices=4096: "),
    (["ckpt_path=last"], "ckpt_path=last: no run under"),
    (["ckpt_path=nowhere/last.ckpt"], "ckpt_path=nowhere/last.ckpt: no such file"),
]
if not torch.cuda.is_available():
    BAD_SETTINGS.append((["trainer.accelerator=gpu"], "trainer: No supported gpu backend found"))


@pytest.mark.parametrize(("overrides", "start"), BAD_SETTINGS)
def test_a_bad_setting_is_named_in_one_line_before_anything_is_written(compose_config, tmp_path, overrides, start) -> None:
    cfg = compose_config(*overrides, f"data.data_dir={tmp_path / 'data'}")
    with pytest.raises(ConfigError) as caught:
        build(load(cfg))
    message = str(caught.value)
    assert message.startswith(start) and "\n" not in message, message
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no run folder, no data folder


def test_good_values_pass_strict_types(compose_config, tmp_path) -> None:
    """Strict, but as JSON holds values: an int where a float belongs and a list where a tuple belongs pass."""
    load(compose_config("optimizer.lr=1", "optimizer.betas=[0.9,0.99]", "trainer.deterministic=warn", "trainer=ddp_cpu"))
    load(compose_config("trainer.precision=bf16-mixed", "trainer.max_time=00:00:01:00", "+trainer.barebones=false"))


def composition_error(*overrides: str) -> str:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        with pytest.raises(Exception) as caught:
            compose("train", overrides=list(overrides))
    return hydra_refusal(caught.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["optimizer=adamm"], "optimizer=adamm: no such choice; choose from adam, adamw, rmsprop, sgd"),
        (["+experiment=slow"], "experiment=slow: no such choice; choose from best, fashion, fast, record, tutorial"),
        (["trainer.max_epoch=3"], "trainer.max_epoch: no such key; did you mean trainer.max_epochs?"),
        # did you mean, from the config of the command line's own choices (scheduler=step has no pct_start)
        (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size: no such key; scheduler has drops, gamma"),
        (["trainer.min_epochs=2"], "trainer.min_epochs: an argument of lightning.pytorch.Trainer that its config does not"),
        (["ckpt_path=a=b"], "ckpt_path=a=b: Hydra cannot parse this (mismatched input '=' expecting <EOF>)"),
    ],
)
def test_hydras_refusals_are_worded_from_its_exceptions(overrides: list[str], expected: str) -> None:
    """The key, the options, the override: the attributes of Hydra's exceptions (the value comes from the command line,
    which a test has none of)."""
    assert composition_error(*overrides).startswith(expected)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["+trainer.fast_dev_run=true"], "+trainer.fast_dev_run=true: Could not append to config. An item is already at"),
        (["data.batch_size=64", "~trainer.nothere"], "~trainer.nothere: Could not delete from config"),
    ],
)
def test_what_hydra_cannot_add_or_delete_names_the_override(monkeypatch, overrides: list[str], expected: str) -> None:
    """Hydra's exception names no override here: the one that Hydra refuses alone is named."""
    monkeypatch.setattr(sys, "argv", ["train.py", *overrides])
    assert composition_error(*overrides).startswith(expected)


def test_a_plugin_that_is_not_installed_names_its_extra() -> None:
    from hydra.errors import MissingConfigException

    missing = MissingConfigException("Could not find 'hydra/launcher/joblib'", "hydra/launcher/joblib", ["basic"])
    assert (
        hydra_refusal(missing)
        == "hydra/launcher=joblib: needs a Hydra plugin that is not installed; pip install -e '.[parallel]'"
    )


# Switches this project sets on purpose (conf/trainer/default.yaml marks each "here:"); every other listed switch
# holds Lightning's own default.
PROJECT_CHOICES = {
    "devices",
    "precision",
    "max_epochs",
    "num_sanity_val_steps",
    "log_every_n_steps",
    "use_distributed_sampler",
    "plugins",
}


def test_the_trainer_switches_people_use_are_listed_with_lightnings_defaults(compose_config) -> None:
    listed = {key: value for key, value in compose_config().trainer.items() if key != "_target_"}
    defaults = {name: p.default for name, p in inspect.signature(L.Trainer.__init__).parameters.items() if name != "self"}
    assert set(listed) <= set(defaults)  # every key is a Trainer argument
    switches = {"fast_dev_run", "limit_train_batches", "overfit_batches", "max_steps", "max_time", "val_check_interval"}
    switches |= {"check_val_every_n_epoch", "profiler", "detect_anomaly", "gradient_clip_val", "deterministic", "benchmark"}
    switches |= {"enable_checkpointing", "enable_progress_bar", "enable_model_summary", "accumulate_grad_batches"}
    assert switches <= set(listed)
    assert {key: value for key, value in listed.items() if key not in PROJECT_CHOICES} == {
        key: defaults[key] for key in listed if key not in PROJECT_CHOICES
    }


def test_callbacks_a_switch_turns_off_are_left_out(compose_config, tmp_path) -> None:
    """Lightning refuses a progress bar with enable_progress_bar=false (and so on), and a learning-rate monitor without
    a logger: such callbacks are left out, so that each switch works alone."""

    def kinds(*overrides: str, has_logger: bool = True) -> set[type]:
        callbacks = build_callbacks(resolved(compose_config(*overrides, *([] if has_logger else ["logger=none"]))), tmp_path)
        return {
            kind for kind in (ProgressBar, ModelCheckpoint, LearningRateMonitor) if any(isinstance(c, kind) for c in callbacks)
        }

    assert kinds() == {ProgressBar, ModelCheckpoint, LearningRateMonitor}
    assert kinds("trainer.enable_progress_bar=false") == {ModelCheckpoint, LearningRateMonitor}
    assert kinds("trainer.enable_checkpointing=false") == {ProgressBar, LearningRateMonitor}
    assert kinds(has_logger=False) == {ProgressBar, ModelCheckpoint}
    checkpoints = [c for c in build_callbacks(resolved(compose_config()), tmp_path / "run") if isinstance(c, ModelCheckpoint)]
    assert {Path(c.dirpath) for c in checkpoints} == {tmp_path / "run" / "checkpoints"}


def test_the_summary_says_why_there_is_no_best_checkpoint(tiny_config) -> None:
    def why(*overrides: str) -> str:
        cfg = tiny_config(*overrides)
        run = build(load(cfg))
        return why_no_best_checkpoint(run.trainer, next((c for c in run.trainer.checkpoint_callbacks if c.monitor), None))

    assert why("trainer.fast_dev_run=true") == "fast_dev_run keeps none"
    assert why("trainer.enable_checkpointing=false") == "checkpointing is off"
    assert why("~callbacks.checkpoint") == "no checkpoint callback monitors acc/val"
    assert why("trainer.limit_val_batches=0") == "validation never ran"
