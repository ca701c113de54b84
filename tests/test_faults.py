"""Faults during training: NaN losses, failing disks. (Signals and kill -9 are in test_interrupt.py.)"""

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

from src import checkpoints
from src.callbacks.finite_loss import NonFiniteLoss
from src.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError
from src.train import train


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_config) -> None:
    sgd = ("optimizer=sgd", "optimizer.momentum=0", "optimizer.nesterov=false", "scheduler=none", "trainer.max_epochs=3")
    every = ("callbacks.step_checkpoint.every_n_train_steps=1", "callbacks.finite_loss.check_every_n_steps=1000")
    cfg = tiny_config(*sgd, *every)
    cfg.optimizer.lr = 1e30  # huge: the weights overflow to inf within a few steps, then the loss is NaN
    stopped = r"became NaN or infinite at optimizer step \d+: the learning rate \(SGD, lr 1e\+30\)"
    with pytest.raises(NonFiniteLoss, match=stopped) as caught:
        train(cfg)
    last = Path(cfg.log_dir) / "mnist" / "version_0" / "checkpoints" / "last.ckpt"
    # Step 0's loss is finite, so its checkpoint is written; the first non-finite loss stops the next save.
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 1 and all(torch.isfinite(t).all() for t in state["state_dict"].values())
    assert str(last) in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["optimizer.lr=1e30"], "lower optimizer.lr. Training stopped; last good checkpoint: none was written yet"),
        (["trainer.precision=16-true", "optimizer.lr=1e-6"], "(trainer.precision=16-true); use bf16-mixed"),
    ],
)
def test_a_nan_stop_names_its_cause_and_no_checkpoint_it_stopped(tiny_config, overrides, said) -> None:
    """Stopped at the first save (the epoch's end): its file was named but never written."""
    cfg = tiny_config("trainer.max_epochs=1", *overrides)
    with pytest.raises(NonFiniteLoss) as caught:
        train(cfg)
    assert said in str(caught.value) and not list(Path(cfg.log_dir).rglob("*.ckpt"))


def test_a_failed_checkpoint_write_leaves_the_previous_file_whole(tmp_path, monkeypatch) -> None:
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    before = target.read_bytes()

    def disk_full(obj, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", disk_full)
    disk_is_full = r"could not write checkpoint .*last.ckpt: No space left on device; .* MiB free .*; the previous last.ckpt"
    with pytest.raises(CheckpointWriteError, match=disk_is_full):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    assert target.read_bytes() == before
    assert torch.load(target, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left behind


def test_a_save_removes_the_partial_files_that_a_killed_process_left(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    for pid in (dead.pid, os.getppid()):  # a process killed mid-save; one still writing
        (tmp_path / f".last.ckpt.partial-{pid}").write_bytes(b"half")
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".last.ckpt.partial-{os.getppid()}", "last.ckpt"]


def test_a_checkpoint_folder_that_cannot_be_created(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointWriteError, match="could not write checkpoint"):
        AtomicCheckpointIO().save_checkpoint({"step": 1}, blocker / "checkpoints" / "last.ckpt")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 2 MiB tmpfs: a checkpoint of the default network (~11 MiB) cannot be written there."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the faked disk error above still runs")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_disk_ends_in_one_error_and_leaves_no_partial_file(compose_config, tiny_mnist, small_disk) -> None:
    cfg = tiny_mnist.use_in(compose_config(f"log_dir={small_disk}", "trainer.max_epochs=1", "trainer.log_every_n_steps=2"))
    full = r"No space left on device; .* MiB free and a checkpoint needs about 10\.\d MiB"
    with pytest.raises(CheckpointWriteError, match=full):
        train(cfg)
    assert not [path for path in small_disk.rglob("*") if "partial" in path.name]
