"""Shared fixtures: a tiny learnable MNIST-format data set written by the tests, the real MNIST, config composition."""

import hashlib
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
REAL_DATA_DIR = REPO / "data"  # the same folder `python -m src.train` uses, so the real files are fetched once


def write_idx(folder: Path, prefix: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Write ``images`` (uint8, N x 28 x 28) and ``labels`` in MNIST's IDX format, as torchvision reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.numpy().tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.numpy().tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images where class c is a bright 6x6 square at a class-specific place, plus noise: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator, dtype=torch.uint8)
    images = torch.randint(0, 60, (n, 28, 28), generator=generator, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        row, col = 2 + 8 * (label // 4), 2 + 8 * (label % 4)
        images[i, row : row + 6, col : col + 6] = 250
    return images, labels


class TinyMNIST:
    """A data folder laid out like torchvision's MNIST, with its own checksums."""

    def __init__(self, root: Path, n_train: int = 600, n_test: int = 200) -> None:
        self.root, self.raw = root, root / "MNIST" / "raw"
        write_idx(self.raw, "train", *synthetic_digits(n_train, seed=1))
        write_idx(self.raw, "t10k", *synthetic_digits(n_test, seed=2))
        self.checksums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(self.raw.iterdir())}

    def use_in(self, cfg: DictConfig, val_size: int = 100) -> DictConfig:
        """Point the config's DataModule at this folder and its checksums, with no fetching."""
        with open_dict(cfg):
            cfg.data.update(data_dir=str(self.root), val_size=val_size, sources=[], checksums=self.checksums)
        return cfg


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> TinyMNIST:
    return TinyMNIST(tmp_path / "data")


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST in ./data, fetched through the DataModule's own sources if missing."""
    from src.data.mnist import MNISTDataModule

    MNISTDataModule(data_dir=str(REAL_DATA_DIR)).prepare_data()
    return REAL_DATA_DIR


@pytest.fixture
def compose_config(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """compose_config(*overrides) -> the training config, logging into a temporary folder."""

    def _compose(*overrides: str) -> DictConfig:
        return compose("train", overrides=[f"logger.save_dir={tmp_path / 'logs'}", *overrides])

    with initialize_config_dir(str(CONF), version_base="1.3"):
        yield _compose
