"""Lightning's DDP on CPU (gloo), two processes, through the real command line: a sweep of DDP runs, and a resume."""

import csv
import os
from pathlib import Path

import pytest
import torch

from tests.conftest import last_state, run_many, tiny_data

# 16 optimizer steps an epoch at an effective batch of 32, deterministic kernels, no schedule, no dropout; no curves
# picture (test_figures stays: it gathers across ranks).
COMMON = ["~callbacks.curves_png", "~callbacks.model_summary", "callbacks.progress_bar.every_n_steps=1000", "scheduler=none"]
COMMON += ["trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "trainer.deterministic=true", "model.hidden=[64]"]
DDP = ["trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=16"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    """The network's weights in a run's last.ckpt (the train metrics' windows are per rank)."""
    return {name: tensor for name, tensor in last_state(run)["state_dict"].items() if name.startswith("net.")}


@pytest.mark.slow
def test_a_ddp_sweep_runs_each_job_once_on_every_rank_and_a_resume_continues_on_every_rank(tiny_mnist, tmp_path) -> None:
    """Each rank takes every 2nd sample of one seeded order: DDP's average of two batches' mean gradients is one batch of
    32's. Lightning starts rank 1 by running the command line again: in a sweep, that of the job, not a sweep of its own."""
    data = tiny_data(tiny_mnist)
    (sweep,) = run_many([("src.train", tmp_path, ["-m", *data, *COMMON, *DDP, "name=ddp", "trainer.max_epochs=1", "seed=1,2"])])
    assert sweep.returncode == 0 and "error" not in sweep.stderr.lower(), sweep.stderr[-3000:]
    (folder,) = (tmp_path / "lightning_logs").glob("ddp-sweep-*")  # one sweep folder, whatever the number of processes
    assert sorted(path.name for path in folder.iterdir() if path.is_dir()) == ["0_seed:1", "1_seed:2"]
    with (folder / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 and "error" not in rows[0] and sweep.stdout.count("test accuracy ") == 2  # rank 0's summaries
    job = folder / "1_seed:2"
    assert len(list((job / "checkpoints").iterdir())) == 2  # one best, one last: written by rank 0 only
    resume = [*data, *COMMON, *DDP, "name=ddp", "trainer.max_epochs=2", "seed=2", f"ckpt_path={job}/checkpoints/last.ckpt"]
    single = [*data, *COMMON, "data.batch_size=32", "name=single", "trainer.max_epochs=2", "seed=2"]
    resumed, single = run_many([("src.train", tmp_path, resume), ("src.train", tmp_path, single)])
    assert resumed.returncode == 0 and single.returncode == 0, resumed.stderr[-3000:] + single.stderr[-2000:]
    assert resumed.stdout.count("test accuracy ") == 1 and "in 2 epochs, 32 steps" in resumed.stdout  # one summary
    expected, got = weights(tmp_path / "lightning_logs" / "single" / "version_0"), weights(job)
    assert last_state(job)["global_step"] == 32 and len(got) == 4
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-4, atol=1e-5)


def test_a_run_leaves_its_process_group(tiny_config) -> None:
    """gloo's threads, left running at exit, abort a rank (exit -6): every rank leaves the group when its run ends."""
    from src.train import train

    environment = dict(os.environ)  # Lightning sets MASTER_PORT, WORLD_SIZE, ... in this process
    try:
        train(tiny_config("trainer=ddp_cpu", "trainer.devices=1", "trainer.max_epochs=1"))
        assert not torch.distributed.is_initialized()
    finally:
        os.environ.clear()
        os.environ.update(environment)
