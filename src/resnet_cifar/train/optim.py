"""Optimizers and learning-rate schedules.

The schedule is a pure function of the step, set on the optimizer before every
step: a resumed run needs only the step count to be exactly on track, and no
scheduler object with hidden state can drift from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from resnet_cifar.config import TrainConfig
from resnet_cifar.errors import UserError
from resnet_cifar.train.muon import Muon


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
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
    With stem_bias_epochs the whitened stem's bias is a group of its own, marked
    `stem_bias`, at the BN biases' rate and decay: `apply_schedule` ends its run early.
    """
    scale = config.bn_bias_lr_scale
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine}
    stem_bias = model.conv1.bias if config.stem_bias_epochs is not None else None
    decay, no_decay, scaled, filters = [], [], [], []
    for parameter in model.parameters():
        if not parameter.requires_grad or parameter is stem_bias:
            continue
        if config.optimizer == "muon" and parameter.ndim == 4:
            filters.append(parameter)
        elif scale != 1 and id(parameter) in bn_biases:
            scaled.append(parameter)
        elif not config.weight_decay_bn_bias and parameter.ndim <= 1:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    scaled_decay = config.weight_decay / scale if config.weight_decay_bn_bias else 0.0
    groups = [
        group
        for group in ({"params": decay, "weight_decay": config.weight_decay},
                      {"params": no_decay, "weight_decay": 0.0},
                      {"params": scaled, "weight_decay": scaled_decay, "lr_scale": scale},
                      {"params": [stem_bias] if stem_bias is not None else [], "weight_decay": scaled_decay,
                       "lr_scale": scale, "stem_bias": True},
                      {"params": filters, "weight_decay": 0.0, "orthogonalize": True,
                       "momentum": config.muon_momentum, "lr_scale": config.muon_lr / config.lr})
        if group["params"]
    ]
    if config.optimizer in ("sgd", "muon") and config.nesterov and config.momentum == 0:
        raise UserError("Nesterov momentum (--nesterov) needs --momentum above 0.")
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "muon":
        return Muon(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.AdamW(groups, lr=config.lr)


@dataclass(frozen=True)
class Schedule:
    """Learning rate at each step: a linear warmup from peak/100, then the named decay.

    The whitened stem's bias, when it has a group of its own, instead decays
    linearly from the peak to zero at `stem_bias_steps` (airbench: three epochs).
    It only shifts the stem's outputs, which the first BatchNorm re-centres anyway,
    so it needs only the first epochs; once it is frozen no gradient flows into
    the stem, which spares the first block the cost of its input gradient.
    """

    kind: str  # constant | multistep | cosine | linear
    peak: float
    total_steps: int
    warmup_steps: int = 0
    milestones: tuple[float, ...] = ()  # multistep: fractions of total_steps where lr is divided by 10
    stem_bias_steps: int | None = None

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            start = self.peak / 100
            return start + (self.peak - start) * step / self.warmup_steps
        if self.kind == "multistep":
            return self.peak * 0.1 ** sum(step >= round(m * self.total_steps) for m in self.milestones)
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        if self.kind == "cosine":
            return self.peak * 0.5 * (1 + math.cos(math.pi * progress))
        if self.kind == "linear":
            return self.peak * (1 - progress)
        return self.peak

    def stem_bias(self, step: int) -> float:
        return self.peak * max(1 - step / self.stem_bias_steps, 0.0) if self.stem_bias_steps else 0.0


def build_schedule(config: TrainConfig, steps_per_epoch: int) -> Schedule:
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total)
    stem_bias = None if config.stem_bias_epochs is None else max(round(config.stem_bias_epochs * steps_per_epoch), 1)
    return Schedule(config.schedule, config.lr, total, warmup, tuple(config.milestones), stem_bias)


def apply_schedule(optimizer: torch.optim.Optimizer, schedule: Schedule, step: int) -> float:
    """Set every group's learning rate for `step` and return the base rate.

    A `stem_bias` group whose decay has ended is frozen (requires_grad off), so
    backward stops before the stem from then on.
    """
    lr = schedule(step)
    for group in optimizer.param_groups:
        if group.get("stem_bias"):
            group["lr"] = schedule.stem_bias(step) * group["lr_scale"]
            if group["lr"] == 0:
                for parameter in group["params"]:
                    parameter.requires_grad_(False)
                    parameter.grad = None
        else:
            group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr
