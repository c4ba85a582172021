"""airbench94's own recipe on the images `fast` is scored on, measured like for like with a `fast` run.

airbench94's published figures are for all 50,000 CIFAR-10 training images and
the 10,000 test images; `fast` trains on 45,000 and is scored on 5,000 validation
images carved from the training split (no test images are used here). This script
trains airbench94's recipe, as published in its legacy airbench94.py (Jordan 2024),
on exactly the 45,000/5,000 split that `fast` uses for the same seed, built by
`build_run` like any run of ours, so its accuracy and training seconds can be set
beside a `fast` run of that seed (from bench/time_to_accuracy.py, same machine):

- network: airbench's (2x2 whitened stem, three plain conv-pool-BN-GELU-conv-BN-GELU
  groups of 64/256/256 channels, identity-initialised filters, BatchNorm eps 1e-12
  without a learned scale, max-pool, linear, logits / 9): fastresnet8 with the
  plain blocks below, registered for this script only;
- data: CIFAR-10's fixed mean and std, translate by up to 2 pixels (reflect),
  alternating flips, whitening from the first 5,000 training images;
- optimiser: Nesterov SGD, momentum 0.85, lr 11.5 and weight decay 0.0153 per 1,024
  images in airbench's decoupled form on the summed loss (here on the mean loss: lr
  1.5, 0.2% of each weight per step), BN biases at 64x the lr; the stem's bias trains
  for the first 3 of the 9.9 epochs; label smoothing 0.2;
- schedule: batch 1,024, 9.9 epochs, lr from 0.2x to 1x over the first 23% of the
  steps then down to 0.07x; lookahead every 5 steps towards an average whose
  weight grows as 0.95^5 (step / total)^3, taken whole at the end;
- evaluation: 6 views (the image, shifted one pixel up-left and down-right, each
  with its mirror image), the untranslated pair weighted as much as the four shifted.

--epochs E trains the same schedule shortened to E epochs (the stem bias's share
and the lookahead's ramp follow). The default, 0.3 epochs, is a quick check; the
measurement is airbench94's length against a finished `fast` run of the same seed:

    python bench/airbench94_reference.py --epochs 9.9 --seed S --against RUN --data-dir DIR [--device cpu]

Training seconds count the optimiser steps only (as airbench and our trainer do),
not the per-epoch validation without test-time views that follows each epoch. On a
GPU the steps run under bf16 autocast, as our runs' do there (`amp: auto`).
The last line is `RESULT airbench94_acc=... airbench94_train_s=... epochs=... seed=...`,
with --against also `fast_acc=... fast_train_s=... difference=<fast minus airbench94,
points> time_ratio=<airbench94 over fast>`.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from resnet_cifar.config import resolve
from resnet_cifar.data import Loader
from resnet_cifar.models import register_model
from resnet_cifar.models.fast import FastResNet, PoolBlock
from resnet_cifar.runs.layout import RunPaths
from resnet_cifar.runs.reader import read_json
from resnet_cifar.train.build import build_run
from resnet_cifar.train.engine import EpochTotals
from resnet_cifar.train.hooks import RecipeHook
from resnet_cifar.world import World, resolve_device

NETWORK = "bench-airbench94-net"  # registered by this script, for this script
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
EPOCHS = 9.9
BATCH = 1024
MOMENTUM = 0.85
LR_PER_1024 = 11.5
WD_PER_1024 = 0.0153
# airbench's decoupled units: a step of lr on the summed loss of 1,024 images moves as far as
# KILOSTEP steps of PyTorch's coupled SGD would; on the mean loss the rate is BATCH times larger.
KILOSTEP = 1024 * (1 + 1 / (1 - MOMENTUM))
LR = LR_PER_1024 / KILOSTEP * BATCH  # 1.5
WEIGHT_DECAY = WD_PER_1024 * BATCH / KILOSTEP / LR  # lr x wd: 0.2% of each weight per step
STEM_BIAS_EPOCHS = 3
LOOKAHEAD_EVERY = 5

SETTINGS = {
    "model": NETWORK,
    "whiten_stem": True,
    "mean": list(CIFAR_MEAN),
    "std": list(CIFAR_STD),
    "crop_padding": 2,
    "padding_mode": "reflect",
    "flip": "alternate",
    "batch_size": BATCH,
    "optimizer": "sgd",
    "nesterov": True,
    "momentum": MOMENTUM,
    "lr": LR,
    "weight_decay": WEIGHT_DECAY,
    "weight_decay_bn_bias": True,
    "bn_bias_lr_scale": 64.0,
    "label_smoothing": 0.2,
    "val_split": 5000,
}


class PlainBlock(PoolBlock):
    """airbench's ConvGroup: GELU(BN(conv2(x))) with x = GELU(BN(pool(conv1(input)))), no shortcut."""

    def __init__(self, in_planes: int, planes: int):
        super().__init__(in_planes, planes)
        nn.init.dirac_(self.conv2.weight)  # starts as the identity, as airbench initialises every convolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


