"""The confusion matrix as a CSV table and as a picture with the class names on its axes.

The picture colours each row by the fraction of that true class predicted as each
column, so a rare class's mistakes show as clearly as a common one's; the cells
hold the raw counts when there are few enough classes to read them.
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch

# Above this many classes the counts no longer fit in the cells.
MAX_ANNOTATED_CLASSES = 20


def write_confusion_csv(confusion: torch.Tensor, classes: list[str], path: str | Path) -> None:
    """Rows are true classes, columns predicted classes, cells image counts."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, confusion.tolist()):
            writer.writerow([name, *row])


def plot_confusion(confusion: torch.Tensor, classes: list[str], path: str | Path, title: str) -> None:
    """Write a PNG of `confusion` (int [C, C], rows true classes) with `title` above it."""
    # Imported here: matplotlib takes seconds to import, and only this picture needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(classes)
    fractions = confusion.double() / confusion.sum(1, keepdim=True).clamp(min=1)
    side = min(max(6.0, 0.3 * n + 2.5), 32.0)
    font = 9 if n <= MAX_ANNOTATED_CLASSES else 7
    # Figure + Agg canvas rather than pyplot: no global backend switch, works without a display.
    figure = Figure(figsize=(side, side), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(fractions.numpy(), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of the true class")
    axes.set_xticks(range(n), classes, rotation=90, fontsize=font)
    axes.set_yticks(range(n), classes, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    if n <= MAX_ANNOTATED_CLASSES:
        for (row, column), count in zip(
            ((r, c) for r in range(n) for c in range(n)), confusion.flatten().tolist()
        ):
            if count:
                dark = fractions[row, column] > 0.5
                axes.text(column, row, str(count), ha="center", va="center", fontsize=font - 1,
                          color="white" if dark else "black")
    figure.savefig(path, dpi=100)
