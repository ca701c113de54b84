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
# A container has no cgroups of its own to give SLURM: processes are tracked by their parents; each task is bound to
# its CPUs (sched_setaffinity), so that torch runs as many threads as the job was given.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
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


def job_log(sweep_parent: Path, job: int, printed: str, timeout: float = 120) -> Path:
    """The log of the sweep's job ``job`` (submitit's, task 0), once it holds ``printed``; its folder is named by the
    job's SLURM id (``<array>_<job>``, or ``<id>`` alone for a sweep of one), which scancel takes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in sweep_parent.glob("*/.submitit/*/*_0_log.out"):
            if int(log.parent.name.partition("_")[2] or 0) == job and printed in log.read_text():
                return log
        time.sleep(0.2)
    raise AssertionError(f"job {job} never printed {printed!r}")


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_ddp_of_slurm_tasks_equals_the_same_run_on_one_machine_and_a_gpu_sweep_is_checked_without_a_gpu(
    slurm, tiny_mnist, tmp_path
) -> None:
    """The ranks started by SLURM (one task each, Lightning's SLURM environment reading their ranks), not by Lightning:
    one run folder that rank 0 writes, and the weights of ``trainer=ddp_cpu`` run on one machine. Submitted from a
    machine without a GPU (as a login node is), a sweep of DDP runs on GPUs passes the check of its jobs; this cluster
    has no GPU to give, and sbatch's refusal ends that command. The three commands run side by side."""
    ddp = ["trainer=ddp_cpu", "trainer.devices=2", "seed=3"]
    local = [sys.executable, "-m", "src.train", *tiny_data(tiny_mnist), *TINY_RUN, *ddp, f"log_dir={tmp_path / 'one'}"]
    gpus = sweep_command(tmp_path / "gpu", tiny_mnist, "trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=2", "seed=1,2")
    started = [
        subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for command, env in ((local, cli_env()), (gpus, cli_env() | slurm))
    ]
    done = slurm_sweep(slurm, tmp_path / "slurm", tiny_mnist, *ddp)
    (_, local_err), (_, gpu_err) = (process.communicate(timeout=300) for process in started)
    assert done.returncode == 0 and started[0].returncode == 0, done.stderr[-3000:] + local_err[-2000:]
    last = gpu_err.splitlines()[-1]  # after sbatch's own line
    assert started[1].returncode == 2 and last.startswith(
        "error: hydra/launcher=slurm: sbatch: error: Invalid generic resource"
    ), gpu_err[-3000:]
    assert not list((tmp_path / "gpu").glob("*"))  # the refused command leaves no sweep folder
    (run,) = (tmp_path / "slurm").glob("mnist-sweep-*/0_*")
    for rank in (0, 1):  # a task of its own each, as submitit's log files name them
        (log,) = run.parent.glob(f".submitit/*/*_{rank}_log.err")
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in log.read_text()
    writers = {path.name.split(".")[-2] for path in run.glob("events.out.tfevents.*")}  # the writing process's id
    assert len(writers) == 1 and len(list(run.parent.glob("[0-9]_*"))) == 1
    alone = last_weights(tmp_path / "one" / "mnist" / "version_0")
    for name, tensor in last_weights(run).items():
        torch.testing.assert_close(tensor, alone[name], rtol=0, atol=0)


def test_a_job_warned_of_its_time_limit_saves_its_step_and_requeued_ends_as_an_uninterrupted_run(
    slurm, tiny_mnist, tmp_path
) -> None:
    """SIGUSR2, as SLURM sends it ``signal_delay_s`` ahead of the time limit (here by scancel): the step is finished and
    saved, submitit requeues the job, and the job goes on from its own last.ckpt to the weights of its twin, a job of
    the same sweep that trains the same run unstopped (``print_config`` changes nothing it computes)."""
    # 12 epochs of a fifth of a second each: the signal, sent after the first, finds the run still training.
    longer = ["trainer.max_epochs=12", "trainer.limit_train_batches=null", "seed=4", "hydra.launcher.max_num_timeout=1"]
    command = sweep_command(tmp_path, tiny_mnist, *longer, "print_config=false,true")
    with subprocess.Popen(
        command, cwd=REPO, env=cli_env() | slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as sweep:
        log = job_log(tmp_path, 0, "epoch 1 batch 16/16")
        job = log.parent.name
        subprocess.run(["scancel", "--signal=USR2", job], env=os.environ | slurm, check=True)
        deadline = time.monotonic() + 60
        while squeue_or_sinfo(slurm, "squeue", "-h", "-o", "%r", "-j", job) != "BeginTime":
            assert time.monotonic() < deadline, "the job was not requeued"
            time.sleep(0.2)  # requeued: SLURM lets it start two minutes later, and the test does not wait so long
        # Not in the second its last start was stopped: slurmd refuses a job credential made in the second it revoked
        # the last one (seconds are its clock), and the job would fail ("Job credential revoked").
        subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now+2"], env=os.environ | slurm, check=True)
        out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err[-3000:]
    printed = log.read_text()
    assert "stopped by SLURM's SIGUSR2 with its step saved: the job goes back in the queue" in printed
    assert printed.count("job 1/2: print_config=False") == 2 and "sweep of 2 runs" in out  # started twice, one row
    (sweep_dir,) = tmp_path.glob("mnist-sweep-*")
    requeued, straight = last_weights(sweep_dir / "0_print_config:False"), last_weights(sweep_dir / "1_print_config:True")
    for name, tensor in straight.items():
        torch.testing.assert_close(requeued[name], tensor, rtol=0, atol=0)


def test_a_sweep_runs_each_job_on_the_cluster_and_a_cancelled_one_is_a_failed_row_of_its_summary(
    slurm, tiny_mnist, tmp_path
) -> None:
    """Each job through sbatch, its header and summary in submitit's job log. scancel sends SIGTERM: the job saves its
    step and ends as a failed run; the other completes, the sweep still writes its summary and ends with the exit status
    of a sweep with a failed run."""
    # The second job runs long enough for scancel to find it training (60 epochs of a fifth of a second each).
    command = sweep_command(tmp_path, tiny_mnist, "trainer.max_epochs=2,60", "trainer.limit_train_batches=null")
    with subprocess.Popen(
        command, cwd=REPO, env=cli_env() | slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as sweep:
        cancelled = job_log(tmp_path, 1, "epoch 1 batch 16/16")
        subprocess.run(["scancel", cancelled.parent.name], env=os.environ | slurm, check=True)
        out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, err[-3000:]
    (sweep_dir,) = tmp_path.glob("mnist-sweep-*")
    jobs = ["0_trainer.max_epochs:2", "1_trainer.max_epochs:60"]
    assert "sweep of 2 runs, best first" in out and sorted(p.name for p in sweep_dir.glob("[0-9]_*")) == jobs
    printed = job_log(tmp_path, 0, "test accuracy").read_text()
    assert "job 1/2: trainer.max_epochs=2" in printed and "job 2/2: trainer.max_epochs=60" in cancelled.read_text()
    summary = (sweep_dir / "summary.md").read_text().split("trainer.max_epochs=60")
    assert len(summary) == 2 and "stopped by a signal" in summary[1].splitlines()[0]
    assert json.loads((sweep_dir / jobs[0] / "result.json").read_text())["epochs"] == 2
    assert (sweep_dir / jobs[1] / "checkpoints" / "last.ckpt").is_file()  # its step saved: ckpt_path= resumes it
    assert "Bypassing sacct" not in err and "srun" not in err, err[-3000:]
