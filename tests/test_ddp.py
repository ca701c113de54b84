"""Lightning's DDP on CPU (gloo), two processes, through the real command line."""

from pathlib import Path

import pytest
import torch

from tests.conftest import last_state, run_module

# 20 optimizer steps an epoch at an effective batch of 128, deterministic kernels, no schedule, no dropout.
COMMON = [
    "~callbacks.curves_png",  # pictures are tested in test_visual.py (test_figures stays: it gathers across ranks)
    "~callbacks.model_summary",
    "callbacks.progress_bar.every_n_steps=1000",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "scheduler=none",
]


def train(save_dir: Path, name: str, *overrides: str) -> str:
    done = run_module("src.train", *COMMON, f"log_dir={save_dir}", f"name={name}", *overrides, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_two_processes_train_the_weights_of_one_and_resume_on_every_rank(real_mnist, tmp_path: Path) -> None:
    """Rank r takes every 2nd sample of the same seeded order, so two batches of 64 are one batch of 128 split in two;
    DDP averages their mean gradients, which is the mean over the 128. One epoch, then a resume to the second."""
    single = train(tmp_path, "single", "data.batch_size=128", "trainer.max_epochs=2")
    ddp = ["trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=64"]
    train(tmp_path, "ddp", *ddp, "trainer.max_epochs=1")
    resumed = train(tmp_path, "ddp", *ddp, "trainer.max_epochs=2", "ckpt_path=last")
    assert resumed.count("test accuracy ") == 1 and "in 2 epochs, 40 steps" in resumed  # one summary, from rank 0
    runs = list((tmp_path / "ddp").iterdir())
    assert [run.name for run in runs] == ["version_0"]  # one run folder, whatever the number of processes
    assert sorted(p.name for p in (runs[0] / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert len(list((runs[0] / "checkpoints").iterdir())) == 2  # one best, one last: written by rank 0 only
    expected, got = last_state(tmp_path / "single" / "version_0"), last_state(runs[0])
    assert got["global_step"] == expected["global_step"] == 40
    weights = [name for name in expected["state_dict"] if name.startswith("net.")]  # the train metrics' windows are per rank
    assert len(weights) == 8
    for name in weights:
        torch.testing.assert_close(got["state_dict"][name], expected["state_dict"][name], rtol=1e-4, atol=1e-5)
    assert "test accuracy" in single
