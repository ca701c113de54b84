"""``python -m src.predict ckpt_path=<file> image=<file or folder>``: the class and ten probabilities of each image, of
any size, colour or polarity: prepared as the checkpoint's data set prepared its own (src/data/images.py)."""

import gc

if __name__ == "__main__":  # run as a command: no garbage collection during the imports (src/train.py says why)
    gc.disable()

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from src import checkpoints, cli, config
from src.cli import ConfigError
from src.data.images import ImageError, open_image, to_mnist

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def predict(ckpt_path: str | None, image: str | None, log_dir: str = "lightning_logs") -> list[tuple[Path, str, list[float]]]:
    """Each image file with its class name ("7", "Trouser") and the ten class probabilities."""
    checkpoint = checkpoints.needed(ckpt_path, Path(log_dir))
    if image is None:
        raise ConfigError("image=???: an image is needed; give image=<an image file> or image=<a folder of them>")
    target = Path(image)
    if not (target.is_dir() or target.is_file()):
        raise ConfigError(f"image={target}: no such file or folder; give image=<an image file> or image=<a folder of them>")
    files = sorted(p for p in target.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if target.is_dir() else [target]
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ConfigError(
            f"image={image}: the folder holds no image files (its subfolders are not read); give a folder of {suffixes} "
            "files, or one file"
        )
    classifier = checkpoints.PixelClassifier(checkpoints.read(checkpoint), checkpoint)
    classes = classifier.data_set.classes
    images = []
    for path in files:
        try:
            images.append(torch.from_numpy(to_mnist(open_image(path), classifier.data_set)))
        except ImageError as error:
            raise ConfigError(f"image={path}: {error}") from error
    with torch.no_grad():
        probabilities = classifier(torch.stack(images).float().div(255))
    return [(path, classes[int(p.argmax())], p.tolist()) for path, p in zip(files, probabilities, strict=True)]


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@cli.task
def main(cfg: DictConfig) -> None:
    for path, name, probabilities in config.call(predict, cfg):
        print(f"{path}: {name}   " + " ".join(f"{index}:{p:.3f}" for index, p in enumerate(probabilities)))


if __name__ == "__main__":
    cli.run(main)
