"""Recipe tricks that the generic training knows nothing about, as hooks.

A hook may own parameters: it hands the optimizer their groups (so they stay out
of the generic ones) and sets their learning rate itself before every step,
after the run's schedule has set everyone else's. A hook that freezes a
parameter mid-run says so (`may_freeze_parameters`), so that DistributedDataParallel
looks for parameters without gradients instead of waiting for them.

`recipe_hooks` reads the settings and builds the hooks a run needs; nothing else
in the package names a recipe's trick.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnet_cifar.config import TrainConfig
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.models import Network
from resnet_cifar.train.optim import bn_bias_decay
from resnet_cifar.train.whitening import SAMPLE_IMAGES, whiten


class RecipeHook:
    may_freeze_parameters = False

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups of the parameters this hook schedules itself."""
        return []

    def before_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Called before optimizer step `step` (0-based), after the schedule has set the learning rates."""


class ShortLivedParameter(RecipeHook):
    """A parameter that learns only for the first `steps` steps, at its own rate falling linearly from `peak_lr`
    to zero; then it is frozen (requires_grad off), so backward no longer computes anything for it.

    The `fast` recipe's whitened stem bias (airbench: three epochs): it only shifts the
    stem's outputs, which the first BatchNorm re-centres anyway, so it needs only the
    first epochs; once it is frozen no gradient flows into the stem, which spares the
    first block the cost of its input gradient.
    """

    may_freeze_parameters = True

    def __init__(self, parameter: nn.Parameter, peak_lr: float, weight_decay: float, steps: int) -> None:
        self.parameter = parameter
        self.peak_lr = peak_lr
        self.weight_decay = weight_decay
        self.steps = max(steps, 1)

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.parameter], "weight_decay": self.weight_decay, "lr": self.peak_lr}]

    def lr(self, step: int) -> float:
        return self.peak_lr * max(1 - step / self.steps, 0.0)

    def before_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        group = next(g for g in optimizer.param_groups if any(p is self.parameter for p in g["params"]))
        group["lr"] = self.lr(step)
        if group["lr"] == 0 and self.parameter.requires_grad:
            self.parameter.requires_grad_(False)
            self.parameter.grad = None


def stem_convolution(model: Network) -> nn.Conv2d:
    return next(layer for layer in model.stem_layers() if isinstance(layer, nn.Conv2d))


def recipe_hooks(config: TrainConfig, model: Network, train_images: torch.Tensor, preprocessing: Preprocessing,
                 steps_per_epoch: int) -> list[RecipeHook]:
    """Apply the tricks `config` asks for to `model` before its optimizer exists, and return their hooks.

    Also when resuming: the checkpoint's weights replace the whitened ones, but the
    frozen weights must stay out of the optimizer's groups as they were.
    """
    hooks: list[RecipeHook] = []
    if config.whiten_stem:
        conv = stem_convolution(model)
        whiten(conv, preprocessing.normalize(train_images[:SAMPLE_IMAGES].to(conv.weight.device)))
        if config.stem_bias_epochs is not None and conv.bias is not None:
            # At the BatchNorm biases' rate and with their decay per step.
            hooks.append(ShortLivedParameter(conv.bias, config.lr * config.bn_bias_lr_scale, bn_bias_decay(config),
                                             round(config.stem_bias_epochs * steps_per_epoch)))
    return hooks
