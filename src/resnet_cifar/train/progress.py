"""What the user sees while training: a bar per epoch on a terminal, one line per epoch in a log file.

Only the main process shows anything. The run's ETA counts from this process's
start, so a resumed run estimates from its own pace.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

from resnet_cifar.train.engine import EpochTotals


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    def __init__(self, epochs: int, steps_per_epoch: int, first_step: int, *, enabled: bool, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = enabled and self.stream.isatty()
        self.epochs = epochs
        self.total_steps = epochs * steps_per_epoch
        self.steps_per_epoch = steps_per_epoch
        self.first_step = first_step
        self.started = time.monotonic()
        self.bar: tqdm | None = None

    def eta(self, step: int) -> float:
        done = step - self.first_step
        return (time.monotonic() - self.started) / done * (self.total_steps - step) if done else 0.0

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
