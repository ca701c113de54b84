"""Finding and reading checkpoints, and the run folder a resume reopens; checkpoints that do not fit the run."""

import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from src import checkpoints
from src.checkpoints import CheckpointError
from src.runs import next_version, run_folder
from src.train import train


def touch_checkpoint(run: Path, mtime: float) -> Path:
    path = run / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"global_step": 7}, path)
    os.utime(path, (mtime, mtime))
    return path


def test_last_means_the_most_recently_written_run_and_a_command_that_needs_one_says_how_to_give_it(tmp_path) -> None:
    runs = tmp_path / "logs" / "mnist"
    older = touch_checkpoint(runs / "version_1", mtime=1_000)
    newer = touch_checkpoint(runs / "version_0", mtime=2_000)  # the newest file wins, not the highest version number
    assert checkpoints.resolve("last", runs) == newer != older
    assert checkpoints.resolve(None, runs) is None and checkpoints.resolve(str(older), runs) == older
    with pytest.raises(CheckpointError, match=r"^ckpt_path=\?\?\?: a checkpoint is needed; give ckpt_path=<path to a .ckpt>"):
        checkpoints.needed(None, tmp_path)
    with pytest.raises(CheckpointError, match=r"^ckpt_path=last: no run under .* has checkpoints/last.ckpt; give .*log_dir="):
        checkpoints.needed("last", tmp_path / "elsewhere")
    last = touch_checkpoint(tmp_path / "logs" / "fashion_mnist" / "version_2", mtime=3_000)
    assert checkpoints.needed("last", tmp_path / "logs") == last  # any run's name under log_dir


def test_a_resume_reopens_the_checkpoints_own_run_folder(tmp_path) -> None:
    runs = tmp_path / "logs" / "mnist"
    path = touch_checkpoint(runs / "version_3", mtime=1_000)
    assert checkpoints.run_folder(path) == runs / "version_3"
    assert run_folder(runs, path, None, None) == (runs / "version_3", False)
    assert run_folder(runs, None, None, None) == (runs / "version_4", True)  # a new run: the next version
    loose = tmp_path / "elsewhere.ckpt"  # outside a run folder: the resumed run starts a new folder
    assert run_folder(runs, loose, None, None) == (runs / "version_4", True)
    assert run_folder(runs, None, tmp_path / "job", None) == (tmp_path / "job", False)  # a sweep's job
    assert checkpoints.run_folder(loose) == tmp_path
    assert next_version(tmp_path / "nothing-yet") == tmp_path / "nothing-yet" / "version_0"


def test_a_file_that_is_not_a_checkpoint_says_so_and_names_the_runs_checkpoints(tmp_path) -> None:
    """A file of the run folder (config.yaml, a picture) is no checkpoint, and the run's checkpoints/ are named instead; a
    truncated one, or one holding Python objects, is damaged."""
    run = tmp_path / "version_0"
    last = touch_checkpoint(run, mtime=1_000)
    best = last.with_name("epoch03-val_acc0.9800.ckpt")
    torch.save({"state_dict": {}}, best)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n not a checkpoint")
    others = re.escape(f"checkpoints of this run: {best}, {last}") + "$"
    for name in ("config.yaml", "curves.png"):
        no_checkpoint = rf"^ckpt_path={re.escape(str(run / name))}: not a Lightning checkpoint; {others}"
        with pytest.raises(CheckpointError, match=no_checkpoint):
            checkpoints.read(run / name)
    with pytest.raises(CheckpointError, match=r"^ckpt_path=.*last.ckpt: not a Lightning checkpoint \(no state_dict in it\)"):
        checkpoints.read(last)  # a file torch.save wrote, but not a Lightning checkpoint
    truncated = run / "checkpoints" / "epoch04.ckpt"
    truncated.write_bytes(best.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"the file is damaged and cannot be read \(\w+\); {others}"):
        checkpoints.read(truncated)
    alone = tmp_path / "notes.txt"
    alone.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint; give a .ckpt written by python -m src.train$"):
        checkpoints.read(alone)
    torch.save({"state_dict": {}, "callback": object()}, tmp_path / "pickled.ckpt")  # not loadable with weights_only=True
    with pytest.raises(CheckpointError, match=r"the file is damaged and cannot be read \(UnpicklingError\)"):
        checkpoints.read(tmp_path / "pickled.ckpt")


