"""Training processes stopped by SIGTERM, Ctrl-C or SIGKILL, resumed, and compared to an uninterrupted run."""

import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import NO_PICTURES, REPO, last_state, run_many, scalars, tiny_data

# Small but real: 2 epochs of 63 batches, dropout (so the RNG state matters), one-cycle (so the schedule does).
RUN = [*NO_PICTURES, "model.hidden=[64]", "model.dropout=0.2", "data.batch_size=8", "trainer.limit_val_batches=2"]
RUN += ["trainer.limit_test_batches=2", "trainer.max_epochs=2", "trainer.deterministic=true", "trainer.log_every_n_steps=10"]
RUN += ["callbacks.progress_bar.every_n_steps=10", "~callbacks.model_summary"]
EPOCH = 63  # 500 training images in batches of 8: 62 full ones and one of 4
STEPS = 2 * EPOCH


def arguments(tiny, save_dir: Path, name: str, *extra: str) -> list[str]:
    return [*tiny_data(tiny), *RUN, f"log_dir={save_dir}", f"name={name}", *extra]


def last_step_shown(out: str) -> int:
    """The step of the last progress line (``epoch E/2 batch B/63 ...``): the run had got at least that far when the
    signal, sent once that line appeared, reached it."""
    epoch, batch = re.findall(r"^epoch (\d+)/\d+ batch (\d+)/", out, re.MULTILINE)[-1]
    return (int(epoch) - 1) * EPOCH + int(batch)


EVERY_10 = ["callbacks.step_checkpoint.every_n_train_steps=10"]


@pytest.fixture(scope="module")
def first_runs(tiny_mnist, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """The uninterrupted run and the runs each test stops, side by side: by name, the command's result and its log_dir."""
    runs = {
        "straight": (),
        "cut": ((signal.SIGTERM, "epoch 1/2 batch 10/"),),
        "killed": ((signal.SIGKILL, "epoch 2/2 batch 20/"),),
        "swept": ((signal.SIGINT, "epoch 1/2 batch 10/"),),
    }
    log_dir = tmp_path_factory.mktemp("logs")
    extra = {"killed": EVERY_10, "swept": ["seed=0,1"]}
    commands = [
        ("src.train", REPO, ["-m"] * (name == "swept") + arguments(tiny_mnist, log_dir, name, *extra.get(name, [])), *sent)
        for name, sent in runs.items()
    ]
    return {name: (done, log_dir) for name, done in zip(runs, run_many(commands), strict=True)}


@pytest.fixture(scope="module")
def straight(first_runs) -> Path:
    done, log_dir = first_runs["straight"]
    assert done.returncode == 0, done.stderr[-2000:]
    return log_dir / "straight" / "version_0"


def assert_same_run(resumed: Path, straight: Path) -> None:
    """Bit for bit (each run forked by tests/forked_cli.py, on one thread: docs/resume-and-faults.md)."""
    expected, got = last_state(straight), last_state(resumed)
    assert got["global_step"] == expected["global_step"] == STEPS
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name
    assert scalars(resumed) == scalars(straight)  # TensorBoard: no gap, no step twice


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_the_step_and_the_printed_command_resumes_exactly(first_runs, straight) -> None:
    cut, log_dir = first_runs["cut"]
    assert cut.returncode == 130, cut.stderr[-2000:]
    run_dir = log_dir / "cut" / "version_0"
    assert last_step_shown(cut.stdout) <= last_state(run_dir)["global_step"] < EPOCH  # the batch running at the signal
    resume = shlex.split(cut.stderr.strip().splitlines()[-1])
    assert resume[:3] == ["python", "-m", "src.train"] and resume[-1] == f"ckpt_path={run_dir}/checkpoints/last.ckpt"
    assert "model.hidden=[64]" in resume  # the original overrides, quoted for a shell
    assert "was raised with message" not in cut.stdout + cut.stderr  # Lightning's line: the project's says it once
    (done,) = run_many([("src.train", REPO, resume[3:])])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not resumable" not in done.stderr  # the device batches' place in the epoch is in the checkpoint
    assert_same_run(run_dir, straight)


@pytest.mark.slow
def test_sigkill_loses_at_most_the_periodic_interval(tiny_mnist, first_runs, straight) -> None:
    killed, log_dir = first_runs["killed"]
    assert killed.returncode == -signal.SIGKILL
    run_dir = log_dir / "killed" / "version_0"
    state = last_state(run_dir)  # whole: the atomic rename never leaves a partial last.ckpt
    step = state["global_step"]
    assert step % 10 == 0 and step > last_step_shown(killed.stdout) - 10  # the newest periodic save: at most 10 steps lost
    (done,) = run_many([("src.train", REPO, arguments(tiny_mnist, log_dir, "killed", *EVERY_10, "ckpt_path=last"))])
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list((run_dir / "checkpoints").glob(".*partial*"))  # one a kill mid-save left: removed by the next save
    assert_same_run(run_dir, straight)


@pytest.mark.slow
def test_ctrl_c_stops_the_whole_sweep_and_says_how_to_resume_its_job(first_runs) -> None:
    """Ctrl-C finishes the batch and saves it, as SIGTERM does, and the sweep's later jobs do not start."""
    done, log_dir = first_runs["swept"]
    out, err = done.stdout, done.stderr
    assert done.returncode == 130, err[-2000:]
    (sweep,) = log_dir.glob("swept-sweep-*")
    assert sorted(path.name for path in sweep.iterdir() if path.is_dir()) == ["0_seed:0"]  # job 2 never started
    assert "stopped by a signal (the sweep's later jobs did not run); the current step is saved" in err
    resume = shlex.split(err.strip().splitlines()[-1])
    assert resume[:3] == ["python", "-m", "src.train"] and "seed=0" in resume
    assert resume[-1] == f"ckpt_path={sweep}/0_seed:0/checkpoints/last.ckpt" and "job 2/2" not in out
    assert last_step_shown(out) <= last_state(sweep / "0_seed:0")["global_step"] < EPOCH


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05, 0.3])
def test_a_second_ctrl_c_aborts_with_a_whole_checkpoint_and_the_command_that_resumes(tiny_mnist, tmp_path, delay) -> None:
    """The second Ctrl-C comes while the batch finishes, while its step is saved, or after: whichever, the command
    exits 130 with the command that resumes from a complete last.ckpt, and never Lightning's exit 1."""
    twice = (signal.SIGINT, "epoch 1/2 batch 20/", delay)
    (done,) = run_many([("src.train", REPO, arguments(tiny_mnist, tmp_path, "twice", *EVERY_10), twice)])
    assert done.returncode == 130, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stdout + done.stderr
    run_dir = tmp_path / "twice" / "version_0"
    resume = shlex.split(done.stderr.strip().splitlines()[-1])
    assert resume[:3] == ["python", "-m", "src.train"] and resume[-1] == f"ckpt_path={run_dir}/checkpoints/last.ckpt"
    step = last_state(run_dir)["global_step"]  # whole: it loads
    assert 10 <= step < EPOCH and not list((run_dir / "checkpoints").glob(".*partial*"))
    said = re.search(r"stopped by (a second Ctrl-C|a signal); (.*)\. Resume with:", done.stderr)
    assert said is not None, done.stderr[-2000:]
    if said[1] == "a second Ctrl-C":
        assert said[2] == f"the last complete checkpoint is of step {step}"
