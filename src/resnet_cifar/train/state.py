"""State: where a training run stands, captured whole into a checkpoint and restored from one.

A checkpoint holds the inference subset (see resnet_cifar.checkpoint), the
engine's optimisation state (weights, EMA, optimizer, scaler, step), every
random generator, the position (epochs done and the next batch of the epoch
being trained, with that epoch's totals so far) and the run's tally. Restoring
it into freshly built parts continues the run exactly where it stopped.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from resnet_cifar.checkpoint import model_description
from resnet_cifar.errors import UserError
from resnet_cifar.train.build import Run
from resnet_cifar.train.engine import EpochTotals
from resnet_cifar.train.rng import rng_state, set_rng_state


@dataclasses.dataclass
class RunTally:
    """What the run has achieved so far; kept in every checkpoint so a resumed run continues the count."""

    best_val_acc: float = -1.0
    best_epoch: int = 0  # 1-based; 0: no validation yet
    train_seconds: float = 0.0
    train_images: int = 0

    def add_epoch(self, epoch: int, totals: EpochTotals, val_acc: float | None) -> bool:
        """Count a finished epoch (all ranks' totals); True when its validation accuracy is the best so far."""
        self.train_seconds += totals.seconds
        self.train_images += totals.count
        best = val_acc is not None and val_acc > self.best_val_acc
        if best:
            self.best_val_acc, self.best_epoch = val_acc, epoch + 1
        return best


@dataclasses.dataclass
class TrainingState:
    epoch: int  # epochs done, so also the 0-based index of the epoch being trained
    totals: EpochTotals  # of that epoch so far; `totals.batches` is the next batch to run
    tally: RunTally

    @classmethod
    def start(cls, run: Run) -> "TrainingState":
        return cls(0, EpochTotals.zeros(run.world.device), RunTally())

    def next_epoch(self, run: Run) -> None:
        self.epoch += 1
        self.totals = EpochTotals.zeros(run.world.device)

    def capture(self, run: Run, totals: EpochTotals | None = None) -> dict[str, Any]:
        """The checkpoint of this moment. `totals`: all ranks' totals of the epoch being trained (default:
        this process's, right for one process and for an epoch not begun). All ranks hold the same weights
        and random states, so rank 0's are everyone's."""
        totals = totals or self.totals
        return {
            **model_description(run.config.model, run.model_kwargs, run.dataset.classes, run.preprocessing),
            **run.engine.state_dict(),
            "scheduler": dataclasses.asdict(run.engine.schedule),
            "rng": rng_state(),
            "epoch": self.epoch,
            "batch": totals.batches,
            "epoch_totals": totals.state_dict(),
            "tally": dataclasses.asdict(self.tally),
            "config": dataclasses.asdict(run.config),
        }

    @classmethod
    def restore(cls, run: Run, path: Path, checkpoint: dict[str, Any]) -> "TrainingState":
        """Put the checkpoint's state into the freshly built `run`. RNG last, as building the parts drew from it."""
        classes = run.dataset.classes
        if list(checkpoint["classes"]) != list(classes):
            raise UserError(f"{path} was trained on {len(checkpoint['classes'])} classes, but {run.config.data_dir} "
                            f"has {len(classes)} ({', '.join(classes[:5])}...); resume with the data it was trained on.")
        run.engine.load_state_dict(checkpoint, f"Checkpoint {path}")
        # Checkpoints written before 2026-12-06 keep the batch under "loader" and the tally under "record".
        batch = checkpoint["batch"] if "batch" in checkpoint else checkpoint["loader"]["batch"]
        tally = checkpoint["tally"] if "tally" in checkpoint else checkpoint["record"]
        totals = EpochTotals.from_state_dict(checkpoint["epoch_totals"], batch, run.world)
        set_rng_state(checkpoint["rng"])  # rank 0's, the same as every rank's: all draw the same numbers
        return cls(checkpoint["epoch"], totals, RunTally(**tally))
