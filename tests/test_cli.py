"""``python -m src.train`` as a user types it: every refusal whose source is the command line and one of each other
source (one line, exit status 2, no traceback, not a byte written; the other entry points': test_after_training.py), and
what a real run prints and writes."""

import shlex
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser

from src.train import resume_command
from tests.conftest import BAD_COMMANDS, one_error_line, run_many, tiny_data, tree


@pytest.mark.slow
def test_every_source_of_a_refusal_gets_one_line_exit_2_and_writes_nothing(tiny_mnist, tmp_path: Path) -> None:
    """conftest.py's "cli" rows, each a process of its own (run_many) in a working folder of its own, on the tiny data."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "damaged.ckpt").write_bytes(b"PK\x03\x04 half a zip")
    (work / "notes.txt").write_text("not a checkpoint")
    (work / "a-file").write_text("a file where a folder should be")
    data = [override for override in tiny_data(tiny_mnist) if not override.startswith("data.batch_size")]
    cases = BAD_COMMANDS["cli"]
    before = tree(work)
    commands = [[*arguments, *(data if "data.sources=[]" not in arguments else [])] for arguments, _ in cases]
    results = run_many([("src.train", work, arguments) for arguments in commands])
    for (arguments, start), done in zip(cases, results, strict=True):
        assert one_error_line(done).startswith(f"error: {start}"), (arguments, done.stderr[-600:])
    assert tree(work) == before  # not a byte written: no run folder, no event file, no mlflow.db, no sweep folder


@pytest.mark.slow
def test_one_epoch_on_real_mnist_through_the_command_line(real_run) -> None:
    done, run = real_run["done"], real_run["run_dir"]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("test accuracy ")]
    assert float(line.split()[2]) > 0.97 and "on 10,000 MNIST test images" in line  # the official test set, whole
    assert f"run folder       {run}" in done.stdout and f"tensorboard --logdir {run}" in done.stdout
    output = done.stdout + done.stderr
    # Output is a pipe, not a terminal: plain progress lines, no tqdm carriage returns.
    assert "epoch 1/1 batch 100/860" in done.stdout and "epoch 1 batch 860/860 step 430 validation: acc/val=" in done.stdout
    assert "\r" not in output and "Error" not in output and "Warning" not in output
    assert "In sizes" in output and "[1, 784]" in output  # the model summary with layer shapes
    assert (run / "config.yaml").read_text().count("label_smoothing: 0.1") == 1
    assert list(run.glob("events.out.tfevents.*")) and (run / "curves.png").is_file()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 860 // 2  # 55,000 images in batches of 64, accumulated by 2
    assert state["config"]["loss"]["label_smoothing"] == 0.1  # the run's config, for a resume to be held to


PRINTED_PATHS = ["lightning_logs/mnist/version_0/checkpoints/last.ckpt", "my runs/last.ckpt", "运行/last.ckpt", "a=b/x.ckpt"]


@pytest.mark.parametrize("path", PRINTED_PATHS)
def test_the_printed_resume_command_gives_hydra_the_checkpoint_path(path: str) -> None:
    """After a signal: the resume command, split as a shell splits it, hands Hydra the path; quoted only where needed."""
    printed = shlex.split(resume_command(Path(path), ("trainer.max_epochs=3",)))
    assert printed[:4] == ["python", "-m", "src.train", "trainer.max_epochs=3"]
    assert OverridesParser.create().parse_override(printed[-1]).value() == path
    assert (printed[-1] == f"ckpt_path={path}") == (path.isascii() and "=" not in path)
