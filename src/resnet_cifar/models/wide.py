"""Wide ResNets (Zagoruyko and Komodakis 2016, "Wide Residual Networks").

WRN-d-k is a pre-activation ResNet (preact.py) made shallower and k times wider:
a 16-filter stem, then three stages of n = (d - 4) / 6 basic blocks with 16k, 32k
and 64k filters (feature maps 32x32, 16x16, 8x8). The paper's point is that width
is the cheaper way to capacity on CIFAR: WRN-28-10 is more accurate than the
1001-layer pre-activation ResNet at a thirty-sixth of its depth, and trains faster,
because wide convolutions keep a GPU busy where a thousand thin layers run one
after another. Dropout between the two convolutions of each block (0.3 in the paper's CIFAR
runs) regularises the extra width.
"""
from __future__ import annotations

from resnet_cifar.errors import UserError
from resnet_cifar.models.preact import PreActBlock, PreActResNet
from resnet_cifar.models.registry import register_model

STEM_WIDTH = 16
STAGE_WIDTHS = (16, 32, 64)  # multiplied by the width factor k


class WideResNet(PreActResNet):
    """WRN-depth-width_factor with dropout (0: none) between the convolutions of each block.

    Only the 3x3 "cifar" stem exists: the paper designs these networks for 32x32 images.
    """

    def __init__(
        self,
        depth: int,
        width_factor: int,
        *,
        num_classes: int = 10,
        stem: str = "cifar",
        dropout: float = 0.0,
        drop_path: float = 0.0,
        in_channels: int = 3,
    ):
        blocks, rest = divmod(depth - 4, 6)
        if rest or blocks < 1:
            raise ValueError(f"A Wide ResNet's depth is 6n+4 with n >= 1; got {depth}.")
        if stem != "cifar":
            raise UserError(f"Unknown stem {stem!r} for this network: it is built for 32x32 images and has only "
                            "the 'cifar' stem.")
        widths = tuple(width * width_factor for width in STAGE_WIDTHS)
        super().__init__(PreActBlock, (blocks,) * 3, widths, stem_width=STEM_WIDTH, dropout=dropout,
                         num_classes=num_classes, stem=stem, drop_path=drop_path, in_channels=in_channels)


register_model("wrn16_8", WideResNet, "wide", recipe="wrn28_10", depth=16, width_factor=8)
register_model("wrn28_10", WideResNet, "wide", recipe="wrn28_10", depth=28, width_factor=10)
