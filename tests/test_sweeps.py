"""Hydra multirun sweeps: every job checked first, folder names, the summary, failing runs, parallel jobs, Optuna."""

import csv
import os
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from src.cli import register_resolvers
from src.runs import write_result
from src.sweeps import markdown, read_results, sweep_jobs
from tests.conftest import CONF, run_many, scalars, synthetic_digits, tiny_data

SWEPT_RUN = ["trainer.max_epochs=1", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "model.hidden=[64]"]
SWEPT_RUN += ["~callbacks.model_summary", "~callbacks.curves_png"]


def sweep(tiny, tmp_path: Path, *overrides: str, status: int = 0):
    folder = tmp_path / "sweep"
    (done,) = run_many([("src.train", tmp_path, ["-m", *tiny_data(tiny), *SWEPT_RUN, *overrides, f"hydra.sweep.dir={folder}"])])
    assert done.returncode == status, done.stderr[-3000:]
    with (folder / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    return done, folder, [row | {"folder": str(tmp_path / row["folder"])} for row in rows]  # printed from tmp_path


def swept(row: dict) -> dict[str, str]:
    """A summary row's swept values by key."""
    return dict(override.split("=", 1) for override in row["overrides"].split())


def test_every_sweep_form_of_hydras_basic_sweeper_is_expanded_into_the_jobs_hydra_runs() -> None:
    """Lists, range, choice, glob over a group's configs, quoted values, several swept keys: each job as Hydra runs it,
    so that every one is checked before the first."""
    forms = ["optimizer=glob(adam*)", "+trainer.min_epochs=1", "seed=range(1,3)", "loss=choice(mse,nll)", "name='a,b',c"]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        jobs = sweep_jobs(parser.parse_overrides(forms))
    assert len(jobs) == 2 * 2 * 2 * 2
    assert jobs[0] == ["optimizer=adam", "+trainer.min_epochs=1", "seed=1", "loss=mse", "name='a,b'"]
    assert jobs[1] == ["optimizer=adam", "+trainer.min_epochs=1", "seed=1", "loss=mse", "name=c"]
    assert jobs[-1] == ["optimizer=adamw", "+trainer.min_epochs=1", "seed=2", "loss=nll", "name=c"]
    assert len({" ".join(job) for job in jobs}) == len(jobs)


def test_the_summary_ranks_failed_runs_last_and_runs_without_val_accuracy_by_test_accuracy(tmp_path: Path) -> None:
    nan = float("nan")
    rows = [{"best_val_acc": nan, "error": "ValueError: x"}, {"best_val_acc": nan, "test_acc": 0.1}]
    rows += [{"best_val_acc": nan, "test_acc": 0.2}, {"best_val_acc": 0.5, "test_acc": 0.1}]
    for folder, row in zip("abcd", rows, strict=True):
        write_result(tmp_path / folder, row | {"folder": folder})
    assert [row["folder"] for row in read_results(tmp_path)] == ["d", "c", "b", "a"]
    # the summary table: numbers in columns, missing ones empty
    rows = [
        {"overrides": "seed=1", "best_val_acc": 0.98765, "test_acc": 0.97, "epochs": 1, "wall_s": 12.34, "folder": "a|b"},
        {"overrides": "seed=2", "best_val_acc": float("nan"), "error": "ValueError: x"},
    ]
    lines = markdown(rows).splitlines()
    assert lines[2] == "| seed=1 | 0.9877 | 0.9700 | 1 | 12.3 | a/b |  |"
    assert lines[3] == "| seed=2 |  |  |  |  |  | ValueError: x |"


@pytest.mark.slow
def test_a_sweep_gets_a_folder_per_job_and_a_summary_that_matches_their_logs(tiny_mnist, tmp_path) -> None:
    """Four jobs, two of which diverge (a learning rate of 1e30: a failure no check before the sweep can see): the
    failures become rows, and the other jobs still run."""
    Image.fromarray(synthetic_digits(1, seed=3)[0][0].numpy()).save(tmp_path / "digit.png")
    done, folder, rows = sweep(tiny_mnist, tmp_path, "optimizer.lr=0.001,1e30", "trainer.gradient_clip_val=0.5,1.0", status=1)
    assert done.stderr.strip().splitlines()[-1] == "error: 2 of 4 runs failed; their errors are in the table's error column"
    values = [(lr, clip) for lr in ("0.001", "1e+30") for clip in ("0.5", "1.0")]
    job_overrides = [f"optimizer.lr={lr} trainer.gradient_clip_val={clip}" for lr, clip in values]
    runs = [f"{n}_optimizer.lr:{lr}+trainer.gradient_clip_val:{clip}" for n, (lr, clip) in enumerate(values)]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == runs
    assert len(rows) == 4 and "summary.md" in os.listdir(folder)
    good, failed = rows[:2], rows[2:]  # best first, failed runs last
    assert float(good[0]["best_val_acc"]) >= float(good[1]["best_val_acc"])
    for row in good:
        logged = scalars(row["folder"])
        assert float(row["best_val_acc"]) == pytest.approx(max(v for _, v in logged["acc/val"]), abs=1e-6)
        assert float(row["test_acc"]) == pytest.approx(logged["result/test_acc"][-1][1], abs=1e-6)
        assert row["epochs"] == "1" and float(row["wall_s"]) > 0 and not row["error"]
    for row in failed:
        assert row["error"].startswith("NonFiniteLoss: ") and row["overrides"].startswith("optimizer.lr=1e+30 ")
        assert not row["test_acc"]
    assert "compare them: tensorboard --logdir sweep" in done.stdout  # relative to where the command ran
    # The terminal: a header line per job, nothing said twice within a job, an aligned table at the end.
    blocks = done.stdout.split("\njob ")[1:]
    assert [block.splitlines()[0] for block in blocks] == [f"{n}/4: {row}" for n, row in enumerate(job_overrides, 1)]
    for block in blocks:
        said = [line for line in block.splitlines() if line.strip()]
        assert len(said) == len(set(said)), said
    assert "overrides" in done.stdout and "| overrides |" not in done.stdout  # aligned text, not raw markdown
    # HPARAMS: each job's settings name its swept values, so the trials can be told apart (and TensorBoard, which lays out
    # the table from them, shows first what differs between them: test_visual.py).
    for row in good:
        events = EventAccumulator(row["folder"])
        events.Reload()
        start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        settings = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
        values = swept(row)
        clip = settings["trainer.gradient_clip_val"].number_value  # a swept key without a name of its own
        assert clip == float(values["trainer.gradient_clip_val"]) and settings["batch_size"].number_value == 32
        assert settings["lr"].number_value == 0.001 and settings["optimizer"].string_value == "adamw"
    # Every checkpoint path the sweep printed pastes into the project's commands as it is, unquoted.
    printed = [line.split()[-1] for line in done.stdout.splitlines() if line.startswith("best checkpoint")]
    assert len(printed) == 2 and all(":" in path and "+" in path for path in printed)
    last = str(Path(printed[0]).parent / "last.ckpt")
    resume = [*tiny_data(tiny_mnist), *SWEPT_RUN, f"ckpt_path={last}", "data.batch_size=32", "trainer.max_epochs=2"]
    evaluate = ("src.eval", tmp_path, [f"ckpt_path={printed[0]}", f"data_dir={tiny_mnist.root}"])
    predict = ("src.predict", tmp_path, [f"ckpt_path={last}", f"image={tmp_path / 'digit.png'}"])
    pasted = run_many([evaluate, predict, ("src.train", tmp_path, resume)])
    assert [done.returncode for done in pasted] == [0, 0, 0], [done.stderr[-1000:] for done in pasted]
    assert "test accuracy" in pasted[0].stdout and "digit.png: " in pasted[1].stdout and "test accuracy" in pasted[2].stdout


@pytest.mark.slow
def test_parallel_jobs_through_joblib_never_share_a_folder(tiny_mnist, tmp_path) -> None:
    done, folder, rows = sweep(tiny_mnist, tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2")
    runs = [p for p in folder.iterdir() if p.is_dir()]
    assert sorted(run.name for run in runs) == ["0_seed:1", "1_seed:2"]
    for run in runs:  # each job logged into its own folder, one TensorBoard run each
        assert len(list(run.glob("events.out.tfevents.*"))) >= 1 and (run / "checkpoints" / "last.ckpt").is_file()
        assert "acc/val" in scalars(run)
    assert len({row["folder"] for row in rows}) == 2


@pytest.mark.slow
def test_an_optuna_search_of_three_tiny_trials_reports_its_best(tiny_mnist, tmp_path) -> None:
    done, folder, rows = sweep(tiny_mnist, tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=3")
    assert len(rows) == 3 and len([p for p in folder.iterdir() if p.is_dir()]) == 3
    searched = {"optimizer", "optimizer.lr", "optimizer.weight_decay"}  # data.batch_size too, but tiny_data fixes it
    for row in rows:  # each trial trained with the values Optuna proposed, and its folder is named after them
        values = swept(row)
        assert set(values) == searched and not row.get("error")  # no failed trial: no error column
        config = OmegaConf.load(Path(row["folder"]) / "config.yaml")
        assert config.optimizer.lr == float(values["optimizer.lr"]) and config.data.batch_size == 32  # fixed for all
        assert config.optimizer.weight_decay == float(values["optimizer.weight_decay"]) and config.model.hidden == [64]
        assert Path(row["folder"]).name.split("_", 1)[1] == row["overrides"].replace(" ", "+").replace("=", ":")
        assert float(row["best_val_acc"]) == pytest.approx(max(v for _, v in scalars(row["folder"])["acc/val"]), abs=1e-6)
    best = OmegaConf.load(folder / "optimization_results.yaml")  # the sweeper's own record of the study
    assert best.best_value == pytest.approx(float(rows[0]["best_val_acc"]), abs=1e-6)  # the top row is a best trial
    tied = [swept(row) for row in rows if row["best_val_acc"] == rows[0]["best_val_acc"]]
    assert {key: str(value) for key, value in best.best_params.items()} in tied  # tiny data: trials may tie
    assert f"best run: {rows[0]['overrides']}" in done.stdout


@pytest.mark.parametrize(
    ("overrides", "gpus", "tasks"),
    [
        (["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], 4, 4),  # a GPU partition: one task per GPU
        (["trainer.accelerator=gpu"], 1, 1),
        (["trainer=ddp_cpu", "trainer.devices=2"], None, 2),  # a CPU partition, which has no GPUs to give
        (["trainer.accelerator=cpu"], None, 1),
        ([], None, 1),  # accelerator=auto asks for none
    ],
)
def test_slurm_jobs_ask_for_gpus_only_when_the_run_uses_them(overrides, gpus, tasks) -> None:
    from hydra import compose

    register_resolvers()  # as every entry point's runner does
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node) == (gpus, tasks)
    assert launcher.nodes == cfg.trainer.get("num_nodes", 1)
