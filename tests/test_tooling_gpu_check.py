"""The GPU check (scripts/gpu_check.sh) in its tiny CPU mode, and the preparation of what the GPU machine lacks.
Measuring tools, run apart from the README's suite: ``pytest -m tooling`` (.ci/run runs both)."""

import gzip
import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.data.datasets import MNIST
from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.tooling
spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")  # not on the import path
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

ALL_STEPS = ["versions", "loop cost", "start-up", "default", "fast", "resume", "on CPU", "bench 32-true"]


def report_rows(report: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows}


def test_tiny_mode_runs_every_step_through_the_shell_entry(real_mnist, tmp_path: Path) -> None:
    out, work, env = tmp_path / "out", tmp_path / "work", cli_env() | {"PYTHON": sys.executable}
    command = ["bash", "scripts/gpu_check.sh", "--tiny", "--out", str(out), "--work", str(work), "--bench", "32-true"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    rows = report_rows((out / "report.md").read_text())
    assert [name for name in rows if name in ALL_STEPS] == ALL_STEPS
    assert all(rows[name][0] == "yes" for name in ALL_STEPS)
    assert "all weights bit-equal" in rows["resume"][2]
    assert "test accuracy 0." in rows["default"][2] and "fit " in rows["default"][2]
    assert sorted(path.name for path in out.iterdir()) == ["log.txt", "report.md"]  # two files to copy back, no more
    log = (out / "log.txt").read_text()
    assert "[" in log and "] test accuracy" in log  # every output line carries its time since the command started


def test_a_failing_step_is_reported_and_the_others_still_run(real_mnist, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(gpu_check, "TINY_TRAIN", [*gpu_check.TINY_TRAIN, "trainer.max_epochs=0"])
    code = gpu_check.main(
        ["--tiny", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--steps", "default", "cpu"]
    )
    assert code == 1
    rows = report_rows((tmp_path / "out" / "report.md").read_text())
    assert rows["default"][0] == "NO" and "trainer.max_epochs=0" in rows["default"][2]
    assert rows["on CPU"][0] == "NO" and "no best checkpoint" in rows["on CPU"][2]
    assert rows["versions"][0] == "yes"


def test_prepare_carries_the_wheels_and_mnist_under_40_mib(real_mnist, tmp_path: Path) -> None:
    folder = tmp_path / "carried"
    command, env = ["bash", "scripts/gpu_check_prepare.sh", str(folder)], os.environ | {"PYTHON": sys.executable}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) < 40 * 2**20
    wheels = sorted(path.name.split("-")[0] for path in (folder / "wheels").glob("*.whl"))
    assert wheels == ["antlr4_python3_runtime", "hydra_core", "omegaconf"]
    for name, digest in MNIST.sha256.items():  # each gzipped file unpacks to the verified original
        assert hashlib.sha256(gzip.decompress((folder / "mnist" / f"{name}.gz").read_bytes())).hexdigest() == digest
    # Offline, as on the GPU machine: the wheels alone install, and hydra imports from where they went.
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site)]
    subprocess.run([*install, *map(str, (folder / "wheels").glob("*.whl"))], check=True, timeout=300)
    probe = "import hydra, omegaconf, antlr4; print(hydra.__file__)"
    imported = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"], capture_output=True, text=True
    )
    assert imported.returncode == 0 and imported.stdout.startswith(str(site)), imported.stderr


def test_the_tutorial_step_brings_back_its_curve(real_mnist, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert gpu_check.main(["--tiny", "--out", str(out), "--work", str(tmp_path / "work"), "--steps", "tutorial"]) == 0
    assert report_rows((out / "report.md").read_text())["tutorial"][0] == "yes"
    rows = (out / "tutorial_curve.csv").read_text().splitlines()
    assert rows[0] == "step,test_batch_accuracy" and [int(row.split(",")[0]) for row in rows[1:]] == [0, 50, 100]
