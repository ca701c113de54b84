"""The network, the losses and the classifier's building blocks."""

import random

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from src.build import build_classifier
from src.config import resolved
from src.models import losses
from src.models.classifier import accumulation_scales
from src.models.mlp import MLP


def test_default_network_is_the_tutorials_and_its_widths_and_dropouts_are_configurable() -> None:
    layers = list(MLP().layers)
    kinds = [type(layer) for layer in layers]
    assert kinds == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    linear = [(layer.in_features, layer.out_features) for layer in layers if isinstance(layer, nn.Linear)]
    assert linear == [(784, 512), (512, 512), (512, 512), (512, 10)]
    assert MLP()(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    small = MLP(hidden=(32, 16), dropout=0.1)
    assert small(torch.zeros(3, 784)).shape == (3, 10)
    assert [m.out_features for m in small.layers if isinstance(m, nn.Linear)] == [32, 16, 10]
    assert any(isinstance(m, nn.Dropout) for m in small.layers)
    # Input dropout comes first, on the flat pixels: in training it zeroes about that share of them.
    torch.manual_seed(0)
    pixels = MLP(input_dropout=0.25).layers[:2](torch.ones(100, 784))
    assert (pixels == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)


def test_tutorial_loss_matches_a_hand_computation_and_every_loss_gives_one_value_per_sample() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    targets = torch.tensor([0, 1])
    # The tutorial: softmax, then -onehot * log(p), then the mean over batch AND classes (6 numbers here).
    p = torch.exp(logits) / torch.exp(logits).sum(dim=1, keepdim=True)
    onehot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    by_hand = (-onehot * torch.log(p)).sum() / 6
    assert losses.tutorial(logits, targets).mean().item() == pytest.approx(by_hand.item(), rel=1e-6)
    cross_entropy = nn.functional.cross_entropy(logits, targets).item()
    assert losses.tutorial(logits, targets).mean().item() == pytest.approx(cross_entropy / 3, rel=1e-6)  # of 3 classes
    logits, targets = torch.randn(7, 10), torch.randint(0, 10, (7,))
    for loss in (losses.cross_entropy, losses.nll_log_softmax, losses.softmax_mse, losses.tutorial):
        assert loss(logits, targets).shape == (7,)
    assert torch.allclose(losses.nll_log_softmax(logits, targets), losses.cross_entropy(logits, targets))
    expected_mse = nn.functional.mse_loss(logits.softmax(1), nn.functional.one_hot(targets, 10).float())
    assert losses.softmax_mse(logits, targets).mean().item() == pytest.approx(expected_mse.item(), rel=1e-6)
    smoothed = losses.cross_entropy(logits, targets, label_smoothing=0.1)
    assert not torch.allclose(smoothed, losses.cross_entropy(logits, targets))


@pytest.mark.parametrize("loss", ["cross_entropy", "label_smoothing", "nll", "mse", "tutorial"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_loss_and_optimizer_config_trains_a_step(compose_config, loss: str, optimizer: str) -> None:
    cfg = compose_config(f"loss={loss}", f"optimizer={optimizer}", "scheduler=none", "model.hidden=[32]")
    model = build_classifier(resolved(cfg))
    opt = instantiate(cfg.optimizer, params=model.parameters())
    images, targets = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    before = [p.detach().clone() for p in model.parameters()]
    model.loss_fn(model(images), targets).mean().backward()
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("scheduler", ["cosine", "one_cycle", "step"])
def test_every_scheduler_config_builds(compose_config, scheduler: str) -> None:
    assert not compose_config("scheduler=none").scheduler
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    sched = instantiate(compose_config(f"scheduler={scheduler}").scheduler, optimizer=opt, total_steps=100)
    lrs = []
    for _ in range(100):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[-1] < 0.1  # every schedule ends below where it started


def test_accumulation_scales_divide_by_the_samples_of_each_window() -> None:
    # 5 batches (last one short) accumulated by 2: windows [8, 8], [8, 8], [3].
    scales = accumulation_scales([8, 8, 8, 8, 3], accumulate=2)
    # Lightning divides each loss by accumulate=2 again, so each window's divisor is its sample count: 16, 16, 3.
    assert scales == pytest.approx([2 / 16, 2 / 16, 2 / 16, 2 / 16, 2 / 3])
    assert accumulation_scales([4, 4, 2], accumulate=1) == pytest.approx([1 / 4, 1 / 4, 1 / 2])


def test_mixup_loss_is_cross_entropy_against_the_blended_labels(compose_config) -> None:
    model = build_classifier(resolved(compose_config("mixup=0.4", "model.hidden=[32]")))
    images, targets = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    random.seed(3)
    torch.manual_seed(3)
    logits, losses, counted = model.mixup_step(images, targets)
    random.seed(3)
    torch.manual_seed(3)
    share, order = random.betavariate(0.4, 0.4), torch.randperm(16)
    assert 0 < share < 1 and not torch.equal(order, torch.arange(16))
    assert torch.allclose(logits, model(share * images + (1 - share) * images[order]))
    one_hot = nn.functional.one_hot(targets, 10).float()
    blended = share * one_hot + (1 - share) * one_hot[order]
    assert torch.allclose(losses, nn.functional.cross_entropy(logits, blended, reduction="none"), atol=1e-6)
    assert torch.equal(counted, targets if share >= 0.5 else targets[order])
