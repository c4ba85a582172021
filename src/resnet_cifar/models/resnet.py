"""Residual networks (He et al., 2015/2016) as one configurable class.

One `ResNet` class covers both families. The paper's CIFAR networks
(resnet20..1202) have three stages of 16/32/64 filters, basic blocks and
parameter-free "option A" shortcuts; the ImageNet networks (resnet18..152) have
four stages of 64..512 filters, basic or bottleneck blocks and "option B"
projection shortcuts. The variants are arguments, not subclasses, and the
module names follow torchvision (`conv1 bn1 layer1..4 fc`, `downsample`) so its
state_dicts load unchanged.

Stochastic depth (`drop_path`) is shared with the other residual families
(preact.py, wide.py): `drop_path_rates` spreads the rate over the blocks and
`drop_branch` is what each block applies to its residual branch.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import torch
import torch.nn.functional as F
from torch import nn

from resnet_cifar.choices import STEMS
from resnet_cifar.errors import UserError
from resnet_cifar.models.network import Network, check_num_classes
from resnet_cifar.models.registry import register_model

SHORTCUTS = ("A", "B")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


def imagenet_stem(in_channels: int, width: int) -> tuple[nn.Conv2d, nn.MaxPool2d]:
    """torchvision's ImageNet stem: a 7x7 stride-2 convolution and a 3x3 stride-2 max-pool (a quarter of the side)."""
    return nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False), nn.MaxPool2d(3, stride=2, padding=1)


def init_weights(network: nn.Module) -> None:
    """torchvision's initialisation: Kaiming normal (fan-out) convolutions, BatchNorm at scale 1 and shift 0."""
    if next(network.parameters()).is_meta:
        return  # shapes without values (`resnet-cifar models`): nothing to draw, and drawing on meta is slow
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def check_probability(name: str, p: float) -> float:
    """p itself, if it is a usable rate of dropping: 1 would drop every branch or feature and leave nothing to learn."""
    if not 0 <= p < 1:
        raise UserError(f"{name} must be at least 0 and below 1, got {p!r}.")
    return p


def drop_path_rates(drop_path: float, layers: Sequence[int]) -> list[list[float]]:
    """Each block's probability of skipping its residual branch, stage by stage (one list per entry of `layers`).

    The rate rises linearly from 0 at the first block to `drop_path` at the last
    (Huang et al. 2016, as timm does): early blocks compute the features that every
    later block builds on, so they are dropped least.
    """
    check_probability("drop_path", drop_path)
    total = sum(layers)
    rates = [drop_path * index / max(total - 1, 1) for index in range(total)]
    return [rates[start:start + blocks] for start, blocks in zip(accumulate(layers, initial=0), layers)]


def drop_branch(p: float) -> nn.Module:
    """Drops a residual branch's output for each image with probability p while training, never in eval mode.

    An Identity when p is 0, so a network without stochastic depth computes exactly
    what it did before the option existed; neither has parameters, so state_dicts keep their keys.
    torchvision is imported only here: it adds a second or more to every command that builds a network.
    """
    if p == 0:
        return nn.Identity()
    from torchvision.ops import StochasticDepth

    return StochasticDepth(p, mode="row")


class PadShortcut(nn.Module):
    """Option A: subsample by striding and pad the new channels with zeros.

    The paper uses it for CIFAR so that shortcuts add no parameters and every
    network of the family differs only in depth.
    """

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def make_shortcut(kind: str, in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    """The shortcut of a block whose input and output shapes differ; None when they match."""
    if stride == 1 and in_planes == out_planes:
        return None
    if kind == "A":
        return PadShortcut(stride, out_planes - in_planes)
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; the block of resnet20..1202, resnet18 and resnet34."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B", drop_path: float = 0.0):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = make_shortcut(shortcut, in_planes, planes, stride)
        self.drop_path = drop_branch(drop_path)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self.drop_path(out) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4); the block of resnet50..152.

    The stride sits on the 3x3 convolution, as in torchvision ("ResNet v1.5"),
    which is slightly more accurate than the paper's stride on the first 1x1.
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B", drop_path: float = 0.0):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_planes, out_planes, stride)
        self.drop_path = drop_branch(drop_path)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.drop_path(out) + identity)


