"""The losses of ``conf/loss/``: one value per sample, never a batch mean, so that the classifier can divide the sum by
the samples of a whole accumulation window (k accumulated batches of b: the gradient of one batch of k*b)."""

import torch.nn.functional as F
from torch import Tensor


def cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy; ``label_smoothing`` > 0 mixes the one-hot target with a uniform one."""
    return F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)


def nll_log_softmax(logits: Tensor, targets: Tensor) -> Tensor:
    """Negative log-likelihood on an explicit log-softmax (equal to cross-entropy, spelled the classic way)."""
    return F.nll_loss(F.log_softmax(logits, dim=1), targets, reduction="none")


def softmax_mse(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error between the softmax probabilities and the one-hot target, averaged over classes."""
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return (F.softmax(logits, dim=1) - one_hot).pow(2).mean(dim=1)


def tutorial(logits: Tensor, targets: Tensor) -> Tensor:
    """The tutorial's loss: ``-onehot * log(softmax)`` averaged over classes too, cross-entropy / 10 (it learns 10x
    slower at the same learning rate); ``log_softmax`` avoids the ``log(0)`` of the tutorial's two steps."""
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return (-one_hot * F.log_softmax(logits, dim=1)).mean(dim=1)
