"""Experiment configs: what they set, and that they run."""

from src.train import train
from tests.conftest import scalars


def test_tutorial_experiment_is_the_tutorials_setup(compose_config) -> None:
    cfg = compose_config("experiment=tutorial")
    assert cfg.loss._target_ == "src.models.losses.tutorial"
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.01, 0.0, 0.0)
    assert not cfg.scheduler and cfg.data.normalization == "symmetric" and cfg.data.batch_size == 4096
    assert cfg.callbacks.test_batch_accuracy.every_n_steps == 50


def test_tutorial_experiment_records_test_batch_accuracy_as_a_curve(tiny_config) -> None:
    cfg = tiny_config(
        "experiment=tutorial",
        "data.batch_size=50",
        "trainer.max_epochs=4",
        "callbacks.test_batch_accuracy.every_n_steps=5",
        "trainer.log_every_n_steps=5",
    )
    summary = train(cfg)
    curve = scalars(summary["run_dir"])["acc/test_batch_tutorial"]
    assert [step for step, _ in curve] == list(range(4, 40, 5))  # every 5 optimizer steps (logged at step k-1)
    assert all(0.0 <= value <= 1.0 for _, value in curve)


def test_fast_experiment_settings(compose_config) -> None:
    cfg = compose_config("experiment=fast")
    assert cfg.trainer.max_epochs == 2 and cfg.loss.label_smoothing == 0.1
    assert cfg.scheduler._target_ == "src.models.schedules.one_cycle" and cfg.optimizer.lr == 0.002


def test_best_experiment_is_the_tutorials_network_with_regularization(compose_config, tiny_config) -> None:
    cfg = compose_config("experiment=best")
    assert cfg.model.hidden == [512, 512, 512] and cfg.model._target_ == "src.models.mlp.MLP"  # the same MLP, no convolutions
    assert cfg.model.dropout > 0 and cfg.loss.label_smoothing == 0.1
    assert (cfg.data.rotate, cfg.data.scale, cfg.data.shift) == (10.0, 0.1, 2)  # augmentation on the device
    assert cfg.optimizer._target_ == "torch.optim.AdamW" and cfg.scheduler._target_ == "src.models.schedules.one_cycle"
    assert cfg.name == "best"
    summary = train(tiny_config("experiment=best", "trainer.max_epochs=3"))
    assert summary["test_acc"] > 0.8 and summary["epochs"] == 3
