"""The network of the PyTorch tutorial, with nothing Lightning in it."""

from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` for each hidden width, then a ``Linear`` to class logits.

    The defaults build the tutorial's network exactly:
    Flatten, Linear(784, 512), ReLU, Linear(512, 512), ReLU, Linear(512, 512), ReLU, Linear(512, 10).
    ``dropout`` > 0 adds a Dropout after each ReLU (off by default, so the tutorial's network is unchanged).
    ``compile=True`` runs the forward through ``torch.compile`` (fuses the small ops; pays off on a GPU).
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (512, 512, 512),
        num_classes: int = 10,
        dropout: float = 0.0,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for next_width in hidden:
            layers += [nn.Linear(width, next_width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = next_width
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)
        if compile:
            # In place: the state_dict keys stay the same, so checkpoints load into compiled and plain networks alike.
            self.compile()

    def forward(self, images: Tensor) -> Tensor:
        """Map images ``(N, 1, 28, 28)`` (or already flat ``(N, 784)``) to logits ``(N, num_classes)``."""
        return self.layers(images)
