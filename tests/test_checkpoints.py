"""Finding and reading checkpoints, and the run folder a resume reopens: pure helpers, no training."""

import os
from pathlib import Path

import pytest
import torch

from src import checkpoints
from src.checkpoints import CheckpointError


def touch_checkpoint(run: Path, mtime: float) -> Path:
    path = run / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"global_step": 7}, path)
    os.utime(path, (mtime, mtime))
    return path


def test_last_means_the_most_recently_written_run(tmp_path) -> None:
    runs = tmp_path / "mnist"
    older = touch_checkpoint(runs / "version_1", mtime=1_000)
    newer = touch_checkpoint(runs / "version_0", mtime=2_000)  # the newest file wins, not the highest version number
    assert checkpoints.resolve("last", runs) == newer != older
    assert checkpoints.resolve(None, runs) is None
    assert checkpoints.resolve(str(older), runs) == older


def test_missing_checkpoints_are_named(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"^ckpt_path=last: no run under .*mnist has checkpoints/last.ckpt"):
        checkpoints.resolve("last", tmp_path / "mnist")
    with pytest.raises(CheckpointError, match=r"^ckpt_path=nowhere.ckpt: no such file"):
        checkpoints.resolve("nowhere.ckpt", tmp_path)


def test_a_resume_reopens_the_checkpoints_own_run_folder(tmp_path) -> None:
    path = touch_checkpoint(tmp_path / "logs" / "mnist" / "version_3", mtime=1_000)
    assert checkpoints.run_folder(path) == tmp_path / "logs" / "mnist" / "version_3"
    args = checkpoints.resume_logger_args(path, {"global_step": 120})
    assert args == {"save_dir": str(tmp_path / "logs"), "name": "mnist", "version": "version_3", "purge_step": 120}
    loose = tmp_path / "elsewhere.ckpt"  # outside a run folder: the resumed run starts a new folder
    assert checkpoints.resume_logger_args(loose, {"global_step": 120}) == {} and checkpoints.run_folder(loose) == tmp_path


def test_a_checkpoint_holding_python_objects_is_refused_as_damaged(tmp_path) -> None:
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "callback": object()}, path)  # not loadable with weights_only=True
    with pytest.raises(CheckpointError, match=r"the file is damaged and cannot be read \(UnpicklingError\)"):
        checkpoints.read(path)
