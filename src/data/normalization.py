"""How pixels become network inputs: (x / 255 - mean) / std, the same in training and in ``src.predict``."""

from src.data.datasets import DATASETS

# standard: the data set's own training-image statistics; symmetric: [0, 1] to the tutorial's [-1, 1]
NORMALIZATIONS = ("standard", "symmetric")


def mean_std(normalization: str, dataset: str = "mnist") -> tuple[float, float]:
    """The (mean, std) that ``normalization`` subtracts and divides by, for pixels scaled to [0, 1]."""
    if normalization == "symmetric":
        return 0.5, 0.5
    return DATASETS[dataset].mean, DATASETS[dataset].std
