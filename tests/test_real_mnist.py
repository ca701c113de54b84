"""Training on the real MNIST: the number that matters, on the official 10k test images."""

import pytest

from src.train import train


@pytest.mark.slow
def test_two_epochs_reach_real_accuracy(real_mnist, compose_config) -> None:
    cfg = compose_config(
        f"data.data_dir={real_mnist}", "trainer.max_epochs=2", "~callbacks.progress_bar", "trainer.enable_progress_bar=false"
    )
    summary = train(cfg)
    assert summary["test_acc"] > 0.975, summary
    assert summary["best_val_acc"] > 0.97, summary
