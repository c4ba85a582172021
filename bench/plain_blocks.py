"""What the shortcut in fastresnet8's blocks costs or gives: the `fast` recipe with airbench's plain blocks.

airbench94 reaches its accuracy with plain blocks (conv, max-pool, BN, GELU,
conv, BN, GELU, both convolutions starting as the identity on their first
channels); fastresnet8 adds its second convolution's branch back onto the
block's input instead. This trains the `fast` recipe, unchanged, on a copy of
fastresnet8 whose blocks are airbench's plain ones (same widths, same FLOPs),
so that the accuracy the issue's target was measured with (airbench94's network
on the CPU) can be told apart from what our network gives on the same data:

    python bench/plain_blocks.py --seed 0 --against /tmp/crop/seed0 [--device cpu] [--data-dir /tmp/cifar-jpeg]

--against is a finished run of the current `fast` recipe on fastresnet8 with the
same seed (from bench/time_to_accuracy.py); its final validation accuracy is the baseline.
The last line is `RESULT difference=<plain minus residual, points> plain_acc=... residual_acc=...`.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch
from torch import nn

from resnet_cifar.cli import main as cli
from resnet_cifar.models import registry
from resnet_cifar.models.fast import FastResNet, PoolBlock

NAME = "airbench-plain8"


class PlainBlock(PoolBlock):
    """airbench's ConvGroup: GELU(BN(conv2(x))) with x = GELU(BN(pool(conv1(input)))), no shortcut."""

    def __init__(self, in_planes: int, planes: int):
        super().__init__(in_planes, planes)
        nn.init.dirac_(self.conv2.weight)  # starts as the identity, as airbench initialises every convolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


def final_accuracy(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv") as f:
        return float(list(csv.DictReader(f))[-1]["val_acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--against", type=Path, required=True, help="a finished fast run of fastresnet8, same seed")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/cifar-jpeg"))
    parser.add_argument("--output", type=Path, default=Path("/tmp/plain-blocks"))
    args = parser.parse_args()

    fast = registry.ARCHITECTURES["fastresnet8"]
    registry.ARCHITECTURES[NAME] = registry.Architecture(PlainBlock, fast.layers, fast.widths, None, "fast", FastResNet)
    run_dir = args.output / f"seed{args.seed}"
    code = cli(["train", "--preset", "fast", "--model", NAME, "--data-dir", str(args.data_dir), "--val-split", "5000",
                "--seed", str(args.seed), "--device", args.device, "--output", str(run_dir), "--overwrite"])
    if code != 0:
        raise SystemExit(f"training failed with exit code {code}")
    plain, residual = final_accuracy(run_dir), final_accuracy(args.against)
    print(f"final validation accuracy, seed {args.seed}: plain blocks {plain:.2%}, fastresnet8 {residual:.2%}")
    print(f"RESULT difference={100 * (plain - residual):+.2f} plain_acc={plain:.4f} residual_acc={residual:.4f} seed={args.seed}")


if __name__ == "__main__":
    main()
