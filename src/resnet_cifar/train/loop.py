"""Loop: the epochs of a built run, from where its state stands to the last one.

Each epoch trains, validates, saves last.pt (and best.pt when validation
improved), rewrites metrics.csv and curves.png and reports one line. A stop
request (Ctrl-C, SIGTERM) ends the loop after the current step with a
checkpoint to resume from; a non-finite loss ends it with the last good one kept.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from resnet_cifar.errors import UserError
from resnet_cifar.evaluation import Metrics, evaluate
from resnet_cifar.runs.writer import RunFolder
from resnet_cifar.train.build import Run
from resnet_cifar.train.engine import Engine, NonFiniteLoss
from resnet_cifar.train.interrupt import StopRequest
from resnet_cifar.train.progress import Progress
from resnet_cifar.train.state import TrainingState


def run_epochs(run: Run, state: TrainingState, rows: list[dict], folder: RunFolder, progress: Progress,
               stop: StopRequest) -> bool:
    """Train the remaining epochs, appending a metrics row per epoch to `rows`; False when stopped early."""
    engine, steps_per_epoch = run.engine, len(run.train_loader)
    for epoch in range(state.epoch, run.config.epochs):
        progress.start_epoch(epoch, state.totals.batches)
        with _stop_on_non_finite_loss(folder, epoch, engine):
            finished = engine.train_epoch(
                run.train_batches(epoch, state.totals.batches), state.totals,
                should_stop=lambda: stop.signal_name is not None,
                on_check=lambda totals, loss, acc: progress.update(totals, loss, acc, engine.step),
            )
            all_ranks, _ = state.totals.of_all_ranks(run.world)
            train_loss, train_acc = all_ranks.mean_loss_and_accuracy()
        if not finished:
            folder.save(state.capture(run, all_ranks), best=False)
            where = f"in epoch {epoch + 1} after batch {all_ranks.batches} of {steps_per_epoch}"
            progress.message(stopped_message(stop.signal_name, where, folder))
            return False
        started = time.monotonic()
        val = validate(run)
        eval_seconds = time.monotonic() - started
        best = state.tally.add_epoch(epoch, all_ranks, val.accuracy if val else None)
        rows.append({"epoch": epoch + 1, "lr": engine.lr, "train_loss": train_loss, "train_acc": train_acc,
                     "val_loss": val.loss if val else None, "val_acc": val.accuracy if val else None,
                     "train_seconds": all_ranks.seconds, "seconds": all_ranks.seconds + eval_seconds})
        state.next_epoch(run)
        folder.save(state.capture(run), best=best)
        folder.write_metrics(rows)
        progress.end_epoch(rows[-1], all_ranks.count / max(all_ranks.seconds, 1e-9), engine.step)
        if run.world.any(stop.signal_name is not None):  # every rank must leave at the same epoch
            progress.message(stopped_message(stop.signal_name, f"after epoch {epoch + 1}", folder))
            return False
    return True


def validate(run: Run) -> Metrics | None:
    """The eval weights on the validation split, with the run's test-time views; None without a split."""
    if run.val_loader is None:
        return None
    return evaluate(run.eval_model, lambda: run.val_loader.epoch(0), run.dataset.num_classes, tta=run.config.tta,
                    tta_fraction=run.config.tta_fraction, amp_dtype=run.engine.amp_dtype, world=run.world)


def stopped_message(signal_name: str | None, where: str, folder: RunFolder) -> str:
    return (f"Stopped by {signal_name} {where}; saved {folder.last}. "
            f"Resume with: resnet-cifar train --resume {folder.path}")


@contextmanager
def _stop_on_non_finite_loss(folder: RunFolder, epoch: int, engine: Engine) -> Iterator[None]:
    """A NaN or infinite loss ends training in one sentence; last.pt, written before this epoch, stays the last good one."""
    try:
        yield
    except NonFiniteLoss as error:
        kept = f"the last good checkpoint {folder.last} was kept" if folder.last.is_file() else "no checkpoint was written"
        raise UserError(f"Training stopped in epoch {epoch + 1} (step {engine.step}) because {error}; {kept}. "
                        "Start again with a lower --lr, --grad-clip 1 or --amp off.") from error
