"""The loggers: their histories across a resume, MLflow's run, which a resume continues."""

import csv
import io
import logging
import shlex
import threading
import time
from pathlib import Path

import pytest

from src.config import check_mlflow
from src.figures import read_csv_curves, read_curves
from src.train import train
from tests.conftest import TINY_RUN, TinyMNIST, run_many, scalars, tiny_data


def test_csv_history_of_a_resumed_run_is_the_tensorboard_history(tiny_config, tmp_path, caplog) -> None:
    """logger=many: after a resume, the CSV files (one per start) read as one history equal to TensorBoard's (purged
    after the checkpoint), without the reader's "out of order" warning; the printed commands paste into a shell."""
    common = ("logger=many", "scheduler=none", "trainer.log_every_n_steps=4", f"log_dir={tmp_path / 'run s'}")
    first = train(tiny_config(*common, "trainer.max_epochs=1"))
    tensorboard, csv_file = (line.split(maxsplit=1)[1] for line in first["logged"])
    assert shlex.split(tensorboard) == ["tensorboard", "--logdir", str(Path(first["run_dir"]).resolve())]
    assert shlex.split(csv_file) == [str(Path(first["run_dir"]).resolve() / "csv" / "version_0" / "metrics.csv")]
    time.sleep(1.1)  # event files sort by their creation second, then a counter: in one process, let the second differ
    run = Path(train(tiny_config(*common, "trainer.max_epochs=2", "ckpt_path=last"))["run_dir"])
    histories = sorted(run.glob("csv/*/metrics.csv"))
    assert run == Path(first["run_dir"]) and [path.parent.name for path in histories] == ["version_0", "version_1"]
    from_csv, from_tensorboard = read_csv_curves(histories), scalars(run)
    for tag in ("loss/train", "acc/val", "loss/val"):
        assert [step for step, _ in from_csv[tag]] == [step for step, _ in from_tensorboard[tag]], tag
        assert [value for _, value in from_csv[tag]] == pytest.approx([value for _, value in from_tensorboard[tag]]), tag
    assert [step for step, _ in from_csv["acc/val"]] == [15, 31]  # one value an epoch, each logged once
    caplog.clear()  # TensorBoard's own reader, above, warns
    with caplog.at_level(logging.WARNING):
        assert [step for step, _ in read_curves(run)["acc/val"]] == [15, 31]
    assert not [record for record in caplog.records if "out of order" in record.getMessage()]


def test_init_from_starts_a_new_run_from_the_weights_only(tiny_config) -> None:
    first = train(tiny_config("trainer.max_epochs=1", "trainer.log_every_n_steps=1"))
    tuned = train(tiny_config("name=tuned", "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "init_from=last"))
    assert Path(tuned["run_dir"]).parent.name == "tuned" and tuned["global_step"] == 16  # its own folder, step 0 again
    start, trained = scalars(tuned["run_dir"])["loss/train"][0][1], scalars(first["run_dir"])["loss/train"]
    assert start < trained[0][1] - 0.2  # begins where the first run's weights were, not at a fresh network's loss
    assert not (Path(tuned["run_dir"]) / "config.resumed.yaml").exists()


def test_a_tracking_server_must_answer_within_seconds() -> None:
    """What check_mlflow asks of a server: an answer at /health (a stand-in; nothing listening: conftest.py's table)."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    with HTTPServer(("127.0.0.1", 0), Health) as server:
        threading.Thread(target=server.handle_request, daemon=True).start()
        check_mlflow("logger", {"tracking_uri": f"http://127.0.0.1:{server.server_port}"})


@pytest.mark.slow
def test_mlflow_run_is_continued_by_a_resume(tiny_mnist: TinyMNIST, tmp_path: Path) -> None:
    """A tiny run with logger=mlflow, resumed for a second epoch in another precision: MLflow's client reads one run,
    whose params are the settings as it started and whose metric history goes on across the resume."""
    from mlflow.tracking import MlflowClient

    work = tmp_path / "work"
    work.mkdir()
    uri = f"sqlite:///{work}/lightning_logs/mlflow.db"  # MLflow's local store, under log_dir: the default
    common = [*TINY_RUN, "logger=mlflow", "name=mlflow-local", *tiny_data(tiny_mnist)]
    resume = [*common, "trainer.max_epochs=2", "trainer.precision=bf16-mixed", "ckpt_path=last"]
    (first,), (resumed,) = run_many([("src.train", work, common)]), run_many([("src.train", work, resume)])  # in turn
    for done in (first, resumed):
        assert done.returncode == 0 and "mlflow ui --backend-store-uri sqlite:///" in done.stdout, done.stdout + done.stderr
    assert "not supported by the model summary" not in resumed.stderr  # bf16-mixed keeps 32-bit weights: it counts them
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mlflow-local").experiment_id])
    assert run.info.run_id in first.stdout and run.info.run_id in resumed.stdout
    assert run.info.run_name == "mlflow-local/version_0" and run.info.status == "FINISHED"
    params = {key: run.data.params[key] for key in ("lr", "batch_size", "optimizer", "precision")}
    assert params == {"lr": "0.001", "batch_size": "32", "optimizer": "adamw", "precision": "32-true"}  # as the run started
    val_steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "acc/val")]
    assert val_steps == [3, 7]  # epoch 1 before the resume, epoch 2 after it (4 steps an epoch)
    assert client.get_metric_history(run.info.run_id, "result/best_val_acc")[-1].step == 8
    (plot,) = run_many([("src.plot", work, ["lightning_logs/mlflow-local/version_0"])])
    assert plot.returncode == 2 and "its runs kept their metrics in MLflow, whose UI draws them" in plot.stderr


def test_a_logged_window_is_with_the_loggers_before_its_step_can_be_checkpointed(tiny_config, tmp_path) -> None:
    """A periodic checkpoint is saved as its step ends and holds the train metrics' window emptied: that window must be
    written by then, or a kill -9 between the two loses it for good (the resumed run never logs it again)."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import CSVLogger

    from src.build import build_classifier
    from src.config import resolved

    class Probe(L.Callback):  # where a step checkpoint would be saved
        def __init__(self) -> None:
            self.missing: list[int] = []

        def on_train_batch_end(self, trainer, *args) -> None:
            step, written = trainer.global_step - 1, Path(trainer.logger.log_dir) / "metrics.csv"  # the step just done
            with written.open() if written.is_file() else io.StringIO() as file:
                logged = {int(row["step"]) for row in csv.DictReader(file) if row.get("loss/train")}
            if (step + 1) % trainer.log_every_n_steps == 0 and step not in logged:
                self.missing.append(step)

    config, probe = resolved(tiny_config("trainer.max_epochs=1")), Probe()
    settings = dict(max_epochs=1, log_every_n_steps=4, enable_progress_bar=False)
    trainer = L.Trainer(logger=CSVLogger(tmp_path), callbacks=[probe], **settings)
    trainer.fit(build_classifier(config), datamodule=instantiate(config["data"]))
    assert trainer.global_step >= 8 and probe.missing == []