class ResNet(Network):
    """A stem, one stage per entry of `layers` (the first at stride 1, the rest at 2), pooling, a classifier.

    stem="cifar" is a 3x3 stride-1 convolution without max-pooling, so a 32x32
    image keeps its resolution into the first stage; stem="imagenet" is
    torchvision's 7x7 stride-2 convolution plus a 3x3 stride-2 max-pool.
    drop_path is the stochastic-depth rate of the last block (see `drop_path_rates`).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        widths: Sequence[int],
        *,
        num_classes: int = 10,
        stem: str = "cifar",
        shortcut: str = "B",
        zero_init_residual: bool = False,
        drop_path: float = 0.0,
        in_channels: int = 3,
    ):
        super().__init__()
        if stem not in STEMS:
            raise UserError(f"Unknown stem {stem!r}; choose one of: {', '.join(STEMS)}.")
        if shortcut not in SHORTCUTS:
            raise UserError(f"Unknown shortcut {shortcut!r}; choose 'A' (zero-padded identity) or 'B' (1x1 projection).")
        check_num_classes(num_classes)
        width = widths[0]
        if stem == "cifar":
            self.conv1 = conv3x3(in_channels, width)
            self.maxpool = nn.Identity()
            self.stem_description = "conv3x3+bn+relu"
        else:
            self.conv1, self.maxpool = imagenet_stem(in_channels, width)
            self.stem_description = "conv7x7/2+bn+relu+maxpool"
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)

        self.in_planes = width
        for index, (planes, rates) in enumerate(zip(widths, drop_path_rates(drop_path, layers))):
            self.add_stage(f"layer{index + 1}", self._make_layer(block, planes, rates, 1 if index == 0 else 2, shortcut))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head_description = "avgpool+fc"
        self.num_features = self.in_planes
        self.fc = nn.Linear(self.num_features, num_classes)

        init_weights(self)
        if zero_init_residual:
            # Each residual branch then starts as zero, so every block starts as the
            # identity and a deep network trains like a shallow one at first
            # (Goyal et al. 2017); worth about +0.2-0.3% on ImageNet.
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(module.last_bn().weight)

    def _make_layer(self, block, planes: int, drop_rates: list[float], stride: int, shortcut: str) -> nn.Sequential:
        """One block per entry of drop_rates, the first with the stage's stride."""
        stage = []
        for index, rate in enumerate(drop_rates):
            stage.append(block(self.in_planes, planes, stride if index == 0 else 1, shortcut, rate))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*stage)

    def stem_layers(self) -> list[nn.Module]:
        return [self.conv1, self.bn1, self.relu, self.maxpool]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(x), 1)


def _register_paper(depth: int) -> None:
    # Section 4.2: depth 6n+2, three stages of n basic blocks with 16, 32 and 64 filters, option A shortcuts.
    n = (depth - 2) // 6
    register_model(f"resnet{depth}", ResNet, "paper CIFAR", recipe="paper", cpu_recipe="paper-cpu", stems=STEMS,
                   block=BasicBlock, layers=(n, n, n), widths=(16, 32, 64), shortcut="A")


def _register_imagenet(name: str, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...]) -> None:
    register_model(name, ResNet, "ImageNet", recipe="resnet18", stems=STEMS, torchvision_weights=True,
                   block=block, layers=layers, widths=(64, 128, 256, 512))


for _depth in (20, 32, 44, 56, 110, 1202):
    _register_paper(_depth)
_register_imagenet("resnet18", BasicBlock, (2, 2, 2, 2))
_register_imagenet("resnet34", BasicBlock, (3, 4, 6, 3))
_register_imagenet("resnet50", Bottleneck, (3, 4, 6, 3))
_register_imagenet("resnet101", Bottleneck, (3, 4, 23, 3))
_register_imagenet("resnet152", Bottleneck, (3, 8, 36, 3))
