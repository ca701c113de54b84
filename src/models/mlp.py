"""The network of the PyTorch tutorial 如何使用Pytorch搭建模型 ("How to build a model with PyTorch"), nothing Lightning in it."""

from collections.abc import Sequence
from itertools import pairwise
from typing import Annotated

from pydantic import Field, PositiveInt, validate_call
from torch import Tensor, nn

Share = Annotated[float, Field(ge=0, lt=1)]  # of the units dropped


class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` for each hidden width, then a ``Linear`` to class logits: by default the
    tutorial's network exactly. ``dropout`` > 0 adds a Dropout after each ReLU, ``input_dropout`` > 0 one on the pixels
    (Hinton et al. 2012's input dropout); ``compile=True`` compiles the forward."""

    @validate_call  # the config's own check is strict (src/config.py); from Python, Hydra's ListConfig is a list too
    def __init__(
        self,
        in_features: PositiveInt = 784,
        hidden: Sequence[PositiveInt] = (512, 512, 512),
        num_classes: Annotated[int, Field(ge=2)] = 10,
        dropout: Share = 0.0,
        input_dropout: Share = 0.0,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [nn.Flatten()]
        if input_dropout > 0:
            layers.append(nn.Dropout(input_dropout))
        widths = [in_features, *hidden]
        for width, next_width in pairwise(widths):
            layers += [nn.Linear(width, next_width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], num_classes))
        self.layers = nn.Sequential(*layers)
        if compile:
            self.compile()  # in place: the state_dict keys stay the same, so checkpoints load into compiled and plain networks

    def forward(self, images: Tensor) -> Tensor:
        """Map images ``(N, 1, 28, 28)`` (or already flat ``(N, 784)``) to logits ``(N, num_classes)``."""
        return self.layers(images)
