"""Model names mapped to their architecture, and the one way to build them."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from torch import nn

from resnet_cifar.errors import UserError
from resnet_cifar.models.fast import FastResNet, PoolBlock
from resnet_cifar.models.resnet import BasicBlock, Bottleneck, ResNet


@dataclass(frozen=True)
class Architecture:
    block: type[BasicBlock] | type[Bottleneck] | type[PoolBlock]
    layers: tuple[int, ...]
    widths: tuple[int, ...]
    shortcut: str | None  # the default; `create_model(..., shortcut=...)` overrides it; None: no choice
    family: str
    network: type[ResNet] | type[FastResNet] = ResNet


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
    # The `fast` recipe's network: 8 weighted layers, airbench94's widths, residual blocks.
    "fastresnet8": Architecture(PoolBlock, (1, 1, 1), (64, 256, 256), None, "fast", FastResNet),
}


def _options(network: type) -> tuple[str, ...]:
    """Keyword arguments of `network` that a caller may set through create_model."""
    return tuple(
        name
        for name, parameter in inspect.signature(network).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("num_classes", "stem")
    )


def list_models() -> list[str]:
    """Every model name `create_model` accepts, paper CIFAR networks first."""
    return list(ARCHITECTURES)


def create_model(name: str, *, num_classes: int = 10, stem: str = "cifar", **kwargs) -> ResNet | FastResNet:
    """Build a freshly initialised network by name.

    kwargs: shortcut ("A" or "B"; ResNet only), zero_init_residual (bool), in_channels (int).
    """
    if name not in ARCHITECTURES:
        raise UserError(f"Unknown model {name!r}; choose one of: {', '.join(ARCHITECTURES)}.")
    arch = ARCHITECTURES[name]
    options = _options(arch.network)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise UserError(f"Unknown model option(s) {', '.join(unknown)} for {name}; valid options: {', '.join(options)}.")
    if arch.shortcut is not None:
        kwargs.setdefault("shortcut", arch.shortcut)
    return arch.network(arch.block, arch.layers, arch.widths, num_classes=num_classes, stem=stem, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
