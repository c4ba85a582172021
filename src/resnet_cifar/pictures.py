"""Pictures for a person to look at: a run's curves, the confusion matrix, calibration, confident mistakes,
Grad-CAM overlays, runs side by side, accuracy under corruption.

Each function writes one PNG, in one step (resnet_cifar.files), so a picture is
never half written. matplotlib is imported inside them, not at the top: it
takes seconds to import, and commands that draw nothing should not pay for it.
They draw on a bare Figure with the Agg canvas, never through pyplot, so nothing
depends on a display or on pyplot's global state.
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_cifar.files import write_atomically

if TYPE_CHECKING:
    import torch

    from resnet_cifar.robustness import CorruptionTable

# A curve: (epoch, mean, std) points; std is None where a single run makes the point.
Curve = list[tuple[int, float, float | None]]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | Path) -> None:
    """Render `figure` as a PNG and write it to `path` whole or not at all."""
    image = io.BytesIO()
    figure.savefig(image, dpi=100, format="png")
    write_atomically(Path(path), image.getvalue())


def _pixels(image: torch.Tensor):
    """uint8 [3, H, W] as the [H, W, 3] array imshow takes."""
    return image.permute(1, 2, 0).cpu().numpy()


def plot_reliability(reliability: dict[str, list], ece: float, path: str | Path, title: str) -> None:
    """Reliability diagram: accuracy against mean confidence per bin, over the share of images per bin.

    A perfectly calibrated model's bars reach the diagonal; the shaded part of each
    bar is its gap to it, and the ECE is those gaps weighted by the bins' images.
    """
    edges = [0.0, *reliability["upper_edge"]]
    width = edges[1] - edges[0]
    centres = [(low + high) / 2 for low, high in zip(edges, edges[1:])]
    filled = [i for i, n in enumerate(reliability["images"]) if n]
    figure = _figure(5, 6)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    accuracy = [reliability["accuracy"][i] for i in filled]
    confidence = [reliability["confidence"][i] for i in filled]
    top.bar([centres[i] for i in filled], accuracy, width=width, edgecolor="black", label="accuracy")
    top.bar([centres[i] for i in filled], [c - a for c, a in zip(confidence, accuracy)], bottom=accuracy,
            width=width, color="red", alpha=0.3, edgecolor="red", hatch="//", label="gap to mean confidence")
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title}\nECE {ece:.2%} ({len(centres)} bins)")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    total = max(sum(reliability["images"]), 1)
    bottom.bar(centres, [n / total for n in reliability["images"]], width=width, edgecolor="black", color="grey")
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_ylabel("share of images")
    bottom.grid(alpha=0.3)
    _save(figure, path)


def plot_mistakes(images: torch.Tensor, mistakes: Sequence[dict[str, Any]], path: str | Path, title: str) -> None:
    """A grid of misclassified images (uint8 [N, 3, H, W]), each captioned with its true and predicted class.

    `mistakes[i]` describes `images[i]`: "true", "predicted" (class names) and "probability".
    """
    columns = max(1, min(4, math.ceil(math.sqrt(len(mistakes)))))
    rows = max(1, math.ceil(len(mistakes) / columns))
    figure = _figure(2.2 * columns, 2.5 * rows + 0.5)
    figure.suptitle(title)
    axes_grid = figure.subplots(rows, columns, squeeze=False).flatten()
    for axes in axes_grid:
        axes.set_axis_off()
    if not mistakes:
        axes_grid[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for axes, image, mistake in zip(axes_grid, images, mistakes):
        axes.imshow(_pixels(image), interpolation="nearest")
        axes.set_title(f"true: {mistake['true']}\npredicted: {mistake['predicted']} {mistake['probability']:.1%}",
                       fontsize=8)
    _save(figure, path)


def plot_gradcam(image: torch.Tensor, cam: torch.Tensor, caption: str, path: str | Path) -> None:
    """The image (uint8 [3, H, W]) beside it with its Grad-CAM map (float [h, w], 0-1) laid over it.

    The map is stretched over the whole image whatever its own resolution, as the
    network's input covered the whole image.
    """
    height, width = image.shape[1:]
    extent = (0, width, height, 0)
    figure = _figure(6, 3.4)
    figure.suptitle(caption)
    left, right = figure.subplots(1, 2)
    left.imshow(_pixels(image), extent=extent, interpolation="nearest")
    left.set_title("image", fontsize=9)
    right.imshow(_pixels(image), extent=extent, interpolation="nearest")
    overlay = right.imshow(cam.cpu().numpy(), extent=extent, cmap="jet", alpha=0.5, vmin=0, vmax=1,
                           interpolation="bilinear")
    right.set_title("Grad-CAM of the predicted class", fontsize=9)
    for axes in (left, right):
        axes.set_axis_off()
    figure.colorbar(overlay, ax=right, shrink=0.8)
    _save(figure, path)


def plot_runs(entries: Sequence[tuple[str, dict[str, Curve]]], path: str | Path) -> None:
    """Loss and accuracy against epoch for several runs at once: validation solid, training dashed.

    Each entry is (label, curves), curves keyed by metrics.csv columns (train_loss,
    val_loss, train_acc, val_acc); where a point has a std (a seed group) a band of
    one std either side shows the spread.
    """
    from matplotlib.ticker import MaxNLocator

    figure = _figure(12, 4.5)
    panels = figure.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(entries))]
    for axes, metric, label in zip(panels, ("loss", "acc"), ("loss", "accuracy")):
        for (name, curves), colour in zip(entries, colours):
            named = axes is not panels[0]  # the legend takes each entry's name from the left panel, once
            for split, style in (("val", "-"), ("train", "--")):
                curve = curves.get(f"{split}_{metric}", [])
                if not curve:
                    continue
                epochs, means, _ = zip(*curve)
                axes.plot(epochs, means, style, marker=".", color=colour, label=None if named else name)
                named = True
                band = [(e, m - s, m + s) for e, m, s in curve if s is not None]
                if band:
                    axes.fill_between(*zip(*band), color=colour, alpha=0.15, linewidth=0)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.set_title(f"{label}: validation solid, training dashed")
        axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=min(len(entries), 3), fontsize=8)
    _save(figure, path)


def plot_curves(rows: Sequence[dict], path: str | Path) -> None:
    """A run's loss and accuracy against epoch, train and validation (when there is one), from its metrics rows."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in rows]
    figure = _figure(10, 4)
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
    _save(figure, path)


