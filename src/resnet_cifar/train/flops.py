"""Training FLOPs of a run, counted by torch: the figure speed records compare.

A training step's FLOPs are its forward and backward passes plus the
optimizer's own work (Muon's orthogonalisation), counted by FlopCounterMode on
one real step, so the count follows the code. A multiply-add counts 2 FLOPs.
The cost per image is not constant through a run: once the whitened stem's bias
freezes (stem_bias_epochs) backward no longer computes the first block's input
gradient, so the count is kept per epoch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from resnet_cifar.config import TrainConfig
from resnet_cifar.models import create_model
from resnet_cifar.train.optim import build_optimizer


def step_flops_per_image(config: TrainConfig, *, stem_bias_frozen: bool = False) -> float:
    """FLOPs of one training step per image: forward and backward for each image, plus the
    optimizer step shared out over the `batch_size` images it serves."""
    model = create_model(config.model).train()
    if config.whiten_stem:
        model.conv1.weight.requires_grad_(False)
    optimizer = build_optimizer(model, config)
    if stem_bias_frozen:
        model.conv1.bias.requires_grad_(False)
    x, y = torch.randn(2, 3, 32, 32), torch.zeros(2, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    per_image = counter.get_total_flops() / len(x)
    with counter:
        optimizer.step()
    return per_image + counter.get_total_flops() / config.batch_size


def epoch_flops_per_image(config: TrainConfig) -> list[float]:
    """Training FLOPs per training image in each epoch of the run (multiply by the images of an epoch)."""
    trained = step_flops_per_image(config)
    if config.stem_bias_epochs is None:
        return [trained] * config.epochs
    frozen = step_flops_per_image(config, stem_bias_frozen=True)
    share = [min(max(config.stem_bias_epochs - epoch, 0.0), 1.0) for epoch in range(config.epochs)]
    return [s * trained + (1 - s) * frozen for s in share]
