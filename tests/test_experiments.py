"""Experiment configs: what they set, and that they run."""

from pathlib import Path

import torch

from src.train import train
from tests.conftest import datamodule, run_many, scalars, tiny_data


def test_the_tutorials_batches_are_all_training_images_in_order_whole_batches_only(tiny_mnist) -> None:
    """Its generator: batch k is images [k*b:(k+1)*b] of the file, and it starts over before a short last batch."""
    dm = datamodule(tiny_mnist, batch_size=64, tutorial_order=True)
    every = dm._normalize(dm._dataset(train=True).data)  # the 600 training images in file order, the val ones too
    loader = dm.train_dataloader()
    assert len(loader) == 600 // 64 == 9
    for epoch in (0, 1):  # the same order every epoch: never shuffled
        loader.sampler.set_epoch(epoch)
        batches = [images for images, _ in loader]
        assert len(batches) == 9 and all(len(images) == 64 for images in batches)
        assert torch.equal(torch.cat(batches), every[: 9 * 64])  # the last 24 images are never used
    assert len(dm.val_dataloader().sampler) == 100  # validation as always, an extra


def test_tutorial_experiment_records_test_batch_accuracy_as_a_curve(tiny_config) -> None:
    short = ["experiment=tutorial", "data.batch_size=50", "trainer.max_steps=40", "trainer.check_val_every_n_epoch=1"]
    short += ["callbacks.test_batch_accuracy.every_n_steps=5", "callbacks.test_batch_accuracy.test_images=100"]
    summary = train(tiny_config(*short))
    assert summary["global_step"] == 40 and summary["epochs"] == 4  # 600 // 50 = 12 steps an epoch, on all 600 images
    curve = scalars(summary["run_dir"])["acc/test_batch_tutorial"]
    assert [step for step, _ in curve] == list(range(0, 40, 5))  # after steps 0, 5, 10, ... as the tutorial's j
    assert all(0.0 <= value <= 1.0 for _, value in curve) and curve[-1][1] > curve[0][1]
    assert summary["best_checkpoint"] is None and summary["notes"][0].startswith("tested the final weights")
    accumulated = train(tiny_config(*short, "name=accumulated", "trainer.accumulate_grad_batches=2", "trainer.max_steps=20"))
    steps = [step for step, _ in scalars(accumulated["run_dir"])["acc/test_batch_tutorial"]]
    assert steps == list(range(0, 20, 5))  # once per optimizer step, not once per accumulated batch


RECIPES = sorted(path.stem for path in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))


def test_every_experiment_trains(tiny_config) -> None:
    """Each recipe composes, passes the checks and trains on the tiny data (their accuracy: docs/results.md); tutorial has
    tests of its own above, best trains in test_training.py's precisions test."""
    assert {"best", "fashion", "record", "tutorial"} <= set(RECIPES)
    for experiment in (recipe for recipe in RECIPES if recipe not in ("tutorial", "best")):  # tiny files stand in for Fashion
        summary = train(tiny_config(f"experiment={experiment}", "trainer.max_epochs=2", f"name={experiment}"))
        assert summary["test_acc"] > 0.6 and summary["epochs"] == 2, experiment


def test_short_epochs_print_a_line_every_n_steps_not_every_epoch(tiny_mnist, tmp_path) -> None:
    """experiment=tutorial's epochs are 14 steps: lines come every N optimizer steps, with the run's step count."""
    # Batches of 32: 18 an epoch on all 600 images; a line every 20 steps and a log every 25, both more than an epoch.
    every = ["callbacks.progress_bar.every_n_steps=20", "trainer.log_every_n_steps=25"]
    every += ["~callbacks.test_figures", "~callbacks.curves_png"]
    arguments = ["experiment=tutorial", "trainer.max_steps=40", *every, *tiny_data(tiny_mnist), f"log_dir={tmp_path / 'logs'}"]
    (done,) = run_many([("src.train", tiny_mnist.root.parent, arguments)])
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("epoch ") and " batch " in line]
    assert [line.split(" step ")[1].split()[0] for line in lines] == ["20/40", "40/40"]
    assert [line.split(" batch ")[1].split()[0] for line in lines] == ["2/18", "4/18"]  # of the epoch's 18 batches
    assert "/-1" not in done.stdout
    run_dir = next((tmp_path / "logs").rglob("events.*")).parent
    # Logged every 25 steps across 18-step epochs: Lightning's warning that it would not log is dropped.
    assert [step for step, _ in scalars(run_dir)["loss/train"]] == [24]
    assert "smaller than the logging interval" not in done.stderr
