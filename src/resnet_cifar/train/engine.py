"""The hot loop: optimizer steps over one epoch of batches, with totals kept on the device.

Nothing in a step waits for the device: the loss and the correct count are
added to a tensor on the device, and the host reads it about once a second
(for the progress bar and the NaN check) and at the end of the epoch.
Those checks come every so many steps, not seconds, so that all ranks of a
distributed run check at the same step: there each check is one all-reduce that
agrees on the totals and on whether to stop.
`model` is the plain network (its state_dict, EMA and checkpoints); `wrapped`
is what runs the forward pass, the same network or a torch.compile / DDP wrapper of it.
The engine owns the optimisation state (step, optimizer, loss scaler, EMA) and
hands it out and takes it back whole with state_dict / load_state_dict.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnet_cifar.checkpoint import load_model_state, plain_state_dict
from resnet_cifar.train.ema import EMA
from resnet_cifar.train.hooks import RecipeHook
from resnet_cifar.train.mixing import Mixed, mixed_correct
from resnet_cifar.train.optim import Schedule, apply_schedule
from resnet_cifar.world import World

CHECK_EVERY_S = 1.0


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the weights of this epoch are not to be saved."""


@dataclass
class EpochTotals:
    """Running sums of one training epoch; `batches` is also the index of the next batch to run."""

    sums: torch.Tensor  # float64 [2] on the device: summed loss, correct predictions
    count: int = 0
    batches: int = 0
    seconds: float = 0.0

    @classmethod
    def zeros(cls, device: torch.device) -> "EpochTotals":
        return cls(torch.zeros(2, dtype=torch.float64, device=device))

    def mean_loss_and_accuracy(self) -> tuple[float, float]:
        """Mean loss and accuracy over the samples so far (one device sync)."""
        loss_sum, correct = self.sums.tolist()
        if not math.isfinite(loss_sum):
            raise NonFiniteLoss(f"the training loss is {loss_sum}")
        return loss_sum / max(self.count, 1), correct / max(self.count, 1)

    def of_all_ranks(self, world: World, stop: bool = False) -> tuple["EpochTotals", bool]:
        """The totals of all ranks together (seconds: their mean) and whether any rank asks to stop.

        One all-reduce, so every rank must call it at the same step; a NaN on
        any rank makes the summed loss NaN, so all ranks see it together. In a
        single process: these totals and `stop` unchanged.
        """
        if not world.distributed:
            return self, stop
        extra = torch.tensor([self.count, float(stop), self.seconds], dtype=torch.float64, device=self.sums.device)
        values = world.sum_(torch.cat([self.sums, extra]))
        count, stops, seconds = values[2:].tolist()
        return EpochTotals(values[:2], round(count), self.batches, seconds / world.size), stops > 0

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of a partly trained epoch (these are all ranks' totals, see of_all_ranks)."""
        return {"sums": self.sums.cpu(), "count": self.count, "seconds": self.seconds}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], batches: int, world: World) -> "EpochTotals":
        """The saved totals of all ranks, counted once: on rank 0, the other ranks starting from zero."""
        totals = cls(state["sums"].to(world.device), state["count"], batches, state["seconds"])
        if not world.is_main:
            totals.sums.zero_()
            totals.count = 0
        return totals


@dataclass
class Engine:
    model: nn.Module
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    ema: EMA | None = None
    hooks: list[RecipeHook] = field(default_factory=list)
    world: World = field(default_factory=World)
    step: int = 0
    lr: float = field(init=False, default=0.0)

    def state_dict(self) -> dict[str, Any]:
        """The weights (plain names, whatever wraps the model), their average, the optimizer, scaler and step."""
        return {
            "model": plain_state_dict(self.model.state_dict()),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        load_model_state(self.model, state["model"], source)
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = state["step"]

    def train_step(self, x: torch.Tensor, y: torch.Tensor | Mixed) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on the batch (labels, or the soft targets of a mixed batch); returns the (device)
        loss and logits."""
        self.lr = apply_schedule(self.optimizer, self.schedule, self.step)
        for hook in self.hooks:
            hook.before_step(self.optimizer, self.step)
        with torch.autocast(x.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            logits = self.wrapped(x)
        targets = y.targets if isinstance(y, Mixed) else y
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.step)
        return loss, logits

    def train_epoch(
        self,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        totals: EpochTotals,
        should_stop: Callable[[], bool],
        on_check: Callable[[EpochTotals, float, float], None],
    ) -> bool:
        """Run steps until `batches` ends (True) or `should_stop()` says so after a step (False).

        `on_check(totals, mean_loss, accuracy)` is called about once a second with
        all ranks' totals, checked to be finite; NonFiniteLoss is raised when they
        are not. A single process stops at the step `should_stop()` turns true; a
        distributed run at the next check, so that all ranks stop at the same step.
        The caller reads the totals at the end (EpochTotals.of_all_ranks).
        """
        self.wrapped.train()
        started = time.monotonic()
        seconds_before = totals.seconds
        finished = True
        check_every, since_check, seconds_at_check = 1, 0, totals.seconds
        for x, y in batches:
            loss, logits = self.train_step(x, y)
            with torch.no_grad():
                totals.sums[0] += loss.detach() * len(x)
                totals.sums[1] += mixed_correct(logits, y) if isinstance(y, Mixed) else (logits.argmax(1) == y).sum()
            totals.count += len(x)
            totals.batches += 1
            totals.seconds = seconds_before + time.monotonic() - started
            since_check += 1
            if since_check == check_every:
                all_ranks, stop = totals.of_all_ranks(self.world, should_stop())
                on_check(all_ranks, *all_ranks.mean_loss_and_accuracy())
                # Every rank computes the same next interval from the same reduced figures.
                elapsed = all_ranks.seconds - seconds_at_check
                check_every = max(1, min(2 * check_every, round(check_every * CHECK_EVERY_S / max(elapsed, 1e-9))))
                since_check, seconds_at_check = 0, all_ranks.seconds
            else:
                stop = not self.world.distributed and should_stop()
            if stop:
                finished = False
                break
        totals.seconds = seconds_before + time.monotonic() - started
        return finished
