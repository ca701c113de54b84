"""Training through Lightning on the tiny data set: gradient accumulation, resume, checkpoints."""

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.checks import ConfigError
from src.models import classifier
from src.models.classifier import Classifier
from src.train import build_classifier, train

QUIET = ["~callbacks.progress_bar", "trainer.enable_progress_bar=false", "~callbacks.model_summary", "trainer.enable_model_summary=false"]


def tiny_config(compose_config, tiny, *overrides: str, val_size: int = 100):
    cfg = compose_config(
        *QUIET, "trainer.deterministic=true", "model.hidden=[64,64]", "data.batch_size=32", "data.eval_batch_size=64",
        "trainer.log_every_n_steps=5", *overrides,
    )
    return tiny.use_in(cfg, val_size=val_size)


def fit_weights(cfg) -> dict[str, torch.Tensor]:
    """Fit with the config's model, data and Trainer settings (no logger, no checkpoints); return the weights."""
    L.seed_everything(cfg.seed, verbose=False)
    model = build_classifier(cfg)
    trainer = L.Trainer(
        max_epochs=cfg.trainer.max_epochs, accumulate_grad_batches=cfg.trainer.accumulate_grad_batches,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        deterministic=True, use_distributed_sampler=False, num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=instantiate(cfg.data, _convert_="all"))
    return {k: v.clone() for k, v in model.state_dict().items()}


def accumulation_case(compose_config, tiny, batch_size: int, accumulate: int):
    # 110 training samples: batches of 8 are 13 full + 1 of 6, so with accumulate=3 the last window holds
    # 2 batches and 14 samples, just like the last batch of 24 does.
    return tiny_config(
        compose_config, tiny, "optimizer=sgd", "optimizer.lr=0.1", "optimizer.momentum=0", "optimizer.nesterov=false",
        "scheduler=none", f"data.batch_size={batch_size}", f"trainer.accumulate_grad_batches={accumulate}",
        "trainer.max_epochs=2", val_size=490,
    )


def test_accumulated_small_batches_equal_one_big_batch(compose_config, tiny_mnist) -> None:
    accumulated = fit_weights(accumulation_case(compose_config, tiny_mnist, batch_size=8, accumulate=3))
    big = fit_weights(accumulation_case(compose_config, tiny_mnist, batch_size=24, accumulate=1))
    for name in big:
        torch.testing.assert_close(accumulated[name], big[name], rtol=1e-5, atol=1e-6)


def test_plain_batch_means_would_break_that_equality(compose_config, tiny_mnist, monkeypatch) -> None:
    """The check above can fail: with each batch's plain mean (Lightning's default) the weights differ."""
    monkeypatch.setattr(classifier, "accumulation_scales", lambda sizes, k: [1 / size for size in sizes])
    accumulated = fit_weights(accumulation_case(compose_config, tiny_mnist, batch_size=8, accumulate=3))
    big = fit_weights(accumulation_case(compose_config, tiny_mnist, batch_size=24, accumulate=1))
    assert any(not torch.allclose(accumulated[n], big[n], rtol=1e-4, atol=1e-5) for n in big)


def scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def last_weights(run_dir: str) -> dict[str, torch.Tensor]:
    return torch.load(Path(run_dir) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def resume_case(compose_config, tiny, *overrides: str):
    """Dropout and random shifts both draw random numbers: a resume must draw the same ones."""
    return tiny_config(compose_config, tiny, "model.dropout=0.3", "data.shift=2", "optimizer=adam", "scheduler=none", *overrides)


def test_resume_reproduces_the_uninterrupted_run(compose_config, tiny_mnist) -> None:
    straight = train(resume_case(compose_config, tiny_mnist, "name=straight", "trainer.max_epochs=4"))
    first = train(resume_case(compose_config, tiny_mnist, "name=resumed", "trainer.max_epochs=2"))
    second = train(resume_case(compose_config, tiny_mnist, "name=resumed", "trainer.max_epochs=4", "ckpt_path=last"))
    assert second["run_dir"] == first["run_dir"]  # the curves continue in the same run folder
    assert second["global_step"] == straight["global_step"] and second["epochs"] == 4
    expected, resumed = last_weights(straight["run_dir"]), last_weights(second["run_dir"])
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    assert second["test_acc"] == straight["test_acc"]
    # TensorBoard: the same tags at the same steps with the same values: no gap, no step twice.
    assert scalars(second["run_dir"]) == scalars(straight["run_dir"])


def test_resume_needs_the_saved_rng_state(compose_config, tiny_mnist) -> None:
    """Without the RNGState callback, dropout draws other masks after a resume: the check above would fail."""
    straight = train(resume_case(compose_config, tiny_mnist, "name=straight", "trainer.max_epochs=2", "~callbacks.rng_state"))
    train(resume_case(compose_config, tiny_mnist, "name=resumed", "trainer.max_epochs=1", "~callbacks.rng_state"))
    second = train(resume_case(compose_config, tiny_mnist, "name=resumed", "trainer.max_epochs=2", "ckpt_path=last", "~callbacks.rng_state"))
    expected, resumed = last_weights(straight["run_dir"]), last_weights(second["run_dir"])
    assert any(not torch.equal(expected[name], resumed[name]) for name in expected)


def test_resume_from_a_checkpoint_file(compose_config, tiny_mnist) -> None:
    first = train(tiny_config(compose_config, tiny_mnist, "scheduler=none", "trainer.max_epochs=1"))
    ckpt = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    second = train(tiny_config(compose_config, tiny_mnist, "scheduler=none", "trainer.max_epochs=2", f"ckpt_path={ckpt}"))
    assert second["run_dir"] == first["run_dir"] and second["epochs"] == 2
    assert (Path(first["run_dir"]) / "config.yaml").is_file() and (Path(first["run_dir"]) / "config.resumed.yaml").is_file()


def test_resuming_a_schedule_with_other_length_is_refused(compose_config, tiny_mnist) -> None:
    train(tiny_config(compose_config, tiny_mnist, "scheduler=one_cycle", "trainer.max_epochs=1"))
    with pytest.raises(ConfigError, match="trainer.max_epochs=2: the checkpoint's learning-rate schedule spans 16 steps"):
        train(tiny_config(compose_config, tiny_mnist, "scheduler=one_cycle", "trainer.max_epochs=2", "ckpt_path=last"))


@pytest.mark.parametrize("scheduler", ["none", "cosine", "one_cycle", "step"])
def test_checkpoints_load_with_weights_only(compose_config, tiny_mnist, scheduler: str) -> None:
    summary = train(tiny_config(compose_config, tiny_mnist, f"scheduler={scheduler}", "trainer.max_epochs=1"))
    for path in (summary["best_checkpoint"], Path(summary["run_dir"]) / "checkpoints" / "last.ckpt"):
        state = torch.load(path, weights_only=True)
        assert state["hyper_parameters"]["model"]["hidden"] == [64, 64]
        model = Classifier.load_from_checkpoint(path)
        assert torch.equal(model.state_dict()["net.layers.1.weight"], state["state_dict"]["net.layers.1.weight"])
    assert 0.0 <= summary["test_acc"] <= 1.0


def test_ckpt_path_errors_are_clear(compose_config, tiny_mnist, tmp_path) -> None:
    with pytest.raises(ConfigError, match="ckpt_path=last: no run under"):
        train(tiny_config(compose_config, tiny_mnist, "ckpt_path=last"))
    with pytest.raises(ConfigError, match="no such file"):
        train(tiny_config(compose_config, tiny_mnist, f"ckpt_path={tmp_path / 'missing.ckpt'}"))


def test_tiny_data_is_learned(compose_config, tiny_mnist) -> None:
    summary = train(tiny_config(compose_config, tiny_mnist, "trainer.max_epochs=3"))
    assert summary["test_acc"] > 0.9 and summary["best_val_acc"] > 0.9
    assert summary["test_images"] == 200


@pytest.mark.slow
def test_bf16_mixed_precision_and_compile_train(compose_config, tiny_mnist) -> None:
    summary = train(tiny_config(compose_config, tiny_mnist, "trainer.precision=bf16-mixed", "model.compile=true", "trainer.max_epochs=3"))
    assert summary["test_acc"] > 0.8 and summary["test_images"] == 200
    state = torch.load(summary["best_checkpoint"], weights_only=True)["state_dict"]
    assert "net.layers.1.weight" in state  # compiled in place: the checkpoint keys are those of the plain network


def test_device_and_dataloader_paths_train_to_the_same_weights(compose_config, tiny_mnist) -> None:
    """Same seed-and-epoch order, same normalization arithmetic: the two loaders train identical networks."""
    device = fit_weights(tiny_config(compose_config, tiny_mnist, "data.loader=device", "trainer.max_epochs=2", "scheduler=none"))
    loader = fit_weights(tiny_config(compose_config, tiny_mnist, "data.loader=dataloader", "trainer.max_epochs=2", "scheduler=none"))
    for name in device:
        assert torch.equal(device[name], loader[name]), name