def test_a_checkpoint_of_another_network_names_the_layer(tiny_config, tiny_run) -> None:
    """(A damaged one names the run's other checkpoints: above, and through the command line in conftest.py's table.)"""
    with pytest.raises(CheckpointError, match=r"different network: net.layers.1.weight is \[64, 784\] there but \[32, 784\]"):
        train(tiny_config("model.hidden=[32,64]", f"init_from={tiny_run['best_checkpoint']}"))


def test_a_run_resumed_from_a_copied_last_checkpoint_tests_a_checkpoint_that_exists(tiny_config, tmp_path, monkeypatch, capsys):
    """A clone holding only the run's last.ckpt: the resume says before training that the best checkpoint is not there,
    then tests the best of its own validations."""
    first, clone = tmp_path / "first", tmp_path / "clone"
    first.mkdir()
    monkeypatch.chdir(first)
    trained = train(tiny_config("log_dir=lightning_logs", "trainer.max_epochs=1"))
    last = Path(trained["run_dir"]) / "checkpoints" / "last.ckpt"
    (clone / last.parent).mkdir(parents=True)
    shutil.copy(last, clone / last)
    monkeypatch.chdir(clone)
    capsys.readouterr()
    resumed = train(tiny_config("log_dir=lightning_logs", "trainer.max_epochs=2", f"ckpt_path={last}"))
    assert Path(resumed["best_checkpoint"]).is_file() and resumed["epochs"] == 2
    assert Path(resumed["best_checkpoint"]).parent == last.parent and "epoch01" in resumed["best_checkpoint"]
    note = f"note: the run's best checkpoint so far, {Path(trained['best_checkpoint']).name}, is not in {last.parent}"
    assert capsys.readouterr().out.startswith(note)  # said before training, not after


def test_a_renamed_run_folder_keeps_its_best_checkpoint_and_score(tiny_config, tmp_path) -> None:
    """The run's best epoch stays its best after a move: its recorded score is made unbeatable here, so the resumed
    epoch must not replace it (Lightning itself forgets the scores of a folder that moved)."""
    trained = train(tiny_config("trainer.max_epochs=1"))
    run, best = Path(trained["run_dir"]), Path(trained["best_checkpoint"])
    last = run / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    (key,) = [key for key, saved in state["callbacks"].items() if key.startswith("ModelCheckpoint") and saved["monitor"]]
    state["callbacks"][key] |= {"best_model_score": torch.tensor(1.0), "best_k_models": {str(best): torch.tensor(1.0)}}
    torch.save(state, last)
    moved = run.with_name("renamed")
    shutil.move(run, moved)
    resumed = train(tiny_config("trainer.max_epochs=2", f"ckpt_path={moved / 'checkpoints' / 'last.ckpt'}"))
    assert resumed["best_checkpoint"] == str(moved / "checkpoints" / best.name) and resumed["best_val_acc"] == 1.0
    assert resumed["run_dir"] == str(moved) and resumed["epochs"] == 2


def test_last_ckpt_by_time_instead_of_steps_as_the_config_documents_it(tiny_config) -> None:
    """``train_time_interval: "00:05:00"`` reached Lightning as text, which failed at the first training batch."""
    time_based = ["callbacks.step_checkpoint.train_time_interval=00:00:01", "callbacks.step_checkpoint.every_n_train_steps=null"]
    run = Path(train(tiny_config(*time_based, "trainer.max_epochs=1"))["run_dir"])
    assert (run / "checkpoints" / "last.ckpt").is_file()
