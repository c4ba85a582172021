"""What the user sees while training: a bar per epoch on a terminal, one line per epoch in a log file.

Only the main process shows anything. The run's ETA counts from this process's
start, so a resumed run estimates from its own pace. Epochs need not cost the
same (the early small crops): `step_cost(epoch)` names each epoch's kind of step
by its cost relative to a whole-image step. A kind's seconds per step are
measured once an epoch of it has run (training, saving and drawing, all but the
validation); a kind not seen yet is extrapolated from the kind seen most, by
their costs. The ETA is the steps left at those paces, plus the mean validation
time so far for each validation left.
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
        self.step_cost = step_cost
        self.validation_seconds: list[float] = []
        self.paces: dict[float, tuple[float, int]] = {}  # kind of step: (seconds, steps) of its finished epochs
        self.epoch_started, self.epoch_first_step = time.monotonic(), first_step
        self.bar: tqdm | None = None

    def _seconds_per_step(self, kind: float, step: int) -> float | None:
        """The pace of steps of `kind`: measured, else the most measured kind's scaled by cost, else the
        epoch under way's so far; None before any step has run."""
        if kind in self.paces:
            seconds, steps = self.paces[kind]
            return seconds / steps
        if self.paces:
            reference = max(self.paces, key=lambda k: self.paces[k][1])
            seconds, steps = self.paces[reference]
            return seconds / steps * kind / reference
        running = step - self.epoch_first_step
        if not running:
            return None
        pace = (time.monotonic() - self.epoch_started) / running
        return pace * kind / self.step_cost(step // self.steps_per_epoch)

    def eta(self, step: int) -> float:
        """Seconds left for the whole run, validations included, at the pace of this process so far."""
        left = 0.0
        for epoch in range(step // self.steps_per_epoch, self.epochs):
            steps = min((epoch + 1) * self.steps_per_epoch, self.total_steps) - max(epoch * self.steps_per_epoch, step)
            pace = self._seconds_per_step(self.step_cost(epoch), step)
            if pace is None:
                return 0.0
            left += steps * pace
        validations_left = self.epochs - step // self.steps_per_epoch  # an epoch just ended has been validated
        if self.validation_seconds:
            left += sum(self.validation_seconds) / len(self.validation_seconds) * validations_left
        return left

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
        validation = max(row["seconds"] - row.get("train_seconds", row["seconds"]), 0.0)
        self.validation_seconds.append(validation)
        now, kind = time.monotonic(), self.step_cost(row["epoch"] - 1)
        seconds, steps = self.paces.get(kind, (0.0, 0))
        self.paces[kind] = (seconds + now - self.epoch_started - validation, steps + step - self.epoch_first_step)
        self.epoch_started, self.epoch_first_step = now, step
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
