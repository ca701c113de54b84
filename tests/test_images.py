"""src/data/images.py: a picture prepared as MNIST and Fashion-MNIST prepared their own images."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from src.data.datasets import FASHION_MNIST, MNIST
from src.data.images import ImageError, ImageTooLarge, open_image, to_mnist


def save_in_every_mode(pixels: np.ndarray, stem: Path) -> None:
    """A light-on-dark 8-bit digit as ``<stem>-<mode>.<suffix>`` in each mode Pillow opens, each in a format that keeps it
    exactly but one (F01: floats in 0..1); thresholded at 128, also as 8-bit (``L1``) beside 1-bit (``1``)."""
    grey = Image.fromarray(pixels)
    see_through = Image.frombytes("P", grey.size, (255 - pixels).tobytes())  # dark ink on paper; no digit pixel is 255
    see_through.putpalette([level for index in range(255) for level in (index,) * 3] + [0, 0, 0])
    see_through.info["transparency"] = 255  # the paper: black, but transparent
    modes = {
        "L.png": grey,
        "I16.png": Image.fromarray(pixels.astype(np.uint16) * 257),
        "I.tif": grey.convert("I"),
        "F.tif": grey.convert("F"),
        "F01.tif": Image.fromarray(pixels.astype(np.float32) / 255),
        "P.png": grey.convert("P"),
        "PT.png": see_through,
        "LA.png": Image.merge("LA", (Image.new("L", grey.size), grey)),  # black ink, as opaque as the digit is light
        "CMYK.tif": grey.convert("CMYK"),
        "L1.png": Image.fromarray(np.where(pixels >= 128, 255, 0).astype(np.uint8)),
        "1.png": Image.fromarray(pixels >= 128),
    }
    for name, image in modes.items():
        image.save(f"{stem}-{name}")


def reference(path: Path) -> Path:
    """The 8-bit file that ``path``, saved by :func:`save_in_every_mode`, must read as."""
    stem, _, mode = path.name.rpartition("-")
    return path.with_name(f"{stem}-{'L1' if mode in ('1.png', 'L1.png') else 'L'}.png")


def ink_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    rows, columns = np.nonzero(pixels)
    return rows.min(), rows.max(), columns.min(), columns.max()


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    weights = pixels.astype(float)
    rows, columns = np.indices(pixels.shape)
    return (rows * weights).sum() / weights.sum(), (columns * weights).sum() / weights.sum()


def test_a_picture_is_framed_as_its_data_set_framed_its_images() -> None:
    """A dark digit drawn small in a corner, as MNIST framed its digits; an item centred filling the frame, as Fashion-MNIST."""
    page = Image.new("L", (600, 400), 255)
    ImageDraw.Draw(page).line([(20, 20), (60, 20), (35, 90)], fill=0, width=6)  # a 7, 41 x 71 pixels, top left
    pixels = to_mnist(page, MNIST)
    top, bottom, left, right = ink_box(pixels)
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8 and pixels.max() == 255 and pixels[0, 0] == 0
    assert max(bottom - top, right - left) + 1 == 20  # the longer side scaled into MNIST's 20x20 box
    assert all(abs(c - 14) <= 0.5 for c in centre_of_mass(pixels))  # MNIST's centres of mass sit at (14, 14)
    item = Image.new("RGBA", (300, 120), (0, 0, 0, 0))
    ImageDraw.Draw(item).rectangle([50, 10, 249, 109], fill=(30, 30, 30, 255))  # a dark 200 x 100 item, see-through around
    pixels = to_mnist(item, FASHION_MNIST)
    assert ink_box(pixels) == (7, 20, 0, 27)  # 28 wide, 14 high, in the middle
    assert to_mnist(Image.new("L", (50, 50), 255), MNIST).max() == 0  # a blank page stays blank


def test_open_image_refuses_what_is_no_image_and_too_many_pixels() -> None:
    buffer = io.BytesIO()
    Image.new("L", (300, 200)).save(buffer, format="PNG")
    assert open_image(buffer.getvalue(), max_pixels=60_000).size == (300, 200)
    with pytest.raises(ImageTooLarge, match="^300x200 pixels is more than the 59,999 allowed"):
        open_image(buffer.getvalue(), max_pixels=59_999)
    with pytest.raises(ImageError, match=r"^not an image PIL can read \(UnidentifiedImageError\)"):
        open_image(b"not an image")


def test_an_image_past_pillows_own_pixel_limit_is_read_or_refused_by_the_projects(recwarn) -> None:
    """Pillow refuses more than about 179 million pixels as a decompression bomb, and warns from 89 million: a valid PNG
    that src.predict reads (any size) and the server refuses by its own max_pixels, with a 413."""
    buffer = io.BytesIO()
    Image.new("1", (14_000, 13_000)).save(buffer, format="PNG")  # 182 million one-bit pixels: 23 MB decoded
    with pytest.raises(ImageTooLarge, match="^14000x13000 pixels is more than the 16,000,000 allowed"):
        open_image(buffer.getvalue(), max_pixels=16_000_000)
    assert open_image(buffer.getvalue()).size == (14_000, 13_000) and not recwarn.list


def test_every_mode_pillow_opens_reads_as_its_8_bit_grey_image(tmp_path) -> None:
    page = Image.new("L", (28, 28))
    ImageDraw.Draw(page).line([(7, 6), (20, 6), (12, 22)], fill=255, width=3)
    pixels = np.asarray(page.filter(ImageFilter.GaussianBlur(1)))  # a 7 with MNIST's grey edges
    save_in_every_mode(pixels, tmp_path / "seven")
    read = {path.name: to_mnist(open_image(path), MNIST).astype(int) for path in tmp_path.iterdir()}
    differences = {name: np.abs(pixels - read[reference(tmp_path / name).name]).max() for name, pixels in read.items()}
    assert {name: difference for name, difference in differences.items() if difference} == {}  # the largest, in grey levels