# Above this many classes the counts no longer fit in the confusion matrix's cells.
MAX_ANNOTATED_CLASSES = 20


def plot_confusion(confusion: torch.Tensor, classes: list[str], path: str | Path, title: str) -> None:
    """The confusion matrix (int [C, C], rows true classes) with the class names on its axes and `title` above.

    Each row is coloured by the fraction of that true class predicted as each column, so a rare
    class's mistakes show as clearly as a common one's; the cells hold the raw counts when there
    are few enough classes to read them.
    """
    n = len(classes)
    fractions = confusion.double() / confusion.sum(1, keepdim=True).clamp(min=1)
    side = min(max(6.0, 0.3 * n + 2.5), 32.0)
    font = 9 if n <= MAX_ANNOTATED_CLASSES else 7
    figure = _figure(side, side)
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
    _save(figure, path)


def plot_corruptions(table: CorruptionTable, path: str | Path, title: str) -> None:
    """Accuracy per corruption (rows) and severity (columns) as a heatmap, each cell written in, with a mean column
    and the clean accuracy in the subtitle: where a network breaks, at a glance."""
    names = list(table.accuracy)
    severities = list(next(iter(table.accuracy.values())))
    cells = [[table.accuracy[name][s] for s in severities] + [table.row_mean(name)] for name in names]
    figure = _figure(1.0 * len(severities) + 4.5, 0.38 * len(names) + 2.2)
    axes = figure.add_subplot()
    image = axes.imshow(cells, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    figure.colorbar(image, ax=axes, shrink=0.8, label="top-1 accuracy")
    axes.set_xticks(range(len(severities) + 1), [*map(str, severities), "mean"])
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("severity")
    for row, values in enumerate(cells):
        for column, value in enumerate(values):
            axes.text(column, row, f"{100 * value:.1f}", ha="center", va="center", fontsize=8)
    axes.axvline(len(severities) - 0.5, color="white", linewidth=3)
    clean = f"clean {table.clean:.2%}, " if table.clean is not None else ""
    axes.set_title(f"{title}\n{clean}mean corruption accuracy {table.mean:.2%}", fontsize=10)
    _save(figure, path)
