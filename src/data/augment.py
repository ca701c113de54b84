"""Augmentation applied to whole batches on the training device (no per-sample transforms, no worker processes). Every
draw comes from torch's seeded generator, whose state the checkpoints keep: a resumed run draws what a straight one
draws. The ranges of the settings are declared where the DataModule takes them (src/data/mnist.py)."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Augmentation:
    """Each training image turned by up to ``rotate`` degrees, resized by ``1 +- scale``, distorted elastically
    (``elastic_alpha`` pixels, smoothed over ``elastic_sigma``) in one resampling, mirrored left-right with probability
    ``flip``, moved by up to ``shift`` pixels, then, with probability ``erase``, blacked out in one random rectangle."""

    rotate: float = 0.0
    scale: float = 0.0
    shift: int = 0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0
    flip: float = 0.0
    erase: float = 0.0

    def __call__(self, images: Tensor, background: float) -> Tensor:
        images = random_resample(images, self.rotate, self.scale, self.elastic_alpha, self.elastic_sigma, background)
        images = random_flip(images, self.flip)
        images = random_shift(images, self.shift, background)
        return random_erase(images, self.erase, background)


def random_flip(images: Tensor, probability: float) -> Tensor:
    """Each image of a batch ``(B, C, H, W)`` mirrored left-right with ``probability``, drawn per image."""
    if probability <= 0:
        return images
    mirrored = torch.rand(images.shape[0], 1, 1, 1, device=images.device) < probability
    return torch.where(mirrored, images.flip(-1), images)


def random_erase(images: Tensor, probability: float, background: float) -> Tensor:
    """Zhong et al. (2017)'s random erasing for a whole batch ``(B, C, H, W)``, with their values: with ``probability``,
    each image gets one rectangle set to ``background``, its area uniform in 2% to 40% of the image and its height/width
    ratio log-uniform in [0.3, 1 / 0.3], placed uniformly where it fits (a side longer than the image is cut to it)."""
    if probability <= 0:
        return images
    batch, _, height, width = images.shape
    device = images.device
    smallest, largest = 0.02, 0.4
    area = (smallest + torch.rand(batch, device=device) * (largest - smallest)) * height * width
    low, high = math.log(0.3), math.log(1 / 0.3)
    ratio = torch.exp(low + torch.rand(batch, device=device) * (high - low))
    tall = (area * ratio).sqrt().round().clamp(1, height)
    wide = (area / ratio).sqrt().round().clamp(1, width)
    top = (torch.rand(batch, device=device) * (height - tall + 1)).floor()
    left = (torch.rand(batch, device=device) * (width - wide + 1)).floor()
    chosen = torch.rand(batch, device=device) < probability
    rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
    in_rows = (rows >= top[:, None]) & (rows < (top + tall)[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + wide)[:, None])  # (B, W)
    inside = in_rows[:, None, :, None] & in_cols[:, None, None, :] & chosen[:, None, None, None]
    return images.masked_fill(inside, background)


def random_shift(images: Tensor, max_shift: int, background: float) -> Tensor:
    """Each image of a normalized batch ``(B, C, H, W)`` moved by its own whole-pixel offset in ``[-max_shift,
    max_shift]`` per axis, in one gather; what comes in is ``background`` (black, normalized)."""
    if max_shift <= 0:
        return images
    batch, channels, height, width = images.shape
    device = images.device
    padded = F.pad(images, (max_shift,) * 4, value=background)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch, 1), device=device)
    rows = (offsets[0] + torch.arange(height, device=device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (offsets[1] + torch.arange(width, device=device))[:, None, None, :]  # (B, 1, 1, W)
    samples = torch.arange(batch, device=device)[:, None, None, None]
    return padded[samples, torch.arange(channels, device=device)[None, :, None, None], rows, cols]


def random_resample(
    images: Tensor, max_degrees: float, max_scale: float, alpha: float, sigma: float, background: float
) -> Tensor:
    """One bilinear resampling (``grid_sample``) of each image through its own random turn (up to ``max_degrees``),
    resize (by ``1 +- max_scale``) and Simard et al. (2003)'s elastic field: a displacement uniform in [-1, 1] per pixel
    and axis, smoothed by a Gaussian of ``sigma`` pixels, times ``alpha`` pixels. What comes in is ``background``."""
    turn = max_degrees > 0 or max_scale > 0
    if not turn and alpha <= 0:
        return images
    batch, _, height, width = images.shape
    device, dtype = images.device, images.dtype  # the precision plugin's (float64 under trainer.precision=64-true)
    images = images.to(torch.promote_types(dtype, torch.float32))  # bfloat16 would misplace pixels by up to 1/20 pixel
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device).expand(batch, 2, 3)
    if turn:
        angles = (torch.rand(batch, device=device) * 2 - 1) * torch.pi * max_degrees / 180
        factors = 1 + (torch.rand(batch, device=device) * 2 - 1) * max_scale
        cos, sin = torch.cos(angles) / factors, torch.sin(angles) / factors  # the grid maps output to input points
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)  # (B, H, W, 2): x, y in [-1, 1]
    if alpha > 0:
        field = gaussian_smooth(torch.rand(batch, 2, height, width, device=device) * 2 - 1, sigma) * alpha  # pixels
        grid = grid + field.permute(0, 2, 3, 1) * torch.tensor([2 / width, 2 / height], device=device)
    moved = F.grid_sample(images - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (moved + background).to(dtype)


def gaussian_smooth(fields: Tensor, sigma: float) -> Tensor:
    """Each channel of ``fields`` ``(B, C, H, W)`` convolved with a normalized Gaussian of width ``sigma`` pixels,
    truncated at 3 sigma, zeros beyond the border. Separable, and written as two small matrix products (rows, then
    columns): on a CPU, grouped ``conv2d`` with a 25-tap kernel took two thirds of the network's training step."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=fields.dtype, device=fields.device)
    total = torch.exp(-0.5 * (taps / sigma) ** 2).sum()

    def blur(size: int) -> Tensor:  # a zero-padded 1-D blur as a matrix: entry (i, j) weighs pixel j in output i
        positions = torch.arange(size, dtype=fields.dtype, device=fields.device)
        distances = positions[:, None] - positions[None, :]
        return (torch.exp(-0.5 * (distances / sigma) ** 2) / total).masked_fill(distances.abs() > radius, 0)

    return blur(fields.shape[-2]) @ fields @ blur(fields.shape[-1])
