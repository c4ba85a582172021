"""What every network of the zoo is: a stem, named stages of blocks, and a head.

The rest of the package relies on this shape and on nothing else: the layer
table reads a row per stem, block and head; recipe hooks find the stem's first
convolution; fine-tuning replaces the classifier; pictures hook the last stage.
Each family keeps its own module names (the ResNets keep torchvision's
`conv1 bn1 layer1..4 fc`, so its weights load unchanged) and says in
`stem_layers`, `forward_stem` and `pool` which of its parts are which.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from resnet_cifar.errors import UserError


def check_num_classes(num_classes: object) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, got {num_classes!r}.")
    return num_classes


class Network(nn.Module, metaclass=ABCMeta):
    """Base of the zoo's networks. A subclass builds its stem, calls `add_stage` for each stage in order,
    sets `fc` (the linear classifier on the pooled features) and `num_features`, describes its stem
    and head in a few words for the layer table (`stem_description`, `head_description`), and says
    which of its parts are the stem and the pooling (a family lacking one cannot be instantiated)."""

    stem_description: str
    head_description: str
    fc: nn.Linear
    num_features: int

    def __init__(self) -> None:
        super().__init__()
        self.stage_names: list[str] = []

    def add_stage(self, name: str, stage: nn.Sequential) -> None:
        setattr(self, name, stage)
        self.stage_names.append(name)

    def stages(self) -> list[tuple[str, nn.Sequential]]:
        """(name, stage) in the order the input flows through them."""
        return [(name, getattr(self, name)) for name in self.stage_names]

    @abstractmethod
    def stem_layers(self) -> list[nn.Module]:
        """The stem's modules, input first."""

    @abstractmethod
    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The input through the stem, to what the first stage takes."""

    @abstractmethod
    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output [B, C, H, W] to one feature vector per image [B, C]."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the classifier sees, [B, num_features]."""
        x = self.forward_stem(x)
        for _, stage in self.stages():
            x = stage(x)
        return self.pool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one, e.g. to fine-tune on new classes."""
        old = self.fc
        new = nn.Linear(old.in_features, check_num_classes(num_classes), bias=old.bias is not None)
        self.fc = new.to(device=old.weight.device, dtype=old.weight.dtype)
