"""``python -m src.train`` as a user runs it: a subprocess, on the real MNIST, to real accuracy."""

from pathlib import Path

import torch

from tests.conftest import run_module


def test_one_epoch_on_real_mnist_through_the_command_line(real_mnist: Path, tmp_path: Path) -> None:
    done = run_module(
        "src.train",
        f"log_dir={tmp_path}",
        "name=cli",
        "trainer.max_epochs=1",
        "data.batch_size=64",
        "trainer.accumulate_grad_batches=2",
        "optimizer.lr=0.002",
        "loss=label_smoothing",
        "seed=3",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "cli" / "version_0"
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("test accuracy ")]
    assert float(line.split()[2]) > 0.97 and "on 10,000 MNIST test images" in line  # the official test set, whole
    assert f"run folder       {run}" in done.stdout and f"tensorboard --logdir {run}" in done.stdout
    output = done.stdout + done.stderr
    # Output is a pipe, not a terminal: plain progress lines, no tqdm carriage returns.
    assert "epoch 1/1 batch 100/860" in done.stdout and "epoch 1 batch 860/860 step 430 validation: acc/val=" in done.stdout
    assert "\r" not in output
    assert "In sizes" in output and "[1, 784]" in output  # the model summary with layer shapes
    assert (run / "config.yaml").read_text().count("label_smoothing: 0.1") == 1
    assert list(run.glob("events.out.tfevents.*")) and (run / "curves.png").is_file()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 860 // 2  # 55,000 images in batches of 64, accumulated by 2
