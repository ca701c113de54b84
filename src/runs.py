"""Run folders: ``<log_dir>/<name>/version_<N>/`` for a new run, claimed atomically (two runs started at once never share
one), and the result file each run leaves in its folder."""

import json
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"  # what src.train measured (a sweep adds the job's row to it)


def run_folder(runs: Path, checkpoint: Path | None, job_dir: Path | None, rank_zero_dir: Path | None) -> tuple[Path, bool]:
    """The run's folder, and whether it is a new one (to be claimed): rank 0's for the ranks it starts, a resumed run's
    own, a sweep job's, else the next ``version_<N>`` of ``runs``."""
    if rank_zero_dir is not None:
        return rank_zero_dir, False
    if checkpoint is not None and (resumed := run_of(checkpoint)):
        return resumed, False
    if job_dir is not None:
        return job_dir, False
    return next_version(runs), True


def run_of(checkpoint: Path) -> Path | None:
    """The run folder src.train saved ``checkpoint`` in (``<run>/checkpoints/<file>``); None for a file elsewhere."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None


def next_version(runs: Path) -> Path:
    """``runs/version_<N>`` with N one more than the largest there (0 in a new folder), as Lightning's loggers count."""
    numbers = [int(p.name[8:]) for p in runs.glob("version_*") if p.name[8:].isdigit()] if runs.is_dir() else []
    return runs / f"version_{max(numbers, default=-1) + 1}"


def claim(run_dir: Path) -> bool:
    """Create a new run folder; False if another run created it first."""
    try:
        run_dir.mkdir(parents=True)
    except FileExistsError:
        return False
    return True


def write_result(run_dir: Path, row: dict[str, Any]) -> None:
    """Record ``row`` in the run folder's result file, beside what it holds already (jobs may run in other processes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESULT_FILE).write_text(json.dumps(run_result(run_dir) | row, indent=1))


def run_result(run_dir: Path) -> dict[str, Any]:
    """What src.train recorded of a run (its test accuracy, which checkpoint it tested); {} if nothing."""
    path = run_dir / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
