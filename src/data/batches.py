"""A device-resident batch iterator: the tutorial's "keep the data set as tensors and slice batches" as a loader. A
batch is an index slice of tensors already on the device: no ``__getitem__``, no workers, no copy per step."""

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Sampler


class EpochShuffle(Sampler[int]):
    """The sample indices of one rank, in an order that depends only on ``seed`` and the epoch (Lightning calls
    ``set_epoch``), so a resumed run sees the batches a straight one sees. Each of several ranks takes every
    ``world_size``-th index of one permutation, padded by wrapping around with ``pad=True``: the same steps on all."""

    def __init__(self, size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1, pad: bool = True) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
        if self.pad and self.size % self.world_size:
            order = torch.cat([order, order[: self.world_size - self.size % self.world_size]])
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size) if self.pad else len(range(self.rank, self.size, self.world_size))


class DeviceBatches:
    """Yields ``(images[i], labels[i])`` for consecutive index slices ``i`` of ``sampler``'s order, with the attributes
    Lightning asks of a ``DataLoader``. ``state_dict`` (where in its epoch it stands, kept in checkpoints by the
    DataModule and by Lightning, which then counts it resumable) and ``load_state_dict`` let a run stopped mid-epoch
    resume on exactly the batches a straight run sees."""

    batch_sampler = None  # what Lightning inspects on a DataLoader: batches come from `sampler` and `batch_size`

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, sampler: EpochShuffle, drop_last: bool = False) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.sampler, self.drop_last = batch_size, sampler, drop_last
        self.served = 0  # batches of the current epoch handed out so far
        self._resume: dict[str, int] | None = None

    def __len__(self) -> int:
        return (math.floor if self.drop_last else math.ceil)(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        resume, self._resume = self._resume, None
        self.served = resume["served"] if resume and resume["epoch"] == self.sampler.epoch else 0
        order = self.sampler.indices().to(self.images.device)
        for batch in order[self.served * self.batch_size : len(self) * self.batch_size].split(self.batch_size):
            self.served += 1
            yield self.images[batch], self.labels[batch]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "served": self.served}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = dict(state_dict)
