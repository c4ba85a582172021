"""An exponential moving average of the weights, which usually validates better than the weights themselves.

Every floating-point entry of the state_dict is averaged, BatchNorm statistics
included, so the average is a consistent network; integer buffers are copied.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        own, live = self.module.state_dict(), model.state_dict()
        self._float_pairs = [(own[k], live[k]) for k in own if own[k].is_floating_point()]
        self._other_pairs = [(own[k], live[k]) for k in own if not own[k].is_floating_point()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move toward the live weights; early on the decay is lower, so the average soon forgets the initialisation."""
        decay = min(self.decay, (1 + step) / (10 + step))
        averages = [average for average, _ in self._float_pairs]
        torch._foreach_lerp_(averages, [live for _, live in self._float_pairs], 1 - decay)
        for average, live in self._other_pairs:
            average.copy_(live)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state_dict)
