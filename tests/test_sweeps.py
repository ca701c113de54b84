"""Hydra multirun sweeps through the real command line: folders, summary, failing runs."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO
from tests.test_training import scalars

TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=20", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
        "model.hidden=[64]", "~callbacks.model_summary"]


def sweep(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    folder = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-m", "src.train", "-m", *TINY, *overrides, f"hydra.sweep.dir={folder}"],
                          cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, folder


@pytest.mark.slow
def test_two_by_two_sweep_gives_four_folders_and_a_summary_that_matches_their_logs(real_mnist, tmp_path) -> None:
    done, folder = sweep(tmp_path, "optimizer=sgd,adam", "data.batch_size=64,128")
    runs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert runs == ["0_optimizer=sgd,data.batch_size=64", "1_optimizer=sgd,data.batch_size=128",
                    "2_optimizer=adam,data.batch_size=64", "3_optimizer=adam,data.batch_size=128"]
    with (folder / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 4 and "summary.md" in os.listdir(folder)
    best = [float(row["best_val_acc"]) for row in rows]
    assert best == sorted(best, reverse=True)  # best first
    for row in rows:
        logged = scalars(row["folder"])
        assert float(row["best_val_acc"]) == pytest.approx(max(v for _, v in logged["val/acc"]), abs=1e-6)
        assert float(row["test_acc"]) == pytest.approx(logged["test/acc"][-1][1], abs=1e-6)
        assert row["epochs"] == "1" and float(row["wall_s"]) > 0 and not row["error"]
    assert f"tensorboard --logdir {folder}" in done.stdout


@pytest.mark.slow
def test_a_failing_run_is_a_row_and_the_others_finish(real_mnist, tmp_path) -> None:
    done, folder = sweep(tmp_path, "optimizer.lr=-1,0.001")
    with (folder / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["overrides"] for row in rows] == ["optimizer.lr=0.001", "optimizer.lr=-1"]  # the failed run last
    assert rows[0]["test_acc"] and not rows[0]["error"]
    assert rows[1]["error"].startswith("ConfigError: optimizer.lr=-1: the learning rate must be > 0") and not rows[1]["test_acc"]


@pytest.mark.slow
def test_parallel_jobs_through_joblib_never_share_a_folder(real_mnist, tmp_path) -> None:
    done, folder = sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=sgd,adam", "data.batch_size=64,128")
    runs = [p for p in folder.iterdir() if p.is_dir()]
    assert len(runs) == 4
    for run in runs:  # each job logged into its own folder, one TensorBoard run each
        assert len(list(run.glob("events.out.tfevents.*"))) >= 1 and (run / "checkpoints" / "last.ckpt").is_file()
        assert "val/acc" in scalars(str(run))
    with (folder / "summary.csv").open() as file:
        assert len({row["folder"] for row in csv.DictReader(file)}) == 4


@pytest.mark.slow
def test_an_optuna_search_of_three_tiny_trials_reports_its_best(real_mnist, tmp_path) -> None:
    done, folder = sweep(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=3")
    with (folder / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 and len([p for p in folder.iterdir() if p.is_dir()]) == 3
    searched = {"optimizer", "optimizer.lr", "optimizer.weight_decay", "data.batch_size"}
    for row in rows:  # each trial trained with the values Optuna proposed, and its folder is named after them
        values = dict(o.split("=", 1) for o in row["overrides"].split())
        assert set(values) == searched and not row["error"]
        config = OmegaConf.load(Path(row["folder"]) / "config.yaml")
        assert config.optimizer.lr == float(values["optimizer.lr"]) and config.data.batch_size == int(values["data.batch_size"])
        assert config.optimizer.weight_decay == float(values["optimizer.weight_decay"])
        assert Path(row["folder"]).name.split("_", 1)[1].startswith(f"optimizer={values['optimizer']},optimizer.lr=")
        assert float(row["best_val_acc"]) == pytest.approx(max(v for _, v in scalars(row["folder"])["val/acc"]), abs=1e-6)
    best = OmegaConf.load(folder / "optimization_results.yaml")  # the sweeper's own record of the study
    assert best.best_value == pytest.approx(float(rows[0]["best_val_acc"]), abs=1e-6)  # the top row is the best trial
    assert {key: str(value) for key, value in best.best_params.items()} == dict(o.split("=", 1) for o in rows[0]["overrides"].split())
    assert f"best run: {rows[0]['overrides']}" in done.stdout
