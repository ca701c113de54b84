"""Augmentation applied to whole batches on the training device (no per-sample transforms, no worker processes)."""

import torch
import torch.nn.functional as F
from torch import Tensor

from src.validate import number, whole_number


class Augmentation:
    """Each training image turned by up to ``rotate`` degrees, resized by up to a factor ``1 +- scale``, then moved by
    up to ``shift`` whole pixels, each drawn per image (0: off). Out-of-range settings raise ``ValueError``."""

    def __init__(self, rotate: float = 0.0, scale: float = 0.0, shift: int = 0) -> None:
        self.rotate = number("rotate", rotate, 0, 180)
        self.scale = number("scale", scale, 0, 1, below_high=True)
        self.shift = whole_number("shift", shift, 0, 13)  # more than half of 28 pixels moves the digit out of view

    def __call__(self, images: Tensor, background: float) -> Tensor:
        images = random_rotate_scale(images, self.rotate, self.scale, background)
        return random_shift(images, self.shift, background)


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


def random_rotate_scale(images: Tensor, max_degrees: float, max_scale: float, background: float) -> Tensor:
    """Each image turned by its own random angle in ``[-max_degrees, max_degrees]`` about its centre and resized by
    its own factor in ``[1 - max_scale, 1 + max_scale]``, by bilinear resampling (``affine_grid`` + ``grid_sample``).

    As in :func:`random_shift`, what comes in from outside the frame is ``background``, and the draws come from
    torch's global generator on the batch's device.
    """
    if max_degrees <= 0 and max_scale <= 0:
        return images
    batch, device = images.shape[0], images.device
    angles = (torch.rand(batch, device=device) * 2 - 1) * torch.pi * max_degrees / 180
    factors = 1 + (torch.rand(batch, device=device) * 2 - 1) * max_scale
    cos, sin = torch.cos(angles) / factors, torch.sin(angles) / factors  # the grid maps output to input points
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved + background
