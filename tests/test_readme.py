"""Every command the README shows runs as printed: composed, checked and built as its entry point does it; those that
use a trained model run for real, on a tiny run trained first."""

import re
import shlex
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, open_dict
from PIL import Image

from src.build import build
from src.cli import ConfigError
from src.config import load
from src.eval import evaluate
from src.export import export
from src.predict import predict
from src.sweeps import sweep_jobs
from src.train import train
from tests.conftest import QUIET, REPO, TinyMNIST, composed, synthetic_digits

README_CHECKPOINT = "lightning_logs/mnist/version_0/checkpoints/last.ckpt"


def readme_commands(module: str) -> list[list[str]]:
    """The arguments of each ``python -m <module> ...`` line in the README's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    commands = [shlex.split(line, comments=True) for block in blocks for line in block.splitlines()]
    return [command[3:] for command in commands if command[:3] == ["python", "-m", module]]


def test_the_readme_shows_commands_of_every_entry_point() -> None:
    assert len(readme_commands("src.train")) >= 8
    assert all(readme_commands(module) for module in ("src.eval", "src.predict", "src.export"))


@pytest.fixture
def readme_run(tiny_mnist, tmp_path) -> Path:
    """A finished tiny run of the default network, where ``ckpt_path=last`` finds it; the README's checkpoint path."""
    cfg = composed(tmp_path / "logs", *QUIET, "trainer.max_epochs=1", "trainer.log_every_n_steps=4")  # as the README's resumes
    return Path(train(tiny_mnist.use_in(cfg))["run_dir"]) / "checkpoints" / "last.ckpt"


def test_every_training_command_of_the_readme_composes_checks_and_builds(tiny_mnist: TinyMNIST, readme_run, tmp_path) -> None:
    """Composed by Hydra, checked and built as src.train does it; a sweep: each of its jobs, as src.sweeps checks them."""
    for arguments in readme_commands("src.train"):
        overrides = [argument for argument in arguments if not argument.startswith("-")]
        if "--help" in arguments:
            continue  # prints (test_habits.py)
        jobs = sweep_jobs(OverridesParser.create().parse_overrides(overrides)) if "-m" in arguments else [overrides]
        for job in jobs:
            cfg = tiny_mnist.use_in(composed(tmp_path / "logs", *job))
            spec = load(cfg)
            if "-m" in arguments:
                continue  # a sweep's jobs are single runs like the others
            if "trainer.accelerator=gpu" in job and not torch.cuda.is_available():
                with pytest.raises(ConfigError, match="^trainer: No supported gpu backend found"):
                    build(spec)
                continue
            run = build(spec)
            assert run.trainer.max_epochs == (1 if run.trainer.fast_dev_run else cfg.trainer.max_epochs)  # Lightning's rule
            assert (spec.start.checkpoint is not None) == ("ckpt_path=last" in job)
            assert bool(run.trainer.fast_dev_run) == ("trainer.fast_dev_run=true" in job)
            assert run.run_dir.parent == Path(cfg.log_dir) / cfg.name


def readme_config(name: str, arguments: list[str], checkpoint: Path, image: Path) -> DictConfig:
    overrides = [a.replace(README_CHECKPOINT, str(checkpoint)).replace("my_digit.png", str(image)) for a in arguments]
    cfg = composed(Path("lightning_logs"), *overrides, config=name)
    with open_dict(cfg):
        cfg.ckpt_path = str(checkpoint)
    return cfg


def test_the_readme_commands_that_use_a_trained_model_run(readme_run, tmp_path) -> None:
    image = tmp_path / "my_digit.png"
    images, _ = synthetic_digits(1, seed=4)
    Image.fromarray(images[0].numpy()).save(image)
    for arguments in readme_commands("src.eval"):
        cfg = readme_config("eval", arguments, readme_run, image)
        assert evaluate(cfg.ckpt_path, cfg.accelerator, cfg.data_dir)["test_images"] == 200
    for arguments in readme_commands("src.predict"):
        cfg = readme_config("predict", arguments, readme_run, image)
        assert [path for path, _, _ in predict(cfg.ckpt_path, cfg.image)] == [image]
    for arguments in readme_commands("src.export"):
        cfg = readme_config("export", arguments, readme_run, image)
        path, difference, checked = export(cfg.ckpt_path, cfg.format, cfg.out, cfg.check_images, cfg.tolerance)
        assert path.is_file() and path.suffix == ".onnx" and difference <= cfg.tolerance and checked == 200  # all 200
