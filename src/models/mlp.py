"""The network of the PyTorch tutorial 如何使用Pytorch搭建模型 ("How to build a model with PyTorch"), nothing Lightning in it."""

from collections.abc import Sequence

from torch import Tensor, nn

from src.validate import SettingError, number, whole_number


class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` for each hidden width, then a ``Linear`` to class logits: by default the
    tutorial's network exactly. ``dropout`` > 0 adds a Dropout after each ReLU, ``input_dropout`` > 0 one on the pixels
    (Hinton et al. 2012's input dropout); ``compile=True`` compiles the forward."""

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (512, 512, 512),
        num_classes: int = 10,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        compile: bool = False,
    ) -> None:
        super().__init__()
        whole_number("in_features", in_features, 1)
        if any(isinstance(width, bool) or not isinstance(width, int) or width < 1 for width in hidden):
            raise SettingError("hidden", list(hidden), "every width must be a whole number >= 1; e.g. hidden=[512,512,512]")
        self.num_classes = whole_number("num_classes", num_classes, 2)
        number("dropout", dropout, 0, 1, below_high=True)
        number("input_dropout", input_dropout, 0, 1, below_high=True)
        layers: list[nn.Module] = [nn.Flatten()]
        if input_dropout > 0:
            layers.append(nn.Dropout(input_dropout))
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
