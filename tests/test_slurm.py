"""A real single-node SLURM cluster (Debian's slurm-wlm 22.05 and munge), started for these tests: a sweep through
``hydra/launcher=slurm``, a DDP run whose ranks SLURM starts, a preempted job requeued, a cancelled job of a sweep. CI
installs the packages (.ci/run) and runs these tests as root; elsewhere they skip and say why. Nothing is mocked: the
jobs go through sbatch and srun, submitit watches them."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, TINY_RUN, cli_env, tiny_data

pytestmark = pytest.mark.slow

SLURM_CONF = """\
ClusterName=tests
SlurmctldHost={host}
SlurmUser=root
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
AuthType=auth/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
# A container has no cgroups of its own to give SLURM: processes are tracked by their parents, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
# Pending jobs are looked at every second, not every minute: a requeued job starts as soon as it may.
SchedulerParameters=sched_interval=1
NodeName={host} CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The cluster's environment (``SLURM_CONF``) for the commands that use it; its daemons stopped afterwards."""
    missing = [name for name in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(name) is None]
    cannot = f"no SLURM here ({', '.join(missing)} missing): .ci/run installs Debian's slurm-wlm and munge" if missing else ""
    cannot = cannot or ("SLURM's daemons are started as root, as CI runs the tests" if os.geteuid() != 0 else "")
    if cannot:
        (pytest.fail if os.environ.get("TESTS_NEED_SLURM") else pytest.skip)(cannot)
    folder = tmp_path_factory.mktemp("slurm")
    conf = folder / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname(), ports=free_ports(2), folder=folder, cpus=os.cpu_count()))
    env = {"SLURM_CONF": str(conf)}
    started_munge = subprocess.run(["munge", "-n"], capture_output=True).returncode != 0
    if started_munge:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        subprocess.run(["munged", "--force"], check=True, capture_output=True)
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run([daemon, "-f", str(conf)], check=True, env=os.environ | env)
    try:
        deadline = time.monotonic() + 30
        while squeue_or_sinfo(env, "sinfo", "-h", "-o", "%T") != "idle":
            if time.monotonic() > deadline:
                logs = "\n".join(
                    (folder / f"{d}.log").read_text()[-2000:] for d in ("slurmctld", "slurmd") if (folder / f"{d}.log").exists()
                )
                pytest.fail(f"the SLURM node never became idle:\n{logs}")
            time.sleep(0.5)
        yield env
    finally:
        deadline = time.monotonic() + 30  # a job's steps end with the daemons' word: stop those only after
        while squeue_or_sinfo(env, "squeue", "-h") and time.monotonic() < deadline:
            time.sleep(0.5)
        subprocess.run(["scancel", "--full", f"--user={os.getuid()}"], env=os.environ | env, capture_output=True)
        for daemon in ("slurmd", "slurmctld"):
            pid_file = folder / f"{daemon}.pid"
            if pid_file.exists():
                os.kill(int(pid_file.read_text()), 15)
        if started_munge:
            subprocess.run(["munged", "--stop"], capture_output=True)


def squeue_or_sinfo(env: dict[str, str], *command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, env=os.environ | env).stdout.strip()


def sweep_command(log_dir: Path, tiny, *overrides: str) -> list[str]:
    """``python -m src.train -m hydra/launcher=slurm ...`` on the tiny data, one CPU a task, as a user submits it."""
    command = [sys.executable, "-m", "src.train", "-m", "hydra/launcher=slurm", "trainer.accelerator=cpu"]
    return command + ["hydra.launcher.cpus_per_task=1", *tiny_data(tiny), *TINY_RUN, f"log_dir={log_dir}", *overrides]


def slurm_sweep(slurm: dict[str, str], log_dir: Path, tiny, *overrides: str) -> subprocess.CompletedProcess:
    command = sweep_command(log_dir, tiny, *overrides)
    return subprocess.run(command, cwd=REPO, env=cli_env() | slurm, capture_output=True, text=True, timeout=300)


def job_log(sweep_dir_parent: Path, job: int, printed: str, timeout: float = 120) -> Path:
    """The log of the sweep's job ``job`` (submitit's, task 0), once it holds ``printed``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in sweep_dir_parent.glob(f"*/.submitit/*/*_{job}_log.out" if job == 0 else f"*/.submitit/*_{job}/*_0_log.out"):
            if printed in log.read_text():
                return log
        time.sleep(0.2)
    raise AssertionError(f"job {job} never printed {printed!r}")


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_a_sweep_runs_each_job_on_the_cluster_and_ends_with_its_summary(slurm, tiny_mnist, tmp_path) -> None:
    done = slurm_sweep(slurm, tmp_path, tiny_mnist, "seed=1,2")
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep_dir,) = tmp_path.glob("mnist-sweep-*")
    assert "sweep of 2 runs, best first" in done.stdout and (sweep_dir / "summary.md").is_file()
    assert sorted(p.name for p in sweep_dir.glob("[0-9]_*")) == ["0_seed:1", "1_seed:2"]
    for number, seed in enumerate((1, 2)):  # each through sbatch: submitit's job log holds what the job printed
        printed = job_log(tmp_path, number, "test accuracy").read_text()
        assert f"job {number + 1}/2: seed={seed}" in printed and "test accuracy" in printed
        assert (sweep_dir / f"{number}_seed:{seed}" / "result.json").is_file()
    assert "Bypassing sacct" not in done.stderr and "srun" not in done.stderr, done.stderr[-3000:]


def test_a_gpu_sweep_is_checked_without_a_gpu_and_submitted(slurm, tiny_mnist, tmp_path) -> None:
    """Submitted from a machine without a GPU (as a login node is), a GPU sweep passes the check of its jobs; this
    cluster has no GPU to give, and sbatch's refusal ends the command."""
    done = slurm_sweep(slurm, tmp_path, tiny_mnist, "trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=2", "seed=1,2")
    last = done.stderr.splitlines()[-1]  # after sbatch's own line
    assert done.returncode == 2 and last.startswith("error: hydra/launcher=slurm: sbatch: error: Invalid generic resource")


