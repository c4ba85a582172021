"""Model names mapped to their architecture, and the one way to build them."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from torch import nn

from resnet_cifar.errors import UserError
from resnet_cifar.models.resnet import BasicBlock, Bottleneck, ResNet


@dataclass(frozen=True)
class Architecture:
    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, ...]
    widths: tuple[int, ...]
    shortcut: str  # the default; `create_model(..., shortcut=...)` overrides it
    family: str


def _paper(depth: int) -> Architecture:
    # Section 4.2: depth 6n+2, three stages of n basic blocks with 16, 32 and 64 filters.
    n = (depth - 2) // 6
    return Architecture(BasicBlock, (n, n, n), (16, 32, 64), "A", "paper CIFAR")


def _imagenet(block, layers) -> Architecture:
    return Architecture(block, layers, (64, 128, 256, 512), "B", "ImageNet")


ARCHITECTURES: dict[str, Architecture] = {
    "resnet20": _paper(20),
    "resnet32": _paper(32),
    "resnet44": _paper(44),
    "resnet56": _paper(56),
    "resnet110": _paper(110),
    "resnet1202": _paper(1202),
    "resnet18": _imagenet(BasicBlock, (2, 2, 2, 2)),
    "resnet34": _imagenet(BasicBlock, (3, 4, 6, 3)),
    "resnet50": _imagenet(Bottleneck, (3, 4, 6, 3)),
    "resnet101": _imagenet(Bottleneck, (3, 4, 23, 3)),
    "resnet152": _imagenet(Bottleneck, (3, 8, 36, 3)),
}

# Keyword arguments of ResNet that a caller may set through create_model.
OPTIONS = tuple(
    name
    for name, parameter in inspect.signature(ResNet).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("num_classes", "stem")
)


def list_models() -> list[str]:
    """Every model name `create_model` accepts, paper CIFAR networks first."""
    return list(ARCHITECTURES)


def create_model(name: str, *, num_classes: int = 10, stem: str = "cifar", **kwargs) -> ResNet:
    """Build a freshly initialised ResNet by name.

    kwargs: shortcut ("A" or "B"), zero_init_residual (bool), in_channels (int).
    """
    if name not in ARCHITECTURES:
        raise UserError(f"Unknown model {name!r}; choose one of: {', '.join(ARCHITECTURES)}.")
    unknown = sorted(set(kwargs) - set(OPTIONS))
    if unknown:
        raise UserError(f"Unknown model option(s) {', '.join(unknown)}; valid options: {', '.join(OPTIONS)}.")
    arch = ARCHITECTURES[name]
    kwargs.setdefault("shortcut", arch.shortcut)
    return ResNet(arch.block, arch.layers, arch.widths, num_classes=num_classes, stem=stem, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
