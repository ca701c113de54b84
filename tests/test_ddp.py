"""Lightning's DDP on CPU (gloo), two processes, through the real command line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

QUIET = ["~callbacks.model_summary", "callbacks.progress_bar.every_n_steps=1000"]


def run(*overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "LOCAL_RANK", "WORLD_SIZE")}
    done = subprocess.run([sys.executable, "-m", "src.train", *QUIET, *overrides], cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def accuracy_of(done: subprocess.CompletedProcess) -> float:
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("test accuracy ")]
    return float(line.split()[2])


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_effective_batch(real_mnist, tmp_path: Path) -> None:
    ddp = run("trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=64", "trainer.max_epochs=2", f"logger.save_dir={tmp_path}", "name=ddp")
    single = run("data.batch_size=128", "trainer.max_epochs=2", f"logger.save_dir={tmp_path}", "name=single")
    runs = list((tmp_path / "ddp").iterdir())
    assert [r.name for r in runs] == ["version_0"]  # one run folder, whatever the number of processes
    checkpoints = sorted(p.name for p in (runs[0] / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints  # one best, one last: written by rank 0 only
    assert ddp.stdout.count("test accuracy ") == 1  # one summary
    assert torch.load(runs[0] / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * 430
    assert abs(accuracy_of(ddp) - accuracy_of(single)) <= 0.005, (accuracy_of(ddp), accuracy_of(single))


@pytest.mark.slow
def test_resume_under_ddp_continues_at_the_right_step(real_mnist, tmp_path: Path) -> None:
    common = ["trainer=ddp_cpu", "trainer.devices=2", "scheduler=none", "trainer.limit_train_batches=40",
              "trainer.limit_val_batches=2", f"logger.save_dir={tmp_path}"]
    run(*common, "trainer.max_epochs=1")
    resumed = run(*common, "trainer.max_epochs=2", "ckpt_path=last")
    assert "best val accuracy" in resumed.stdout and "after 2 epochs, 80 steps" in resumed.stdout
    state = torch.load(tmp_path / "mnist" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 80 and state["epoch"] == 1
    assert [r.name for r in (tmp_path / "mnist").iterdir()] == ["version_0"]