def test_a_ddp_run_of_two_slurm_tasks_equals_the_same_run_on_one_machine(slurm, tiny_mnist, tmp_path) -> None:
    """The ranks started by SLURM (one task each, Lightning's SLURM environment reading their ranks), not by Lightning:
    one run folder that rank 0 writes, and the weights of ``trainer=ddp_cpu`` run on one machine."""
    ddp = ["trainer=ddp_cpu", "trainer.devices=2", "seed=3"]
    done = slurm_sweep(slurm, tmp_path / "slurm", tiny_mnist, *ddp)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "slurm").glob("mnist-sweep-*/0_*")
    for rank in (0, 1):  # a task of its own each, as submitit's log files name them
        (log,) = run.parent.glob(f".submitit/*/*_{rank}_log.err")
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in log.read_text()
    writers = {path.name.split(".")[-2] for path in run.glob("events.out.tfevents.*")}  # the writing process's id
    assert len(writers) == 1 and len(list(run.parent.glob("[0-9]_*"))) == 1
    command = [sys.executable, "-m", "src.train", *tiny_data(tiny_mnist), *TINY_RUN, *ddp, f"log_dir={tmp_path / 'one'}"]
    local = subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr[-3000:]
    weights = [
        torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for folder in (run, tmp_path / "one" / "mnist" / "version_0")
    ]
    for name, tensor in weights[0].items():
        torch.testing.assert_close(tensor, weights[1][name], rtol=0, atol=0)


def test_a_job_warned_of_its_time_limit_saves_its_step_and_requeued_ends_as_an_uninterrupted_run(
    slurm, tiny_mnist, tmp_path
) -> None:
    """SIGUSR2, as SLURM sends it ``signal_delay_s`` ahead of the time limit (here by scancel): the step is finished and
    saved, submitit requeues the job, and the job goes on from its own last.ckpt to the weights of a run never stopped."""
    longer = ["trainer.max_epochs=5", "trainer.limit_train_batches=null", "seed=4", "hydra.launcher.max_num_timeout=1"]
    command = sweep_command(tmp_path / "slurm", tiny_mnist, *longer)
    with subprocess.Popen(
        command, cwd=REPO, env=cli_env() | slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as sweep:
        log = job_log(tmp_path / "slurm", 0, "epoch 2 batch 16/16")
        subprocess.run(["scancel", "--signal=USR2", log.parent.name], env=os.environ | slurm, check=True)
        deadline = time.monotonic() + 60
        while squeue_or_sinfo(slurm, "squeue", "-h", "-o", "%r", "-j", log.parent.name) != "BeginTime":
            assert time.monotonic() < deadline, "the job was not requeued"
            time.sleep(0.2)  # requeued: SLURM lets it start two minutes later, and the test does not wait so long
        subprocess.run(["scontrol", "update", f"jobid={log.parent.name}", "StartTime=now"], env=os.environ | slurm, check=True)
        out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err[-3000:]
    printed = log.read_text()
    assert "stopped by SLURM's SIGUSR2 with its step saved: the job goes back in the queue" in printed
    assert printed.count("job 1/1") == 2 and "sweep of 1 runs" in out  # started twice, one row
    (run,) = (tmp_path / "slurm").glob("mnist-sweep-*/0_*")
    once = [*tiny_data(tiny_mnist), *TINY_RUN, *longer[:-1], "trainer.accelerator=cpu", f"log_dir={tmp_path / 'once'}"]
    done = subprocess.run([sys.executable, "-m", "src.train", *once], cwd=REPO, env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    straight, requeued = last_weights(tmp_path / "once" / "mnist" / "version_0"), last_weights(run)
    for name, tensor in straight.items():
        torch.testing.assert_close(requeued[name], tensor, rtol=0, atol=0)


def test_a_cancelled_job_is_a_failed_row_of_the_summary_and_the_others_complete(slurm, tiny_mnist, tmp_path) -> None:
    """scancel sends SIGTERM: the job saves its step and ends as a failed run of the sweep, which still writes its
    summary, and ends with the exit status of a sweep with a failed run."""
    command = sweep_command(tmp_path, tiny_mnist, "seed=1,2", "trainer.max_epochs=4", "trainer.limit_train_batches=null")
    with subprocess.Popen(
        command, cwd=REPO, env=cli_env() | slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as sweep:
        log = job_log(tmp_path, 1, "epoch 1 batch 16/16")
        subprocess.run(["scancel", log.parent.name], env=os.environ | slurm, check=True)
        out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, err[-3000:]
    (sweep_dir,) = tmp_path.glob("mnist-sweep-*")
    summary = (sweep_dir / "summary.md").read_text()
    assert "seed=2" in summary and "stopped by a signal" in summary.split("seed=2")[1].splitlines()[0]
    assert json.loads((sweep_dir / "0_seed:1" / "result.json").read_text())["epochs"] == 4
    assert (sweep_dir / "1_seed:2" / "checkpoints" / "last.ckpt").is_file()  # its step saved: ckpt_path= resumes it
