"""Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks").

The original block computes relu(x + bn(conv(...))): the ReLU after the addition
sits on the shortcut path, so no signal passes from one block to the next
untouched. The pre-activation block moves batch norm and ReLU in front of each
convolution and adds nothing after the sum, `x + conv(relu(bn(conv(relu(bn(x))))))`:
the shortcuts then form a clean identity path from the stem to the head, which
the paper finds trains deep networks more easily and generalises better. Two
consequences shape the network: the stem needs no BN-ReLU of its own (the first
block pre-activates its output), and the last block's sum would reach the head
unnormalised, so that block alone adds a BN-ReLU after its addition (the paper's
"extra activation", section 4.1). The last stage thus outputs rectified features,
as a ResNet's does, which is what the pooling and Grad-CAM expect.

The Wide ResNets (wide.py) are this network with other widths and depths.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from resnet_cifar.choices import STEMS
from resnet_cifar.errors import UserError
from resnet_cifar.models.network import Network, check_num_classes
from resnet_cifar.models.registry import register_model
from resnet_cifar.models.resnet import (check_probability, conv1x1, conv3x3, drop_branch, drop_path_rates,
                                       imagenet_stem, init_weights)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-(dropout)-conv3x3, added to the shortcut.

    Where the shape changes, the shortcut is a 1x1 projection without BN of the
    block's pre-activated input (the paper's layout, also kuangliu's and the Wide
    ResNets'): both paths then start from the same normalised signal. dropout
    between the convolutions is the Wide ResNets' option (Zagoruyko and Komodakis 2016).
    final_activation adds the BN-ReLU after the addition that the network's last block needs.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0, drop_path: float = 0.0,
                 final_activation: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.downsample = conv1x1(in_planes, planes, stride) if stride != 1 or in_planes != planes else None
        self.drop_path = drop_branch(drop_path)
        self.final_bn = nn.BatchNorm2d(planes) if final_activation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        out = self.drop_path(out) + identity
        return out if self.final_bn is None else self.relu(self.final_bn(out))


class PreActResNet(Network):
    """A stem convolution, one stage of blocks per entry of `layers` (the first at stride 1, the rest at 2),
    the last block ending with a BN-ReLU, then average pooling and a classifier.

    stem="cifar" is a 3x3 stride-1 convolution; stem="imagenet" is ResNet's 7x7
    stride-2 convolution and 3x3 stride-2 max-pool, for larger images. Neither has
    a BN-ReLU after it (see the module docstring). drop_path is the stochastic-depth
    rate of the last block (see `drop_path_rates`).

    The arguments before `*` fix the architecture and are set by the registry or by
    WideResNet: `stem_width` defaults to the first stage's width, and `dropout`
    (0: none) is exposed as an option only by WideResNet.
    """

    def __init__(
        self,
        block: type[PreActBlock],
        layers: Sequence[int],
        widths: Sequence[int],
        stem_width: int | None = None,
        dropout: float = 0.0,
        *,
        num_classes: int = 10,
        stem: str = "cifar",
        drop_path: float = 0.0,
        in_channels: int = 3,
    ):
        super().__init__()
        if stem not in STEMS:
            raise UserError(f"Unknown stem {stem!r}; choose one of: {', '.join(STEMS)}.")
        check_probability("dropout", dropout)
        check_num_classes(num_classes)
        width = widths[0] if stem_width is None else stem_width
        if stem == "cifar":
            self.conv1 = conv3x3(in_channels, width)
            self.maxpool = nn.Identity()
            self.stem_description = "conv3x3"
        else:
            self.conv1, self.maxpool = imagenet_stem(in_channels, width)
            self.stem_description = "conv7x7/2+maxpool"

        self.in_planes = width
        for index, (planes, rates) in enumerate(zip(widths, drop_path_rates(drop_path, layers))):
            last = index == len(layers) - 1
            self.add_stage(f"layer{index + 1}",
                           self._make_layer(block, planes, rates, 1 if index == 0 else 2, dropout, last))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head_description = "avgpool+fc"
        self.num_features = self.in_planes
        self.fc = nn.Linear(self.num_features, num_classes)

        init_weights(self)

    def _make_layer(self, block: type[PreActBlock], planes: int, drop_rates: list[float], stride: int,
                    dropout: float, last_stage: bool) -> nn.Sequential:
        """One block per entry of drop_rates, the first with the stage's stride; the last stage's last block
        carries the network's final BN-ReLU."""
        stage = []
        for index, rate in enumerate(drop_rates):
            final = last_stage and index == len(drop_rates) - 1
            stage.append(block(self.in_planes, planes, stride if index == 0 else 1, dropout, rate, final))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*stage)

    def stem_layers(self) -> list[nn.Module]:
        return [self.conv1, self.maxpool]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.conv1(x))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(x), 1)


# ResNet-18 and -34's stages and widths (64..512), with pre-activation blocks.
register_model("preactresnet18", PreActResNet, "pre-act", recipe="resnet18", stems=STEMS,
               block=PreActBlock, layers=(2, 2, 2, 2), widths=(64, 128, 256, 512))
register_model("preactresnet34", PreActResNet, "pre-act", recipe="resnet18", stems=STEMS,
               block=PreActBlock, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512))
