"""Real training processes stopped by SIGTERM or killed by SIGKILL, resumed, and compared to an uninterrupted run."""

import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import NO_PICTURES, REPO, cli_env, last_state, scalars

# Small but real: MNIST, 2 epochs of 120 batches, dropout (so the RNG state matters), one-cycle (so the schedule does).
RUN = [
    *NO_PICTURES,
    "model.hidden=[64]",
    "model.dropout=0.2",
    "data.batch_size=64",
    "trainer.limit_train_batches=120",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "trainer.log_every_n_steps=10",
    "callbacks.progress_bar.every_n_steps=20",
    "~callbacks.model_summary",
]


def command(save_dir: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "src.train", *RUN, f"log_dir={save_dir}", f"name={name}", *extra]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env=cli_env())


def stop_when(args: list[str], line_start: str, signum: int) -> tuple[int, str, str]:
    """Start training, send ``signum`` when a stdout line starts with ``line_start``; return (code, stdout, stderr)."""
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith(line_start):
            process.send_signal(signum)
            break
    out, err = process.communicate(timeout=300)
    return process.returncode, "".join(seen) + out, err


@pytest.fixture(scope="module")
def straight(real_mnist, tmp_path_factory) -> Path:
    save_dir = tmp_path_factory.mktemp("logs")
    done = run(command(save_dir, "straight"))
    assert done.returncode == 0, done.stderr[-2000:]
    return save_dir / "straight" / "version_0"


def assert_same_run(resumed: Path, straight: Path) -> None:
    expected, got = last_state(straight), last_state(resumed)
    assert got["global_step"] == expected["global_step"] == 240
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name
    assert scalars(resumed) == scalars(straight)  # TensorBoard: no gap, no step twice


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_signal_mid_epoch_saves_the_step_and_resumes_exactly(straight: Path, tmp_path: Path, signum: int) -> None:
    """Ctrl-C is turned into SIGTERM by the StopOnCtrlC callback, so from there on both take the same path: the
    printed command is resumed for real once, after SIGTERM."""
    code, out, err = stop_when(command(tmp_path, "cut"), "epoch 1/2 batch 60/", signum)
    assert code == 130, err[-2000:]
    run_dir = tmp_path / "cut" / "version_0"
    stopped_at = last_state(run_dir)["global_step"]
    assert 60 <= stopped_at < 120  # the batch that was running when the signal came, in the first epoch
    resume = shlex.split(err.strip().splitlines()[-1])
    assert resume[:3] == ["python", "-m", "src.train"] and resume[-1] == f"ckpt_path={run_dir}/checkpoints/last.ckpt"
    assert "model.hidden=[64]" in resume  # the original overrides, quoted for a shell
    if signum == signal.SIGINT:
        return
    done = run([sys.executable, *resume[1:]])
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_run(run_dir, straight)


@pytest.mark.slow
def test_sigkill_loses_at_most_the_periodic_interval(straight: Path, tmp_path: Path) -> None:
    every = ["callbacks.step_checkpoint.every_n_train_steps=25"]
    code, out, err = stop_when(command(tmp_path, "killed", *every), "epoch 2/2 batch 40/", signal.SIGKILL)
    assert code == -signal.SIGKILL
    run_dir = tmp_path / "killed" / "version_0"
    state = last_state(run_dir)  # whole: the atomic rename never leaves a partial last.ckpt
    progressed = 120 + 40
    assert progressed - 25 <= state["global_step"] <= progressed + 5  # at most 25 steps (plus the batches in flight)
    assert not list((run_dir / "checkpoints").glob(".*partial*"))
    done = run(command(tmp_path, "killed", *every, "ckpt_path=last"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_run(run_dir, straight)


@pytest.mark.slow
def test_a_signal_stops_the_whole_sweep_and_says_how_to_resume_its_job(real_mnist, tmp_path: Path) -> None:
    """Not only the running job: the later jobs do not start (a user's Ctrl-C means the sweep)."""
    args = [sys.executable, "-m", "src.train", "-m", *RUN, f"log_dir={tmp_path}", "name=swept", "seed=0,1"]
    code, out, err = stop_when(args, "epoch 1/2 batch 60/", signal.SIGTERM)
    assert code == 130, err[-2000:]
    (sweep,) = (tmp_path).glob("swept-sweep-*")
    assert sorted(path.name for path in sweep.iterdir() if path.is_dir()) == ["0_seed:0"]  # job 2 never started
    assert "stopped by a signal (the sweep's later jobs did not run); the current step is saved" in err
    resume = shlex.split(err.strip().splitlines()[-1])
    assert resume[:3] == ["python", "-m", "src.train"] and "seed=0" in resume
    assert resume[-1] == f"ckpt_path={sweep}/0_seed:0/checkpoints/last.ckpt"
    assert "job 2/2" not in out
