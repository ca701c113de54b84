"""A picture as the network's input, prepared as the data set prepared its own images, for ``src.predict`` and
``src.serve``. PIL and NumPy only: the server's request processes run it."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from src.data.datasets import DataSet

SIDE = 28  # MNIST's and Fashion-MNIST's images are 28x28
Image.MAX_IMAGE_PIXELS = None  # no bomb check of Pillow's: src.predict reads any size, src.serve sets its max_pixels


class ImageError(ValueError):
    """A picture that cannot be used: the message says what is wrong and what to give instead."""


class ImageTooLarge(ImageError):
    """More pixels than allowed."""


def open_image(source: bytes | Path, max_pixels: int | None = None) -> Image.Image:
    """The decoded picture; an :class:`ImageError` for what PIL cannot read or more than ``max_pixels`` pixels (read
    from the header, before decoding)."""
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if max_pixels is None or image.width * image.height <= max_pixels:
            image.load()
            return image
    except (OSError, ValueError) as error:  # UnidentifiedImageError is an OSError
        name = type(error).__name__
        raise ImageError(f"not an image PIL can read ({name}); give a PNG, JPEG, BMP, GIF, TIFF or WebP image") from error
    raise ImageTooLarge(f"{image.width}x{image.height} pixels is more than the {max_pixels:,} allowed; give a smaller image")


def grey(image: Image.Image) -> np.ndarray:
    """Grey levels on a 0..255 scale, as floats, in any mode: ``ImageOps.grayscale`` would clip 16-bit, 32-bit and float
    pixels at 255. ``I`` and ``F`` state no range: the smallest of 1, 255 and 65535 that holds the brightest pixel."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        pixels = np.asarray(image, dtype=np.float32).clip(0)
        brightest = float(pixels.max())
        top = 65535 if image.mode.startswith("I;16") else next((top for top in (1, 255, 65535) if brightest <= top), brightest)
        return pixels * 255 / top
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return np.asarray(ImageOps.grayscale(image), dtype=np.float32)


def to_mnist(image: Image.Image, data_set: DataSet) -> np.ndarray:
    """uint8 ``(28, 28)``, light ink on dark as the data set stores it, from any size, colour or polarity: the ink's
    bounding box scaled into ``data_set.box`` pixels and placed as the data set placed its own (``by_mass``), so that a
    digit drawn small in a corner reads as MNIST's do and an image of the data set comes back nearly unchanged."""
    pixels = grey(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 127:  # dark ink on paper
        pixels, border = 255 - pixels, 255 - border
    ground, brightest = float(np.median(border)), float(pixels.max())
    frame = np.zeros((SIDE, SIDE), dtype=np.float32)
    if brightest - ground < 1:  # a blank picture: nothing to frame
        return frame.astype(np.uint8)
    pixels = np.clip((pixels - ground) / (brightest - ground), 0, 1)
    rows, columns = np.nonzero(pixels)
    ink = pixels[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    scale = data_set.box / max(ink.shape)
    height, width = (max(1, round(side * scale)) for side in ink.shape)
    if (height, width) != ink.shape:  # PIL's bilinear resize is antialiased when it shrinks
        ink = np.asarray(Image.fromarray(np.ascontiguousarray(ink)).resize((width, height), Image.Resampling.BILINEAR)).clip(0, 1)
    if data_set.by_mass:
        mass = ink.sum()
        centre = [(ink.sum(axis=axis) * np.arange(ink.shape[1 - axis])).sum() / mass for axis in (1, 0)]
        top, left = (round(SIDE / 2 - c) for c in centre)  # MNIST's centres of mass sit at (14, 14)
    else:
        top, left = (SIDE - height) // 2, (SIDE - width) // 2
    top, left = min(max(top, 0), SIDE - height), min(max(left, 0), SIDE - width)
    frame[top : top + height, left : left + width] = ink
    return np.round(frame * 255).astype(np.uint8)
