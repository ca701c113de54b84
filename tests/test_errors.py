"""Bad input: one clear line naming the key, exit status 2, nothing started; damaged and foreign checkpoints."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.checks import ConfigError, check_group_choices
from src.train import CONF_DIR, train
from tests.conftest import REPO
from tests.test_training import tiny_config

BAD_SETTINGS = [
    # (override, what the message must start with)
    ("optimizer.lr=0", "optimizer.lr=0:"),
    ("optimizer.lr=-0.1", "optimizer.lr=-0.1:"),
    ("data.batch_size=0", "data.batch_size=0:"),
    ("data.batch_size=55001", "data.batch_size=55001:"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0:"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0:"),
    ("data.val_size=60000", "data.val_size=60000:"),
    ("trainer.devices=4096", "trainer.devices=4096:"),
    ("trainer.precision=8-bit", "trainer.precision=8-bit:"),
    ("data.shift=-1", "data.shift=-1:"),
    ("data.shift=14", "data.shift=14:"),
    ("data.rotate=-5", "data.rotate=-5:"),
    ("data.scale=1.0", "data.scale=1.0:"),
    ("ckpt_path=last", "ckpt_path=last:"),
    ("ckpt_path=nowhere/last.ckpt", "ckpt_path=nowhere/last.ckpt:"),
]
if not torch.cuda.is_available():
    BAD_SETTINGS.append(("trainer.accelerator=gpu", "trainer.accelerator=gpu:"))


@pytest.mark.parametrize(("override", "start"), BAD_SETTINGS)
def test_bad_setting_is_named_before_any_work(compose_config, tmp_path, override: str, start: str) -> None:
    with pytest.raises(ConfigError) as caught:
        train(compose_config(override, f"data.data_dir={tmp_path / 'data'}"))
    message = str(caught.value)
    assert message.startswith(start) and "\n" not in message
    assert not (tmp_path / "logs").exists()  # no run folder was started


def test_unwritable_data_folder(compose_config, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"^data.data_dir=.*a-file/data: cannot write to"):
        train(compose_config(f"data.data_dir={blocker / 'data'}"))


@pytest.mark.parametrize("override", ["optimizer=adamm", "loss=hinge", "scheduler=linear", "optimizer=sgd,adamm", "+experiment=slow"])
def test_unknown_group_choice_lists_the_real_ones(override: str) -> None:
    group, _, value = override.lstrip("+").partition("=")
    bad = value.split(",")[-1]
    with pytest.raises(ConfigError, match=rf"^{group}={bad}: no such choice; choose from "):
        check_group_choices([override], CONF_DIR)


def test_known_choices_and_plain_values_pass() -> None:
    check_group_choices(["optimizer=sgd,adam", "loss=tutorial", "experiment=fast", "optimizer.lr=0.1", "seed=1", "hydra/launcher=basic"], CONF_DIR)


@pytest.mark.parametrize(("override", "start"), [("optimizer=adamm", "error: optimizer=adamm:"), ("optimizer.lr=-1", "error: optimizer.lr=-1:")])
def test_command_line_exits_2_with_one_line(tmp_path, override: str, start: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run([sys.executable, "-m", "src.train", override, f"logger.save_dir={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(start), done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_checkpoint_of_another_network_names_the_layer(compose_config, tiny_mnist) -> None:
    first = train(tiny_config(compose_config, tiny_mnist, "trainer.max_epochs=1", "scheduler=none"))
    ckpt = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"made by a different network: net.layers.1.weight is \[64, 784\] there but \[32, 784\]"):
        train(tiny_config(compose_config, tiny_mnist, "model.hidden=[32,64]", "scheduler=none", f"ckpt_path={ckpt}"))


def test_damaged_checkpoint_says_so_and_names_the_others(compose_config, tiny_mnist) -> None:
    first = train(tiny_config(compose_config, tiny_mnist, "trainer.max_epochs=1", "scheduler=none"))
    ckpt = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # what a crash mid-write would leave
    with pytest.raises(ConfigError) as caught:
        train(tiny_config(compose_config, tiny_mnist, "scheduler=none", "ckpt_path=last"))
    message = str(caught.value)
    assert "the file is damaged" in message and str(first["best_checkpoint"]) in message


def test_slurm_launcher_config_composes(tmp_path) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 2


def test_a_plugin_that_is_not_installed_names_its_extra(monkeypatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"^hydra/launcher=slurm: needs a Hydra plugin that is not installed; pip install -e '\.\[slurm\]'"):
        check_group_choices(["hydra/launcher=slurm"], CONF_DIR)
    with pytest.raises(ConfigError, match=r"^hparams_search=optuna: needs a Hydra plugin that is not installed; pip install -e '\.\[optuna\]'"):
        check_group_choices(["-m", "hparams_search=optuna"], CONF_DIR)


def test_a_search_without_multirun_says_to_add_it() -> None:
    with pytest.raises(ConfigError, match=r"^hparams_search=optuna: a search runs many trials and needs multirun; python -m src.train -m hparams_search=optuna$"):
        check_group_choices(["hparams_search=optuna"], CONF_DIR)
    check_group_choices(["--multirun", "hparams_search=optuna"], CONF_DIR)  # fine with it
