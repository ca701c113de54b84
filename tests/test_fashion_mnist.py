"""Fashion-MNIST through the same DataModule and configs: its folder, checksums, sources and statistics, and its class
names in what the commands print."""

import re
from pathlib import Path

import pytest
from PIL import Image

from src.data import sources
from src.data.datasets import FASHION_MNIST
from src.data.mnist import MNISTDataModule
from src.data.sources import DataUnavailable
from tests.conftest import REPO, TinyMNIST, delivering, run_many


def debian_delivers_tiny_files(tiny: TinyMNIST, monkeypatch) -> tuple[dict[str, bytes], list[str]]:
    """A stand-in Debian source delivering the tiny data set's files (Fashion-MNIST's names too); the data sets asked."""
    files, asked = {path.name: path.read_bytes() for path in tiny.raw.iterdir()}, []
    monkeypatch.setitem(sources.SOURCES, "debian", delivering(files, asked))
    return files, asked


def test_fashion_mnist_has_its_own_folder_sources_and_statistics(tiny_mnist, tmp_path: Path, monkeypatch) -> None:
    files, asked = debian_delivers_tiny_files(tiny_mnist, monkeypatch)
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), dataset="fashion_mnist", checksums=tiny_mnist.checksums, val_size=100)
    assert dm.hparams.sources is None  # the data set's own order: torchvision, then Debian
    monkeypatch.setitem(sources.SOURCES, "torchvision", lambda workdir, dataset: (_ for _ in ()).throw(OSError("offline")))
    dm.prepare_data()
    assert asked == ["fashion_mnist"]
    assert sorted(p.name for p in (tmp_path / "data" / "FashionMNIST" / "raw").iterdir()) == sorted(files)
    assert (dm.mean, dm.std) == (FASHION_MNIST.mean, FASHION_MNIST.std)
    dm.setup("fit")
    assert len(dm.splits["train"][1]) == 500 and dm.data_set.label(9) == "Ankle boot"


def test_fashion_mnist_files_are_pinned_by_their_sha256(tiny_mnist, tmp_path: Path, monkeypatch) -> None:
    debian_delivers_tiny_files(tiny_mnist, monkeypatch)  # files that are not the real Fashion-MNIST
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), dataset="fashion_mnist", sources=["debian"])
    with pytest.raises(DataUnavailable, match=r"^Fashion-MNIST could not be found or fetched \(.*debian: ValueError: .*sha256"):
        dm.prepare_data()
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert not raw.exists() or not any(raw.iterdir())  # nothing unverified was kept


@pytest.mark.slow
def test_a_short_real_fashion_mnist_run_names_its_classes(tmp_path: Path) -> None:
    try:  # the real Fashion-MNIST in ./data, fetched by the DataModule's own sources (torchvision, else Debian's package)
        MNISTDataModule(data_dir=str(REPO / "data"), dataset="fashion_mnist").prepare_data()
    except DataUnavailable as error:
        pytest.skip(f"Fashion-MNIST is not available here: {error}")
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
    predict = ("src.predict", REPO, [f"ckpt_path={checkpoint}", f"image={tmp_path}"])
    evaluated, predicted = run_many([("src.eval", REPO, [f"ckpt_path={checkpoint}"]), predict])
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
