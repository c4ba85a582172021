"""A small residual network for the `fast` recipe: most accuracy per FLOP on 32x32 images.

The layout follows the fast CIFAR-10 networks of Myrtle.ai ("How to train your
ResNet", the ResNet-9) and Keller Jordan's airbench94, shrunk to airbench's
widths so that ten epochs cost about a third of a PFLOP:

    stem     2x2 convolution, 24 channels, bias, GELU     (patch-whitened by the `fast` recipe)
    layer1   PoolBlock  24 -> 64,  31x31 -> 15x15
    layer2   PoolBlock  64 -> 256, 15x15 -> 7x7
    layer3   PoolBlock 256 -> 256,  7x7 -> 3x3
    head     global max-pool, linear without bias, logits scaled by 1/9

Each PoolBlock widens with a 3x3 convolution, halves the resolution with a max-pool
(cheaper than a strided convolution), then adds a residual 3x3
convolution branch to that result: a genuine shortcut addition, where airbench
relies on identity-initialised filters instead.

It is a `Network` (stem, stages, head), so the layer table, recipe hooks,
checkpoints and export treat it as they treat the ResNets.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from resnet_cifar.errors import UserError
from resnet_cifar.models.network import Network, check_num_classes
from resnet_cifar.models.registry import register_model

# 2x2 patches of 3 channels have 12 dimensions; the stem keeps each whitened
# direction and its negative, so the GELU after it loses no information.
STEM_KERNEL = 2
STEM_WIDTH = 2 * 3 * STEM_KERNEL**2
# Logits this small at initialisation keep the first large-learning-rate steps
# from saturating the softmax (airbench's value).
LOGIT_SCALE = 1 / 9


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with its scale fixed at 1 and running statistics that follow the weights closely.

    A learned scale adds nothing the next convolution cannot do, and at the `fast`
    recipe's learning rates it only adds noise; only the shift (bias) is trained.
    A run is a few hundred steps of large moves, so the running statistics use a
    short memory (momentum 0.4 instead of 0.1) to match the final weights.
    """
    norm = nn.BatchNorm2d(channels, momentum=0.4)
    norm.weight.requires_grad_(False)
    return norm


class PoolBlock(nn.Module):
    """conv3x3 -> max-pool 2 -> BN -> GELU, then x + GELU(BN(conv3x3(x)))."""

    def __init__(self, in_planes: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = batch_norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = batch_norm(planes)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return x + self.act(self.bn2(self.conv2(x)))


class FastResNet(Network):
    """The stem, one PoolBlock per entry of `widths`, max-pool, classifier."""

    def __init__(
        self,
        block: type[PoolBlock],
        widths: Sequence[int],
        *,
        num_classes: int = 10,
        stem: str = "cifar",
        in_channels: int = 3,
    ):
        super().__init__()
        if stem != "cifar":
            raise UserError(f"Unknown stem {stem!r} for this network: it is built for 32x32 images and has only the 'cifar' stem.")
        check_num_classes(num_classes)
        # No BatchNorm after the stem: the whitened stem is normalised by construction.
        self.conv1 = nn.Conv2d(in_channels, 2 * in_channels * STEM_KERNEL**2, STEM_KERNEL, bias=True)
        self.act = nn.GELU()
        self.stem_description = f"conv{STEM_KERNEL}x{STEM_KERNEL}+gelu"
        in_planes = self.conv1.out_channels
        for index, planes in enumerate(widths):
            self.add_stage(f"layer{index + 1}", nn.Sequential(block(in_planes, planes)))
            in_planes = planes
        self.global_pool = nn.AdaptiveMaxPool2d(1)  # a max-pool is better than an average for this short network
        self.head_description = "maxpool+fc"
        self.num_features = in_planes
        self.fc = nn.Linear(in_planes, num_classes, bias=False)

        for module in self.modules():
            if isinstance(module, PoolBlock):
                # The first filters of each widening convolution start as the identity on
                # the incoming channels, so every block starts by passing its input on
                # (airbench: worth about a sixth of the epochs).
                nn.init.dirac_(module.conv1.weight[: module.conv1.in_channels])

    def stem_layers(self) -> list[nn.Module]:
        return [self.conv1, self.act]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv1(x))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.global_pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x)) * LOGIT_SCALE


# The `fast` recipe's network: 8 weighted layers, airbench94's widths, residual blocks.
register_model("fastresnet8", FastResNet, "fast", recipe="fast", cpu_recipe="cpu",
               block=PoolBlock, widths=(64, 256, 256))
