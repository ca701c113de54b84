"""The loss choices, each selected by a file in ``conf/loss/``.

Every loss maps ``(logits, targets)`` to one value per sample, never a batch mean: the classifier divides the
sum by the number of samples in the whole gradient-accumulation window, so that k accumulated batches of size b
give exactly the gradient of one batch of size k*b.
"""

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
    """The tutorial's loss: ``-onehot * log(softmax)``, averaged over classes (and, by the classifier, over samples).

    It is cross-entropy divided by the number of classes, so it learns 10x slower at the same learning rate.
    ``log_softmax`` computes ``log(softmax)`` without the ``log(0)`` the tutorial's two-step version can hit.
    """
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return (-one_hot * F.log_softmax(logits, dim=1)).mean(dim=1)
