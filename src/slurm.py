"""``hydra/launcher=slurm`` (Hydra's submitit launcher) where the cluster keeps no accounting: submitit's ``sacct`` prints a
refusal there at every poll, and a job that ends without a result (cancelled) would never be seen to end. ``squeue
--states=all`` knows each job's state until ``MinJobAge`` after it ends."""

import subprocess

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob


class QueueWatcher(SlurmInfoWatcher):
    """submitit's watcher of the jobs' states, reading ``squeue`` instead of ``sacct``."""

    def _make_command(self) -> list[str] | None:
        jobs = sorted({job.split("_")[0] for job in self._registered - self._finished})
        return ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", f"--jobs={','.join(jobs)}"] if jobs else None

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        lines = (string.decode() if isinstance(string, bytes) else string).split()
        return {job: {"JobID": job, "State": state} for job, _, state in (line.partition("|") for line in lines)}


def follow_jobs_without_accounting() -> None:
    """Where ``sacct`` refuses (no accounting), submitit's SLURM jobs are followed with :class:`QueueWatcher`."""
    if subprocess.run(["sacct", "--noheader", "--jobs=1"], capture_output=True).returncode != 0:
        SlurmJob.watcher = QueueWatcher(delay_s=600)
