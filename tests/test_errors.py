"""Bad input: one clear line naming the key, exit status 2, nothing written; damaged and foreign checkpoints."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

from src import cli
from src.checkpoints import CheckpointError
from src.cli import USER_ERRORS, ConfigError, check_command_line, hydra_order
from src.train import train
from tests.conftest import CONF

BAD_SETTINGS = [
    # (override, what the one-line message must start with)
    ("optimizer.lr=0", "optimizer.lr=0: out of range"),
    ("optimizer.lr=-0.1", "optimizer.lr=-0.1: out of range"),
    ("data.batch_size=0", "data.batch_size=0: out of range"),
    ("data.batch_size=55001", "data.batch_size=55001: out of range; use a whole number 1 to 55000"),
    ("data.batch_size=1.5", "data.batch_size=1.5: wrong type; use a whole number"),
    ("data.batch_size=abc", "data.batch_size=abc: wrong type; use a whole number"),
    ("data.val_size=60000", "data.val_size=60000: out of range"),
    ("data.loader=foo", "data.loader=foo: no such choice; use one of device, dataloader"),
    ("data.normalization=foo", "data.normalization=foo: no such choice; use one of standard, symmetric"),
    ("data.shift=-1", "data.shift=-1: out of range"),
    ("data.shift=14", "data.shift=14: out of range"),
    ("data.rotate=-5", "data.rotate=-5: out of range"),
    ("data.scale=1.0", "data.scale=1.0: out of range"),
    ("model.hidden=[0]", "model.hidden=[0]: every width must be a whole number >= 1"),
    ("model.dropout=1.5", "model.dropout=1.5: out of range"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0:"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0:"),
    ("trainer.devices=4096", "trainer.devices=4096:"),
    ("trainer.precision=8-bit", "trainer.precision=8-bit: no such choice; use one of 64, 32, 16, transformer-engine"),
    ("ckpt_path=last", "ckpt_path=last: no run under"),
    ("ckpt_path=nowhere/last.ckpt", "ckpt_path=nowhere/last.ckpt: no such file"),
]
if not torch.cuda.is_available():
    BAD_SETTINGS.append(("trainer.accelerator=gpu", "trainer.accelerator=gpu: no CUDA GPU"))


@pytest.mark.parametrize(("override", "start"), BAD_SETTINGS)
def test_bad_setting_is_named_before_anything_is_written(compose_config, tmp_path, override: str, start: str) -> None:
    with pytest.raises(USER_ERRORS) as caught:
        train(compose_config(override, f"data.data_dir={tmp_path / 'data'}"))
    message = str(caught.value)
    assert message.startswith(start) and "\n" not in message, message
    assert not (tmp_path / "logs").exists()  # no run folder was started


def test_unwritable_data_folder(compose_config, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"^data.data_dir=.*a-file/data: cannot write to"):
        train(compose_config(f"data.data_dir={blocker / 'data'}"))


COMMAND_LINES = [
    # (arguments, the one-line message Hydra's parser or composer leads to)
    (["optimizer=adamm"], "optimizer=adamm: no such choice; choose from adam, adamw, rmsprop, sgd"),
    (["loss=hinge"], "loss=hinge: no such choice; choose from cross_entropy, label_smoothing, mse, nll, tutorial"),
    (["+experiment=slow"], "+experiment=slow: no such choice; choose from best, fast, record, tutorial"),
    (["-m", "optimizer=sgd,adamm"], "optimizer=adamm: no such choice"),  # every swept value is composed
    (["trainer.max_epoch=3"], "trainer.max_epoch=3: no such key; did you mean trainer.max_epochs?"),
    (["foo=1"], "foo=1: no such key"),
    (["optimizer=sgd,adam"], "optimizer=sgd,adam: a comma-separated value sweeps, which needs -m"),
    (["ckpt_path=a=b"], "ckpt_path=a=b: Hydra cannot parse this (mismatched input '=' expecting <EOF>)"),
    (
        ["hparams_search=optuna"],
        "hparams_search=optuna: a search runs many trials and needs multirun; python -m src.train -m hparams_search=optuna",
    ),
    (["~callbacks.nothing"], "~callbacks.nothing: Could not delete from config. 'callbacks.nothing' does not exist."),
    # a bad group choice or top-level key is named, not a Trainer argument that could not be resolved without it
    (["trainer.fast_dev_run=true", "optimzer=adam"], "optimzer=adam: no such key; did you mean optimizer?"),
    (["trainer.fast_dev_run=true", "loss=hinge"], "loss=hinge: no such choice; choose from cross_entropy"),
    (["trainer.fast_dev_run=true", "tags=[dev]"], "tags=[dev]: no such key; python -m src.train --cfg job lists the keys"),
    (["--cfg", "job", "trainer.max_epoch=3"], "trainer.max_epoch=3: no such key"),  # printing a config checks it too
    (["-m", "seed=1,2", "--cfg", "job"], "-m --cfg: Hydra takes one of these at a time"),
    (["--help", "optimzer=adam"], "optimzer=adam: no such key; did you mean optimizer?"),  # Hydra's help composes it
    (["--hydra-help", "seed=1"], "--hydra-help seed=1: Hydra's own help takes no overrides"),
    (["--resolve", "seed=1"], "--resolve: resolves what --cfg prints; add --cfg job"),
    (["logger=[csv,tensorboard]"], "logger=[csv,tensorboard]: one logger config at a time (Hydra would merge the list"),
    (["optimizer=[adam,sgd]"], "optimizer=[adam,sgd]: one optimizer config at a time"),
    (["-m", "seed=0,1", "hydra/launcher=slurm"], "hydra/launcher=slurm: SLURM is not here (no srun)"),
]


@pytest.mark.parametrize(("arguments", "start"), COMMAND_LINES)
def test_command_line_mistakes_are_named_in_one_line(arguments: list[str], start: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_command_line("train", arguments)
    assert str(caught.value).startswith(start) and "\n" not in str(caught.value), str(caught.value)


def test_good_command_lines_pass() -> None:
    check_command_line("train", ["-m", "optimizer=sgd,adam", "loss=tutorial", "experiment=fast", "optimizer.lr=0.1", "seed=1"])
    check_command_line("train", ["--multirun", "hparams_search=optuna", "+trainer.fast_dev_run=true", "~callbacks.model_summary"])
    check_command_line("train", ["--hydra-help"])  # Hydra prints its own help: left to Hydra
    check_command_line("train", ["callbacks=[checkpoints,progress_bar]"])  # callbacks files add their own keys: merged
    check_command_line("train", ["-m", "seed=range(1,3)", "trainer.limit_train_batches=5"])  # range(): its first value


def test_overrides_go_together_before_hydras_flags() -> None:
    assert hydra_order(["trainer.max_epochs=1", "-m", "seed=range(1,3)"], "x=1") == [
        "trainer.max_epochs=1",
        "seed=range(1,3)",
        "x=1",
        "-m",
    ]
    assert hydra_order(["--cfg", "job", "experiment=fast"]) == ["experiment=fast", "--cfg", "job"]
    assert hydra_order(["--info"], "x=1") == ["x=1", "--info"]  # not taken as --info's value
    assert hydra_order(["--info", "defaults", "seed=1"]) == ["seed=1", "--info", "defaults"]


def test_a_plugin_that_is_not_installed_names_its_extra() -> None:
    missing = MissingConfigException("Could not find 'hydra/launcher/joblib'", "hydra/launcher/joblib", ["basic"])
    assert cli._one_line(missing, "hydra/launcher=joblib", "train") == (
        "needs a Hydra plugin that is not installed (hydra/launcher/joblib); pip install -e '.[parallel]'"
    )


def test_checkpoint_of_another_network_names_the_layer(tiny_config) -> None:
    first = train(tiny_config("trainer.max_epochs=1", "scheduler=none"))
    ckpt = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    with pytest.raises(
        CheckpointError, match=r"made by a different network: net.layers.1.weight is \[64, 784\] there but \[32, 784\]"
    ):
        train(tiny_config("model.hidden=[32,64]", "scheduler=none", f"ckpt_path={ckpt}"))


def test_damaged_checkpoint_says_so_and_names_the_others(tiny_config) -> None:
    first = train(tiny_config("trainer.max_epochs=1", "scheduler=none"))
    ckpt = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # what a crash mid-write would leave
    with pytest.raises(CheckpointError) as caught:
        train(tiny_config("scheduler=none", "ckpt_path=last"))
    message = str(caught.value)
    assert "the file is damaged" in message and str(first["best_checkpoint"]) in message


def test_slurm_launcher_config_composes() -> None:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 2
