"""Pictures of a run: loss and accuracy curves from its metrics.csv rows.

Drawn on a bare matplotlib Figure (the Agg canvas), never through pyplot, so it
works without a display, never opens a window and never blocks training.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from resnet_cifar.files import temporary_beside


def plot_curves(rows: Sequence[dict], path: str | Path) -> None:
    """Loss and accuracy against epoch, train and validation (when there is one), written atomically to `path`."""
    # Imported here, not at the top: matplotlib takes seconds to import, and every
    # `resnet-cifar` command imports this module through the train command.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    epochs = [row["epoch"] for row in rows]
    figure = Figure(figsize=(10, 4), layout="constrained")
    for axes, metric, label in zip(figure.subplots(1, 2), ("loss", "acc"), ("loss", "accuracy")):
        axes.plot(epochs, [row[f"train_{metric}"] for row in rows], marker=".", label="train")
        val = [(row["epoch"], row[f"val_{metric}"]) for row in rows if row[f"val_{metric}"] is not None]
        if val:
            axes.plot(*zip(*val), marker=".", label="validation")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    tmp = temporary_beside(path)
    try:
        figure.savefig(tmp, dpi=100, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
