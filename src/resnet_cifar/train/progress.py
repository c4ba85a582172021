"""What the user sees while training: a bar per epoch on a terminal, one line per epoch in a log file.

Only the main process shows anything. The run's ETA counts from this process's
start, so a resumed run estimates from its own pace. Epochs need not cost the
same (the early small crops): `step_cost(epoch)` gives each epoch's cost of a
step relative to the others, and the ETA is the training time per unit of cost
so far times the cost left, plus the mean validation time so far for each
validation left.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from resnet_cifar.train.engine import EpochTotals


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    def __init__(self, epochs: int, steps_per_epoch: int, first_step: int, *, enabled: bool, stream: TextIO | None = None,
                 step_cost: Callable[[int], float] = lambda epoch: 1.0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = enabled and self.stream.isatty()
        self.epochs = epochs
        self.total_steps = epochs * steps_per_epoch
        self.steps_per_epoch = steps_per_epoch
        self.first_step = first_step
        self.step_cost = step_cost
        self.started = time.monotonic()
        self.validation_seconds: list[float] = []
        self.bar: tqdm | None = None

    def _cost(self, start: int, stop: int) -> float:
        """The cost of steps start..stop-1, in units of a step of cost 1."""
        total, step = 0.0, start
        while step < stop:
            epoch_end = min((step // self.steps_per_epoch + 1) * self.steps_per_epoch, stop)
            total += (epoch_end - step) * self.step_cost(step // self.steps_per_epoch)
            step = epoch_end
        return total

    def eta(self, step: int) -> float:
        """Seconds left for the whole run, validations included, at the pace of this process so far."""
        done = self._cost(self.first_step, step)
        if not done:
            return 0.0
        training = time.monotonic() - self.started - sum(self.validation_seconds)
        validations_left = self.epochs - step // self.steps_per_epoch  # an epoch just ended has been validated
        validation = (sum(self.validation_seconds) / len(self.validation_seconds) * validations_left
                      if self.validation_seconds else 0.0)
        return training / done * self._cost(step, self.total_steps) + validation

    def start_epoch(self, epoch: int, start_batch: int) -> None:
        if self.interactive:
            self.bar = tqdm(total=self.steps_per_epoch, initial=start_batch, desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="step", file=self.stream, leave=False, dynamic_ncols=True)

    def update(self, totals: EpochTotals, loss: float, accuracy: float, step: int) -> None:
        if self.bar is not None:
            self.bar.n = totals.batches
            rate = totals.count / max(totals.seconds, 1e-9)
            self.bar.set_postfix_str(
                f"{rate:,.0f} img/s, loss {loss:.3f}, acc {accuracy:.2%}, run ETA {format_duration(self.eta(step))}"
            )

    def end_epoch(self, row: dict, images_per_second: float, step: int) -> None:
        """Report the epoch of metrics `row` (its `seconds` less its `train_seconds` are its validation's)."""
        self.validation_seconds.append(max(row["seconds"] - row.get("train_seconds", row["seconds"]), 0.0))
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        val = "" if row["val_acc"] is None else f"  val loss {row['val_loss']:.4f} acc {row['val_acc']:.2%}"
        self.message(
            f"epoch {row['epoch']}/{self.epochs}  lr {row['lr']:.4g}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.2%}{val}  {row['seconds']:.1f} s  {images_per_second:,.0f} img/s  "
            f"ETA {format_duration(self.eta(step))}"
        )

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            print(text, file=self.stream, flush=True)
