"""Optimizers and learning-rate schedules.

The schedule is a pure function of the step, set on the optimizer before every
step: a resumed run needs only the step count to be exactly on track, and no
scheduler object with hidden state can drift from it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from resnet_cifar.choices import SCHEDULES
from resnet_cifar.config import TrainConfig
from resnet_cifar.train.muon import Muon


def build_optimizer(model: nn.Module, config: TrainConfig,
                    hook_groups: Sequence[dict[str, Any]] = ()) -> torch.optim.Optimizer:
    """The optimizer of `config`, with BatchNorm weights and biases out of weight decay when asked.

    Weight decay on a BN scale or a bias only shrinks a value the next layer's
    normalisation undoes, so fast recipes leave them alone (1-D tensors are exactly these).
    With bn_bias_lr_scale the BatchNorm biases get their own group whose `lr_scale`
    multiplies every learning rate `apply_schedule` sets: a short run has too few steps for
    the biases to move far at the weights' rate (airbench scales them 64x). Their
    weight decay is divided by the same factor, so they decay as much per step as before.
    With `muon`, the convolution filters form one more group, updated by Muon at
    `muon_lr` (as an `lr_scale` of `lr`, so the schedule moves it too) with
    `muon_momentum` and no decay; every other parameter gets SGD as above.
    `hook_groups` are the groups of recipe hooks, which schedule their parameters themselves.
    """
    scale = config.bn_bias_lr_scale
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine}
    owned = {id(p) for group in hook_groups for p in group["params"]}
    decay, no_decay, scaled, filters = [], [], [], []
    for parameter in model.parameters():
        if not parameter.requires_grad or id(parameter) in owned:
            continue
        if config.optimizer == "muon" and parameter.ndim == 4:
            filters.append(parameter)
        elif scale != 1 and id(parameter) in bn_biases:
            scaled.append(parameter)
        elif not config.weight_decay_bn_bias and parameter.ndim <= 1:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [
        group
        for group in ({"params": decay, "weight_decay": config.weight_decay},
                      {"params": no_decay, "weight_decay": 0.0},
                      {"params": scaled, "weight_decay": bn_bias_decay(config), "lr_scale": scale},
                      *hook_groups,
                      {"params": filters, "weight_decay": 0.0, "orthogonalize": True,
                       "momentum": config.muon_momentum, "lr_scale": config.muon_lr / config.lr})
        if group["params"]
    ]
    return OPTIMIZERS[config.optimizer](groups, config)


def bn_bias_decay(config: TrainConfig) -> float:
    """The weight decay of the BatchNorm biases (and of what trains at their rate): divided by their lr scale,
    so they decay as much per step as at the weights' rate; none without weight_decay_bn_bias."""
    return config.weight_decay / config.bn_bias_lr_scale if config.weight_decay_bn_bias else 0.0


# Each name of choices.OPTIMIZERS and how to build it from the groups.
OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]], TrainConfig], torch.optim.Optimizer]] = {
    "sgd": lambda groups, c: torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov),
    "muon": lambda groups, c: Muon(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov),
    "adam": lambda groups, c: torch.optim.Adam(groups, lr=c.lr),
    "adamw": lambda groups, c: torch.optim.AdamW(groups, lr=c.lr),
}


@dataclass(frozen=True)
class Schedule:
    """Learning rate at each step: a linear warmup from peak/100, then the named decay."""

    kind: str  # one of choices.SCHEDULES
    peak: float
    total_steps: int
    warmup_steps: int = 0
    milestones: tuple[float, ...] = ()  # multistep: fractions of total_steps where the lr is multiplied by gamma
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.kind!r}; choose one of: {', '.join(SCHEDULES)}.")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            start = self.peak / 100
            return start + (self.peak - start) * step / self.warmup_steps
        if self.kind == "multistep":
            return self.peak * self.gamma ** sum(step >= round(m * self.total_steps) for m in self.milestones)
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        if self.kind == "cosine":
            return self.peak * 0.5 * (1 + math.cos(math.pi * progress))
        if self.kind == "linear":
            return self.peak * (1 - progress)
        return self.peak


def build_schedule(config: TrainConfig, steps_per_epoch: int) -> Schedule:
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total)
    return Schedule(config.schedule, config.lr, total, warmup, tuple(config.milestones), config.milestone_gamma)


def apply_schedule(optimizer: torch.optim.Optimizer, schedule: Schedule, step: int) -> float:
    """Set every group's learning rate for `step` (the base rate times the group's `lr_scale`) and return the base rate."""
    lr = schedule(step)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr
