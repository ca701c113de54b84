"""Augmentation applied to whole batches on the training device (no per-sample transforms, no worker processes)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(images: Tensor, max_shift: int, background: float) -> Tensor:
    """Each image moved by its own random whole-pixel offset, from ``-max_shift`` to ``max_shift`` on each axis.

    ``images`` is a normalized batch ``(B, C, H, W)``; the pixels moved in from outside get ``background``, the
    normalized value of a black pixel (not 0, which after normalization is grey). One gather for the whole batch,
    drawn from torch's global generator on the batch's device, so a seeded run (and a resumed one, whose generator
    state is in the checkpoint) draws the same offsets.
    """
    if max_shift <= 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=background)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch, 1), device=images.device)
    rows = (offsets[0] + torch.arange(height, device=images.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (offsets[1] + torch.arange(width, device=images.device))[:, None, None, :]  # (B, 1, 1, W)
    samples = torch.arange(batch, device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[samples, channels, rows, cols]
