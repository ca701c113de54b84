"""``python -m src.predict ckpt_path=<file> image=<file or folder>``: the class and ten probabilities of each image.

Any size, colour or polarity: each image is made grey, padded square, resized to 28x28, inverted when its background is
light (MNIST digits are light on dark) and normalized as the checkpoint's training data was."""

from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image, ImageOps

from src import checkpoints, cli
from src.cli import ConfigError
from src.data.datasets import DATASETS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def to_mnist(path: Path) -> torch.Tensor:
    """An image file as MNIST pixels: uint8 ``(28, 28)``, light digit on a dark background."""
    try:
        image = ImageOps.grayscale(Image.open(path))
    except (OSError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise ConfigError(
            f"image={path}: not an image PIL can read ({type(error).__name__}); give a PNG, JPEG, BMP, GIF, TIFF or WebP file"
        ) from error
    side = max(image.size)
    background = 255 if image.getpixel((0, 0)) > 127 else 0  # pad with the corner's shade
    image = ImageOps.pad(image, (side, side), color=background).resize((28, 28), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).float()
    if border.mean() > 127:  # a light background: a dark digit on paper (a big light item keeps its dark border)
        pixels = 255 - pixels
    return pixels


def image_files(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if target.is_file():
        return [target]
    raise ConfigError(f"image={target}: no such file or folder")


def predict(ckpt_path: str | None, image: str | None, log_dir: str = "lightning_logs") -> list[tuple[Path, str, list[float]]]:
    """Each image file with its class name ("7", "Trouser") and the ten class probabilities."""
    checkpoint = checkpoints.needed(ckpt_path, Path(log_dir))
    if image is None:
        raise ConfigError("image=???: an image is needed; give image=<an image file> or image=<a folder of them>")
    files = image_files(Path(image))
    if not files:
        raise ConfigError(f"image={image}: the folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    state = checkpoints.read(checkpoint)
    data_set, data = DATASETS[state["datamodule_hyper_parameters"]["dataset"]], state["datamodule_hyper_parameters"]
    mean, std = data_set.mean_std(data["normalization"])
    pixels = torch.stack([to_mnist(path) for path in files]).unsqueeze(1)
    with torch.no_grad():
        probabilities = checkpoints.trained_network(state)(pixels.float().div(255).sub(mean).div(std)).softmax(dim=1)
    return [(path, data_set.classes[int(p.argmax())], p.tolist()) for path, p in zip(files, probabilities, strict=True)]


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@cli.task
def main(cfg: DictConfig) -> None:
    results = predict(cfg.get("ckpt_path"), cfg.get("image"), cfg.log_dir)  # get: None for ???
    for path, name, probabilities in results:
        print(f"{path}: {name}   " + " ".join(f"{index}:{p:.3f}" for index, p in enumerate(probabilities)))


if __name__ == "__main__":
    cli.run(main)
