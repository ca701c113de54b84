"""``python -m src.train`` as a user runs it: a subprocess, on the real MNIST."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

def run_train(*overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, "-m", "src.train", *overrides], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_asked_for_without_one_is_one_clear_line(tmp_path: Path) -> None:
    done = run_train("trainer.accelerator=gpu", f"logger.save_dir={tmp_path}")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: trainer.accelerator=gpu: no CUDA GPU")
    assert "trainer.accelerator=cpu" in errors[0]
    assert not any(tmp_path.iterdir())  # nothing was started


@pytest.mark.slow
def test_train_command_with_a_tiny_budget(real_mnist: Path, tmp_path: Path) -> None:
    done = run_train(
        f"logger.save_dir={tmp_path}", "name=cli", "trainer.max_epochs=2", "trainer.limit_train_batches=30",
        "data.batch_size=64", "optimizer=sgd", "optimizer.lr=0.05", "loss=label_smoothing", "seed=3",
        "trainer.accumulate_grad_batches=2",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "cli" / "version_0"
    assert f"run folder       {run}" in done.stdout
    assert "test accuracy 0." in done.stdout
    output = done.stdout + done.stderr
    # Output is a pipe, not a terminal: plain progress lines, no tqdm carriage returns.
    assert "epoch 1/2 batch 30/30" in done.stdout and "epoch 2 validation: val/acc=" in done.stdout
    assert "\r" not in output
    assert "In sizes" in output and "[1, 784]" in output  # the model summary with layer shapes
    assert (run / "config.yaml").read_text().count("label_smoothing: 0.1") == 1
    assert (run / "checkpoints" / "last.ckpt").is_file() and list(run.glob("events.out.tfevents.*"))
    assert (run / "curves.png").is_file()
    assert f"tensorboard --logdir {run}" in done.stdout
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 2 * 15  # 30 batches accumulated by 2, for 2 epochs
