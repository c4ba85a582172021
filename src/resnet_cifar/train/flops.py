"""Training FLOPs of a run, counted by torch: the figure speed records compare.

A training step's FLOPs are its forward and backward passes plus the
optimizer's own work (Muon's orthogonalisation), counted by FlopCounterMode on
one real step, so the count follows the code. A multiply-add counts 2 FLOPs.
The cost per image is not constant through a run: early_crop_epochs train on
smaller windows, and once the whitened stem's bias freezes (stem_bias_epochs)
backward no longer computes the first block's input gradient, so the count is
kept per epoch.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from resnet_cifar.config import TrainConfig, train_crop_size
from resnet_cifar.models import create_model
from resnet_cifar.train.optim import build_optimizer


def step_flops_per_image(config: TrainConfig, *, stem_bias_frozen: bool = False, side: int | None = None) -> float:
    """FLOPs of one training step per image (`side` pixels square, by default the model's input size):
    forward and backward for each image, plus the optimizer step shared out over the `batch_size` images it serves."""
    model = create_model(config.model).train()
    if config.whiten_stem:
        model.conv1.weight.requires_grad_(False)
    optimizer = build_optimizer(model, config)
    if stem_bias_frozen:
        model.conv1.bias.requires_grad_(False)
    side = side or config.input_size or config.image_size
    x, y = torch.randn(2, 3, side, side), torch.zeros(2, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    per_image = counter.get_total_flops() / len(x)
    with counter:
        optimizer.step()
    return per_image + counter.get_total_flops() / config.batch_size


def epoch_flops_per_image(config: TrainConfig) -> list[float]:
    """Training FLOPs per training image in each epoch of the run (multiply by the images of an epoch)."""
    step = functools.cache(functools.partial(step_flops_per_image, config))  # a few distinct steps, each counted once
    flops = []
    for epoch in range(config.epochs):
        side = train_crop_size(config, epoch) if config.input_size is None else None  # input_size resizes every crop
        trained = step(stem_bias_frozen=False, side=side)
        if config.stem_bias_epochs is None:
            flops.append(trained)
            continue
        share = min(max(config.stem_bias_epochs - epoch, 0.0), 1.0)  # of this epoch's steps with the stem's bias learning
        flops.append(trained if share == 1 else share * trained + (1 - share) * step(stem_bias_frozen=True, side=side))
    return flops
