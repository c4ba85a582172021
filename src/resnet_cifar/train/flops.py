"""Training FLOPs of a run, counted by torch: the figure speed records compare.

A training step's FLOPs are its forward and backward passes plus the
optimizer's own work (Muon's orthogonalisation), counted by FlopCounterMode on
the engine's real step of a run built by `build_run`, so the count follows the
code, hooks included. A multiply-add counts 2 FLOPs. The cost per image is not
constant through a run: early_crop_epochs train on smaller windows, and a recipe
hook may freeze a parameter mid-run (the whitened stem's bias), after which
backward computes less; so each epoch is counted step by step, each distinct
kind of step once.
"""
from __future__ import annotations

import dataclasses

import torch
from torch.utils.flop_counter import FlopCounterMode

from resnet_cifar.config import TrainConfig, train_crop_size
from resnet_cifar.data import Dataset, Split
from resnet_cifar.train.build import Run, build_run
from resnet_cifar.world import World

# Images of the training split the count assumes: CIFAR's 50,000 less the default 5,000 held out.
TRAIN_IMAGES = 45_000
# Steps are counted on batches of these two sizes, which separates the cost per image from the optimizer's per step.
SMALL, LARGE = 2, 4
CLASSES = 10


def epoch_flops_per_image(config: TrainConfig, train_images: int = TRAIN_IMAGES) -> list[float]:
    """Training FLOPs per training image in each epoch of the run (multiply by the images of an epoch)."""
    steps_per_epoch = train_images // config.batch_size
    # The same run at a tiny batch on the CPU, with as many steps per epoch as the real one, so hooks that act
    # at a step act at the same point of each epoch.
    small = dataclasses.replace(config, batch_size=SMALL, device="cpu", val_split=0, compile=False, amp="off",
                                sync_bn=False, init_from=None)
    run = build_run(small, World(), _random_dataset(config.image_size, steps_per_epoch * SMALL))
    counted: dict[tuple, float] = {}
    flops = []
    for epoch in range(config.epochs):
        side = config.input_size or train_crop_size(config, epoch) or config.image_size
        total = 0.0
        for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
            for hook in run.engine.hooks:
                hook.before_step(run.engine.optimizer, step)
            kind = (side, tuple(p.requires_grad for p in run.model.parameters()))
            if kind not in counted:
                per_image, per_step = _step_flops(run, step, side)
                counted[kind] = per_image + per_step / config.batch_size
            total += counted[kind]
        flops.append(total / steps_per_epoch)
    return flops


def _step_flops(run: Run, step: int, side: int) -> tuple[float, float]:
    """(FLOPs per image, FLOPs per step regardless of the batch) of the engine's training step `step`."""
    totals = []
    for batch in (SMALL, LARGE):
        x = torch.randn(batch, 3, side, side).contiguous(memory_format=torch.channels_last)
        run.engine.step = step
        counter = FlopCounterMode(display=False)
        with counter:
            run.engine.train_step(x, torch.arange(batch) % CLASSES)
        totals.append(counter.get_total_flops())
    per_image = (totals[1] - totals[0]) / (LARGE - SMALL)
    return per_image, totals[0] - SMALL * per_image


def _random_dataset(side: int, images: int) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (images, 3, side, side), dtype=torch.uint8, generator=generator)
    return Dataset("random", [str(c) for c in range(CLASSES)], train=Split(pixels, torch.arange(images) % CLASSES),
                   mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
