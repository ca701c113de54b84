"""Training through Lightning on the tiny data set: gradient accumulation, resume, checkpoints, refusals before a run."""

import functools
import math
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch._dynamo.testing import CompileCounterWithBackend

from src.build import build_classifier
from src.cli import ConfigError
from src.config import resolved
from src.eval import evaluate
from src.models import classifier
from src.models.classifier import Classifier
from src.train import print_summary, train
from tests.conftest import NO_PICTURES, last_state, scalars, tree


def fit_weights(cfg) -> dict[str, torch.Tensor]:
    """Fit with the config's model, data and Trainer settings (no logger, no checkpoints); return the weights."""
    L.seed_everything(cfg.seed, verbose=False)
    model = build_classifier(resolved(cfg))
    off = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    length = {key: cfg.trainer[key] for key in ("max_epochs", "accumulate_grad_batches")}
    trainer = L.Trainer(deterministic=True, use_distributed_sampler=False, num_sanity_val_steps=0, **off, **length)
    trainer.fit(model, datamodule=instantiate(cfg.data, _convert_="all"))
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_accumulated_small_batches_equal_one_big_batch_and_plain_batch_means_would_not(tiny_config, monkeypatch) -> None:
    """110 training samples: with batches of 8 and accumulate=3 the last window holds 2 batches of 14 samples, as the last
    batch of 24 does. With each batch's plain mean (Lightning's default) the weights differ."""
    sgd = ("optimizer=sgd", "optimizer.lr=0.1", "optimizer.momentum=0", "optimizer.nesterov=false", "scheduler=none")
    sgd = (*sgd, "trainer.max_epochs=2")
    big = fit_weights(tiny_config(*sgd, "data.batch_size=24", val_size=490))
    accumulated = tiny_config(*sgd, "data.batch_size=8", "trainer.accumulate_grad_batches=3", val_size=490)
    weights = fit_weights(accumulated)
    for name in big:
        torch.testing.assert_close(weights[name], big[name], rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(classifier, "accumulation_scales", lambda sizes, k: [1 / size for size in sizes])
    weights = fit_weights(accumulated)
    assert any(not torch.allclose(weights[n], big[n], rtol=1e-4, atol=1e-5) for n in big)


def resume_case(tiny, *overrides: str):
    """Dropout, shifts, turns, elastic distortion, erasing and mixup draw random numbers: a resume must draw the same."""
    randomness = ("model.dropout=0.3", "mixup=0.2", "data.shift=2", "data.erase=0.5", "data.elastic_alpha=20", "data.rotate=10")
    return tiny(*randomness, "optimizer=adam", "scheduler=none", *overrides)


def test_resume_reproduces_the_uninterrupted_run_with_the_saved_rng_state(tiny_config) -> None:
    straight = train(resume_case(tiny_config, "name=straight", "trainer.max_epochs=4"))
    first = train(resume_case(tiny_config, "name=resumed", "trainer.max_epochs=2"))
    time.sleep(1.1)  # event files sort by their creation second, then a counter: in one process, let the second differ
    second = train(resume_case(tiny_config, "name=resumed", "trainer.max_epochs=4", "ckpt_path=last"))
    assert second["run_dir"] == first["run_dir"]  # the curves continue in the same run folder
    assert second["global_step"] == straight["global_step"] and second["epochs"] == 4
    expected, resumed = last_state(straight["run_dir"])["state_dict"], last_state(second["run_dir"])["state_dict"]
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    assert second["test_acc"] == straight["test_acc"]
    # TensorBoard: the same tags at the same steps with the same values: no gap, no step twice.
    assert scalars(second["run_dir"]) == scalars(straight["run_dir"])
    assert (Path(first["run_dir"]) / "config.yaml").is_file() and (Path(first["run_dir"]) / "config.resumed.yaml").is_file()
    # Without the RNGState callback, dropout draws other masks after a resume: the check above would fail.
    train(resume_case(tiny_config, "name=no_rng", "trainer.max_epochs=2", "~callbacks.rng_state"))
    without = train(resume_case(tiny_config, "name=no_rng", "trainer.max_epochs=4", "ckpt_path=last", "~callbacks.rng_state"))
    assert any(not torch.equal(expected[name], last_state(without["run_dir"])["state_dict"][name]) for name in expected)


def test_weight_averaging_is_validated_tested_evaluated_and_resumed_as_one(tiny_config) -> None:
    """callbacks=[default,ema]: the checkpoint's weights are the average (src.eval scores what the run's test scored; with
    Lightning's EMAWeightAveraging as it is, it does not), the trained ones ride beside, and a resume continues both."""
    ema = ("callbacks=[default,ema]", "callbacks.ema.decay=0.9", "trainer.max_epochs=2")
    straight = train(resume_case(tiny_config, "name=straight", *ema))
    first = train(resume_case(tiny_config, "name=resumed", *ema[:2], "trainer.max_epochs=1"))
    second = train(resume_case(tiny_config, "name=resumed", *ema, "ckpt_path=last"))
    expected, resumed = last_state(straight["run_dir"]), last_state(second["run_dir"])
    for weights in ("state_dict", "current_model_state"):
        for name in expected[weights]:
            assert torch.equal(expected[weights][name], resumed[weights][name]), (weights, name)
    assert any(not torch.equal(expected["state_dict"][n], expected["current_model_state"][n]) for n in expected["state_dict"])
    assert second["test_acc"] == straight["test_acc"] and first["run_dir"] == second["run_dir"]
    assert evaluate(straight["best_checkpoint"])["result/test_acc"] == pytest.approx(straight["test_acc"])


def test_a_finished_run_trained_longer_runs_its_schedule_again_over_the_added_steps(tiny_config) -> None:
    """16 steps, then ckpt_path=last with twice the epochs: steps 16-31 follow 0-15's learning rates (a warm restart), in
    the same run folder, and the weights continue from the checkpoint (the loss does not start over)."""
    settings = ("scheduler=one_cycle", "trainer.log_every_n_steps=1")
    first = train(tiny_config(*settings, "trainer.max_epochs=1"))
    longer = train(tiny_config(*settings, "trainer.max_epochs=2", "ckpt_path=last"))
    assert longer["run_dir"] == first["run_dir"] and longer["global_step"] == 32
    logged = scalars(longer["run_dir"])
    ((_, rates),) = ((tag, dict(points)) for tag, points in logged.items() if tag.startswith("lr"))
    assert [rates[step + 16] for step in range(16)] == pytest.approx([rates[step] for step in range(16)], rel=1e-6)
    losses = dict(logged["loss/train"])
    assert losses[16] < losses[0] - 0.2  # carried on from the trained weights (2.30 at step 0, 1.9 or less at 16)


def test_checkpoints_load_with_weights_only(tiny_config) -> None:
    summary = train(tiny_config("scheduler=step", "trainer.max_epochs=1"))
    for path in (summary["best_checkpoint"], Path(summary["run_dir"]) / "checkpoints" / "last.ckpt"):
        state = torch.load(path, weights_only=True)  # raises on anything but plain data and tensors
        assert state["hyper_parameters"]["model"]["hidden"] == [64, 64] and state["config"]["scheduler"]["drops"] == 2
        assert len(state["lr_schedulers"]) == 1  # the schedule's state is saved too
        model = Classifier.load_from_checkpoint(path, weights_only=True)
        assert [layer.out_features for layer in model.net.layers if isinstance(layer, torch.nn.Linear)] == [64, 64, 10]


def test_tiny_data_is_learned(tiny_run) -> None:
    assert tiny_run["test_acc"] > 0.9 and tiny_run["best_val_acc"] > 0.9 and tiny_run["test_images"] == 200


@pytest.mark.slow
def test_bf16_mixed_precision_and_compile_train(tiny_config, monkeypatch) -> None:
    """Batches of one size (500 training, 100 val and 200 test images in batches of 50): one compilation per stage.
    Compiled by torch's graph capture and autograd (aot_eager), not inductor, whose C++ code generation takes ten
    times the rest of the test on two cores and is torch's own (docs/speed.md times the real one on a GPU)."""
    counter = CompileCounterWithBackend("aot_eager")
    monkeypatch.setattr(torch.nn.Module, "compile", functools.partialmethod(torch.nn.Module.compile, backend=counter))
    sizes = ("data.batch_size=50", "data.eval_batch_size=50", "model.hidden=[64]")
    summary = train(tiny_config("trainer.precision=bf16-mixed", "model.compile=true", "trainer.max_epochs=2", *sizes))
    assert summary["test_acc"] > 0.6 and summary["test_images"] == 200
    assert counter.frame_count == 3  # training, validation, test: no batch compiled again
    state = torch.load(summary["best_checkpoint"], weights_only=True)["state_dict"]
    assert "net.layers.1.weight" in state  # compiled in place: the checkpoint keys are those of the plain network


@pytest.mark.parametrize(
    ("precision", "dtype", "loader"), [("64-true", torch.float64, "device"), ("bf16-true", torch.bfloat16, "dataloader")]
)
def test_true_precisions_train_with_the_model_summary_and_augmentation(
    compose_config, tiny_mnist, precision, dtype, loader
) -> None:
    """Lightning converts each batch to the precision's dtype, but not the model summary's example input; the augmentation
    (experiment=best: turns, resizes, shifts) works on batches after that: both must follow the network's dtype."""
    settings = (f"trainer.precision={precision}", f"data.loader={loader}", "model.hidden=[64,64]", "data.batch_size=32")
    cfg = compose_config(*NO_PICTURES, "experiment=best", *settings, "trainer.max_epochs=2", "trainer.log_every_n_steps=5")
    summary = train(tiny_mnist.use_in(cfg))
    assert summary["test_acc"] > 0.8 and summary["test_images"] == 200
    assert torch.load(summary["best_checkpoint"], weights_only=True)["state_dict"]["net.layers.1.weight"].dtype == dtype
    model = Classifier.load_from_checkpoint(summary["best_checkpoint"], weights_only=True)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # loads as a float32 network, as src.eval uses it


def test_each_validation_prints_a_line_saying_where_in_training_it_ran(compose_config, tiny_mnist, capsys) -> None:
    """Output not a terminal: plain lines. Four validations an epoch, each a line with its batch and optimizer step."""
    run = ("model.hidden=[64,64]", "data.batch_size=32", "trainer.max_epochs=2", "trainer.log_every_n_steps=2")
    four = ("trainer.limit_train_batches=8", "trainer.val_check_interval=0.25", "trainer.accumulate_grad_batches=2")
    cfg = compose_config(*NO_PICTURES, *run, *four)
    summary = train(tiny_mnist.use_in(cfg))
    lines = [line for line in capsys.readouterr().out.splitlines() if " validation: acc/val=" in line]
    where = [line.split(" validation:")[0] for line in lines]
    assert where == [f"epoch {e} batch {b}/8 step {4 * (e - 1) + b // 2}" for e in (1, 2) for b in (2, 4, 6, 8)]
    assert len(scalars(summary["run_dir"])["acc/val"]) == len(lines)  # as many as TensorBoard has


def test_device_and_dataloader_paths_train_to_the_same_weights(tiny_config) -> None:
    """Same seed-and-epoch order, same normalization arithmetic: the two loaders train identical networks."""
    device = fit_weights(tiny_config("data.loader=device", "trainer.max_epochs=2", "scheduler=none"))
    loader = fit_weights(tiny_config("data.loader=dataloader", "trainer.max_epochs=2", "scheduler=none"))
    for name in device:
        assert torch.equal(device[name], loader[name]), name


def test_a_resume_with_other_settings_than_the_run_started_with_is_refused(tiny_config) -> None:
    """ckpt_path=last after experiment=fast, typed without it, would go on with the default loss and lr."""
    first = train(tiny_config("experiment=fast", "trainer.max_epochs=1"))
    before = tree(Path(first["run_dir"]))
    with pytest.raises(ConfigError, match=r"^ckpt_path=last: the run was started with loss.label_smoothing=0.1 \(now 0.0\)"):
        train(tiny_config("trainer.max_epochs=2", "ckpt_path=last"))
    other_data = r"^ckpt_path=last: the run was started with data.dataset=mnist \(now fashion_mnist\); resume it"
    with pytest.raises(ConfigError, match=other_data):
        train(
            tiny_config("experiment=fast", "data.dataset=fashion_mnist", "name=mnist", "trainer.max_epochs=2", "ckpt_path=last")
        )
    assert tree(Path(first["run_dir"])) == before  # byte for byte
    resumed = train(tiny_config("experiment=fast", "trainer.max_epochs=2", "ckpt_path=last", "trainer.accelerator=cpu"))
    assert resumed["run_dir"] == first["run_dir"]  # the Trainer's settings may change
    for shorter in (["trainer.max_epochs=1"], ["trainer.max_epochs=-1", "trainer.max_steps=1"]):  # than it has trained
        done = "2 epochs" if len(shorter) == 1 else r"\d+ steps"
        with pytest.raises(ConfigError, match=rf"^{shorter[-1]}: the run has trained {done} already; resume it with"):
            train(tiny_config("experiment=fast", *shorter, "ckpt_path=last"))


def test_an_unfinished_schedule_keeps_its_length(tiny_config) -> None:
    """A resume of a run that has not finished its one-cycle may not change the run's length: refused, nothing written."""
    run = Path(train(tiny_config("scheduler=one_cycle", "trainer.max_epochs=2"))["run_dir"])
    (halfway,) = run.glob("checkpoints/epoch00-*.ckpt")  # 16 of the schedule's 32 steps: the run had not finished there
    before = tree(run)
    with pytest.raises(ConfigError, match=r"^trainer.max_epochs=3: the run's learning-rate schedule spans 32 steps and has not"):
        train(tiny_config("scheduler=one_cycle", "trainer.max_epochs=3", f"ckpt_path={halfway}"))
    assert tree(run) == before  # no config.resumed.yaml, no event file, no hparams.yaml rewritten


def test_what_lightning_refuses_only_as_it_sets_a_run_up_is_refused_before(tiny_config, tiny_run) -> None:
    """Lightning checks val_check_interval and a limit's share after it has written its event file: decided before, from
    the data's size, a new run leaves no folder and a resume leaves its run as it was."""
    cfg = tiny_config("trainer.max_epochs=1", "trainer.val_check_interval=1000")
    with pytest.raises(ConfigError, match=r"^trainer.val_check_interval=1000: longer than an epoch of 16 training batches"):
        train(cfg)
    with pytest.raises(ConfigError, match=r"^trainer.limit_val_batches=0.1: 0.1 of 2 val batches is none; use at least 0.5"):
        train(tiny_config("trainer.limit_val_batches=0.1"))
    assert not Path(cfg.log_dir).exists()
    run = Path(tiny_run["run_dir"])
    before = tree(run)
    with pytest.raises(ConfigError, match=r"^trainer.val_check_interval=1000: longer than an epoch"):
        train(tiny_config("trainer.max_epochs=4", "trainer.val_check_interval=1000", f"ckpt_path={run}/checkpoints/last.ckpt"))
    assert tree(run) == before


def test_what_fails_after_the_first_step_is_no_refusal_and_keeps_the_run(tiny_config, monkeypatch) -> None:
    training_step = Classifier.training_step

    def fails_at_step_5(self, batch, batch_idx):
        if self.global_step == 5:
            raise ValueError("a bug in the middle of training")
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(Classifier, "training_step", fails_at_step_5)
    cfg = tiny_config("trainer.max_epochs=1", "callbacks.step_checkpoint.every_n_train_steps=2")
    with pytest.raises(ValueError, match="^a bug in the middle of training$"):  # raised as it is: its traceback shows
        train(cfg)
    assert (Path(cfg.log_dir) / "mnist" / "version_0" / "checkpoints" / "last.ckpt").is_file()  # the run is kept


def test_two_runs_started_at_once_never_share_a_folder(tiny_config, monkeypatch) -> None:
    """Another run claims version_0 between this run's choice of it and its claim: this run takes version_1."""
    from src import runs

    next_version = runs.next_version

    def chosen_then_taken(runs: Path) -> Path:
        chosen = next_version(runs)
        if chosen.name == "version_0":
            chosen.mkdir(parents=True)  # the other run's claim, a moment before this one's
        return chosen

    monkeypatch.setattr(runs, "next_version", chosen_then_taken)
    cfg = tiny_config("trainer.max_epochs=1", "logger=none")
    assert Path(train(cfg)["run_dir"]).name == "version_1"
    assert not any((Path(cfg.log_dir) / "mnist" / "version_0").iterdir())  # the other run's folder, untouched


def test_a_cpu_run_does_not_look_for_nvml_at_every_optimizer_step(tiny_config, monkeypatch) -> None:
    """Lightning's PYTORCH_NVML_BASED_CUDA_CHECK=1 makes torch's optimizers probe NVML each step; a CPU run drops it."""
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as importing Lightning sets it
    probes = []
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: probes.append(1) or -1)
    summary = train(tiny_config("trainer.accelerator=cpu", "trainer.max_epochs=1"))
    assert len(probes) < summary["global_step"]  # (the Trainer asks once or twice as it is built)


def test_the_summary_names_the_metric_the_best_checkpoint_was_chosen_by_and_why_there_is_none(tiny_config, capsys) -> None:
    """A checkpoint chosen by the lowest val loss is not reported as a val accuracy (nor ranked as one by sweeps); a
    run whose checkpoint callback had not saved yet was said to have ended before its first validation."""
    by_loss = train(tiny_config("callbacks.checkpoint.monitor=loss/val", "callbacks.checkpoint.mode=min", "trainer.max_epochs=1"))
    print_summary(by_loss)
    assert by_loss["best"][0] == "loss/val" and math.isnan(by_loss["best_val_acc"])
    assert f"best loss/val {by_loss['best'][1]:.4f} in 1 epoch" in capsys.readouterr().out
    later = train(tiny_config("callbacks.checkpoint.every_n_epochs=2", "trainer.max_epochs=1"))
    assert later["notes"] == [
        "tested the final weights: no best checkpoint (its checkpoint callback saved none at the validations that ran (its "
        "every_n_epochs, every_n_train_steps))"
    ]
