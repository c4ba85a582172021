"""The hot loop: optimizer steps over one epoch of batches, with totals kept on the device.

Nothing in a step waits for the device: the loss and the correct count are
added to a tensor on the device, and the host reads it about once a second
(for the progress bar and the NaN check) and at the end of the epoch.
Those checks come every so many steps, not seconds, so that all ranks of a
distributed run check at the same step: there each check is one all-reduce that
agrees on the totals and on whether to stop.
`model` is the plain network (its state_dict, EMA and checkpoints); `wrapped`
is what runs the forward pass, the same network or a torch.compile / DDP wrapper of it.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from resnet_cifar.train.distributed import world_size
from resnet_cifar.train.ema import EMA
from resnet_cifar.train.optim import Schedule, apply_schedule

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

    def read(self) -> tuple[float, float]:
        """Mean loss and accuracy over the samples so far (one device sync)."""
        loss_sum, correct = self.sums.tolist()
        if not math.isfinite(loss_sum):
            raise NonFiniteLoss(f"the training loss is {loss_sum}")
        return loss_sum / max(self.count, 1), correct / max(self.count, 1)

    def reduced(self, stop: bool = False) -> tuple["EpochTotals", bool]:
        """The totals of all ranks together (seconds: their mean) and whether any rank asks to stop.

        One all-reduce, so every rank must call it at the same step; a NaN on
        any rank makes the summed loss NaN, so all ranks see it together. In a
        single process: these totals and `stop` unchanged.
        """
        if world_size() == 1:
            return self, stop
        extra = torch.tensor([self.count, float(stop), self.seconds], dtype=torch.float64, device=self.sums.device)
        values = torch.cat([self.sums, extra])
        dist.all_reduce(values)
        count, stops, seconds = values[2:].tolist()
        return EpochTotals(values[:2], round(count), self.batches, seconds / world_size()), stops > 0


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
    step: int = 0
    lr: float = field(init=False, default=0.0)

    def train_epoch(
        self,
        batches,
        totals: EpochTotals,
        should_stop: Callable[[], bool],
        on_check: Callable[[EpochTotals, float, float], None],
    ) -> bool:
        """Run steps until `batches` ends (True) or `should_stop()` says so after a step (False).

        `on_check(totals, mean_loss, accuracy)` is called about once a second with
        all ranks' totals, checked to be finite; NonFiniteLoss is raised when they
        are not. A single process stops at the step `should_stop()` turns true; a
        distributed run at the next check, so that all ranks stop at the same step.
        The caller reads the totals at the end (EpochTotals.reduced).
        """
        device_type = next(self.model.parameters()).device.type
        self.wrapped.train()
        started = time.monotonic()
        seconds_before = totals.seconds
        finished = True
        check_every, since_check, seconds_at_check = 1, 0, totals.seconds
        for x, y in batches:
            self.lr = apply_schedule(self.optimizer, self.schedule, self.step)
            with torch.autocast(device_type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                logits = self.wrapped(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
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
            with torch.no_grad():
                totals.sums[0] += loss.detach() * len(y)
                totals.sums[1] += (logits.argmax(1) == y).sum()
            totals.count += len(y)
            totals.batches += 1
            totals.seconds = seconds_before + time.monotonic() - started
            since_check += 1
            if since_check == check_every:
                everyone, stop = totals.reduced(should_stop())
                on_check(everyone, *everyone.read())
                # Every rank computes the same next interval from the same reduced figures.
                elapsed = everyone.seconds - seconds_at_check
                check_every = max(1, min(2 * check_every, round(check_every * CHECK_EVERY_S / max(elapsed, 1e-9))))
                since_check, seconds_at_check = 0, everyone.seconds
            else:
                stop = world_size() == 1 and should_stop()
            if stop:
                finished = False
                break
        totals.seconds = seconds_before + time.monotonic() - started
        return finished