class AirbenchNetwork(FastResNet):
    """fastresnet8's layout with the plain blocks, and airbench's BatchNorm eps of 1e-12."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = 1e-12


register_model(NETWORK, AirbenchNetwork, "benchmark only: airbench94's network", recipe="fast", cpu_recipe="cpu",
               block=PlainBlock, widths=(64, 256, 256))


@dataclass(frozen=True)
class TriangleSchedule:
    """airbench94's learning rate at each step: 0.2x -> 1x over the first 23% of the steps, then 1x -> 0.07x."""

    peak: float
    total: int

    def __call__(self, step: int) -> float:
        warmup = int(self.total * 0.23)
        if step < warmup:
            frac = step / warmup
            return self.peak * (0.2 * (1 - frac) + frac)
        frac = (step - warmup) / (self.total - warmup)
        return self.peak * ((1 - frac) + 0.07 * frac)


class Lookahead:
    """Every few steps the weights (and BN statistics) move to an average that then replaces them."""

    def __init__(self, model: nn.Module, total: int):
        self.model, self.total = model, total
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, decay: float) -> None:
        state = self.model.state_dict()
        for key, average in self.average.items():
            average.lerp_(state[key], 1 - decay)
            state[key].copy_(average)

    def after_step(self, steps_done: int) -> None:
        if steps_done % LOOKAHEAD_EVERY == 0:
            self.update(0.95**5 * (steps_done / self.total) ** 3)


class AirbenchSteps(RecipeHook):
    """The per-step tricks: the lookahead after every 5th step, the stem's bias frozen after its epochs."""

    def __init__(self, lookahead: Lookahead, stem_bias: nn.Parameter, stem_bias_steps: int):
        self.lookahead, self.stem_bias, self.stem_bias_steps = lookahead, stem_bias, stem_bias_steps

    def before_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        if step > 0:
            self.lookahead.after_step(step)
        if step == self.stem_bias_steps:
            self.stem_bias.requires_grad_(False)
            self.stem_bias.grad = None


@torch.no_grad()
def accuracy(model: nn.Module, loader: Loader, tta: bool) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader.epoch(0):
        logits = model(x)
        if tta:
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
            shifted = (padded[:, :, :32, :32], padded[:, :, 2:, 2:])
            logits = 0.25 * (logits + model(x.flip(3))) + 0.125 * sum(model(s) + model(s.flip(3)) for s in shifted)
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    return correct / total


def train(args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """Final accuracy with 6 test-time views and training seconds; prints each epoch's figures as a JSON line."""
    config = resolve({}, {}, {**SETTINGS, "epochs": math.ceil(args.epochs), "seed": args.seed,
                              "data_dir": str(args.data_dir), "device": str(device)})
    run = build_run(config, World(device=device))
    total = math.ceil(len(run.train_loader) * args.epochs)
    run.engine.schedule = TriangleSchedule(LR, total)
    lookahead = Lookahead(run.model, total)
    run.engine.hooks.append(AirbenchSteps(lookahead, run.model.conv1.bias, round(total * STEM_BIAS_EPOCHS / EPOCHS)))

    seconds = 0.0
    for epoch in range(config.epochs):
        totals = EpochTotals.zeros(device)
        run.engine.train_epoch(run.train_batches(epoch), totals, should_stop=lambda: run.engine.step >= total,
                               on_check=lambda *_: None)
        seconds += totals.seconds
        print(json.dumps({"epoch": epoch + 1, "steps": run.engine.step, "train_s": round(seconds, 1),
                          "val_acc": accuracy(run.model, run.val_loader, tta=False)}), flush=True)
    lookahead.after_step(total)
    lookahead.update(1.0)  # the average, taken whole
    return accuracy(run.model, run.val_loader, tta=True), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=0.3, help=f"the run's length (airbench94's: {EPOCHS}; "
                        "default 0.3, a quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--against", type=Path, help="a finished fast run of the same seed, to compare with")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()

    fast = read_json(RunPaths(args.against).summary) if args.against is not None else None
    acc, seconds = train(args, resolve_device(args.device))
    print(f"seed {args.seed}: airbench94 {acc:.2%} after {seconds:.0f} s of training ({args.epochs} epochs)")
    result = f"airbench94_acc={acc:.4f} airbench94_train_s={seconds:.0f}"
    if fast is not None:
        fast_acc, fast_s = fast["final_val_acc"], fast["train_seconds"]
        print(f"fast, {args.against}: {fast_acc:.2%} after {fast_s:.0f} s of training")
        result += (f" fast_acc={fast_acc:.4f} fast_train_s={fast_s:.0f} difference={100 * (fast_acc - acc):+.2f} "
                   f"time_ratio={seconds / fast_s:.3f}")
    print(f"RESULT {result} epochs={args.epochs} seed={args.seed}")


if __name__ == "__main__":
    main()
