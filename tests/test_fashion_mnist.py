"""Fashion-MNIST through the same DataModule and configs: its folder, checksums, sources and statistics, and its class
names in what the commands print."""

import re
from pathlib import Path

import pytest
from PIL import Image

from src.cli import ConfigError
from src.config import load
from src.data import sources
from src.data.datasets import FASHION_MNIST
from src.data.mnist import MNISTDataModule
from src.data.sources import DataUnavailable
from tests.conftest import REPO, run_many, synthetic_digits, write_idx


def tiny_fashion(root: Path) -> dict[str, bytes]:
    """A tiny data set in Fashion-MNIST's file names, as a source would deliver it."""
    folder = root / "delivered"
    write_idx(folder, "train", *synthetic_digits(600, seed=1))
    write_idx(folder, "t10k", *synthetic_digits(200, seed=2))
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_fashion_mnist_has_its_own_folder_sources_and_statistics(tmp_path: Path, monkeypatch) -> None:
    files = tiny_fashion(tmp_path)
    asked = []

    def debian(workdir: Path, dataset: str) -> Path:
        asked.append(dataset)
        for name, data in files.items():
            (workdir / name).write_bytes(data)
        return workdir

    monkeypatch.setitem(sources.SOURCES, "debian", debian)
    checksums = {name: sources.hashlib.sha256(data).hexdigest() for name, data in files.items()}
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), dataset="fashion_mnist", checksums=checksums, val_size=100)
    assert dm.hparams.sources is None  # the data set's own order: torchvision, then Debian
    monkeypatch.setitem(sources.SOURCES, "torchvision", lambda workdir, dataset: (_ for _ in ()).throw(OSError("offline")))
    dm.prepare_data()
    assert asked == ["fashion_mnist"]
    assert sorted(p.name for p in (tmp_path / "data" / "FashionMNIST" / "raw").iterdir()) == sorted(files)
    assert (dm.mean, dm.std) == (FASHION_MNIST.mean, FASHION_MNIST.std)
    dm.setup("fit")
    assert len(dm.splits["train"][1]) == 500 and dm.data_set.label(9) == "Ankle boot"


def test_fashion_mnist_files_are_pinned_by_their_sha256(tmp_path: Path, monkeypatch) -> None:
    files = tiny_fashion(tmp_path)

    def debian(workdir: Path, dataset: str) -> Path:  # delivers files that are not the real Fashion-MNIST
        for name, data in files.items():
            (workdir / name).write_bytes(data)
        return workdir

    monkeypatch.setitem(sources.SOURCES, "debian", debian)
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), dataset="fashion_mnist", sources=["debian"])
    with pytest.raises(DataUnavailable, match=r"^Fashion-MNIST could not be found or fetched \(.*debian: ValueError: .*sha256"):
        dm.prepare_data()
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert not raw.exists() or not any(raw.iterdir())  # nothing unverified was kept


@pytest.mark.parametrize(
    ("overrides", "start"),
    [
        (
            ["data=fashion_mnist", "data.sources=[npm]"],
            "data.sources=[npm]: npm does not serve Fashion-MNIST; use [torchvision,debian]",
        ),
        (["data.sources=[debian]"], "data.sources=[debian]: debian does not serve MNIST; use [torchvision,npm]"),
    ],
)
def test_each_data_set_takes_only_its_own_sources(compose_config, overrides: list[str], start: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(start)}"):
        load(compose_config(*overrides))


@pytest.fixture(scope="session")
def real_fashion_mnist() -> Path:
    """The real Fashion-MNIST in ./data, fetched by the DataModule's own sources (torchvision, else Debian's package)."""
    try:
        MNISTDataModule(data_dir=str(REPO / "data"), dataset="fashion_mnist").prepare_data()
    except DataUnavailable as error:
        pytest.skip(f"Fashion-MNIST is not available here: {error}")
    return REPO / "data" / "FashionMNIST" / "raw"


@pytest.mark.slow
def test_a_short_real_fashion_mnist_run_names_its_classes(real_fashion_mnist, tmp_path: Path) -> None:
    quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=60", "~callbacks.model_summary", "~callbacks.curves_png"]
    (done,) = run_many([("src.train", REPO, ["data=fashion_mnist", *quick, f"log_dir={tmp_path}"])])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on 10,000 Fashion-MNIST test images" in done.stdout
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", done.stdout).group(1))
    assert 0.6 < accuracy < 0.95  # 60 steps learn Fashion-MNIST's easy classes, not the shirts
    (checkpoint,) = (tmp_path / "fashion_mnist" / "version_0" / "checkpoints").glob("epoch*.ckpt")  # named after it
    from torchvision.datasets import FashionMNIST

    test = FashionMNIST(str(REPO / "data"), train=False)
    for index in range(3):
        Image.fromarray(test.data[index].numpy()).save(tmp_path / f"{index}.png")
    evaluated, predicted = run_many(
        [("src.eval", REPO, [f"ckpt_path={checkpoint}"]), ("src.predict", REPO, [f"ckpt_path={checkpoint}", f"image={tmp_path}"])]
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "  Ankle boot: 0." in evaluated.stdout and "  Shirt: 0." in evaluated.stdout
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    names = [re.match(r".*\.png: (.+?)   0:", line).group(1) for line in predicted.stdout.splitlines()]
    assert len(names) == 3 and set(names) <= set(FASHION_MNIST.classes)


def test_data_dataset_alone_switches_the_data_set(compose_config) -> None:
    """`data.dataset=fashion_mnist` works without `data=fashion_mnist`: the sources follow the data set."""
    cfg = compose_config("data.dataset=fashion_mnist")
    assert cfg.data.sources is None and cfg.name == "fashion_mnist"
    dm = MNISTDataModule(**{k: v for k, v in cfg.data.items() if k != "_target_"})
    assert dm.raw_dir.parts[-2:] == ("FashionMNIST", "raw") and dm.mean == FASHION_MNIST.mean


def test_a_resume_stays_on_its_data_set(tiny_config) -> None:
    from src.checkpoints import CheckpointError
    from src.train import train

    first = train(tiny_config("trainer.max_epochs=1", "name=shared"))
    checkpoint = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match=r"the run was started with data.dataset=mnist \(now fashion_mnist\); resume it"):
        train(tiny_config("data.dataset=fashion_mnist", "name=shared", "trainer.max_epochs=2", f"ckpt_path={checkpoint}"))
