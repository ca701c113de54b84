"""How pixels become network inputs: (x / 255 - mean) / std, the same in training and in ``src.predict``."""

# name -> (mean, std) of the pixel values in [0, 1]
NORMALIZATIONS: dict[str, tuple[float, float]] = {"standard": (0.1307, 0.3081), "symmetric": (0.5, 0.5)}
