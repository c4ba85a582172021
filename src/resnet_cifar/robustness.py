"""Accuracy under corruption: a model on each corruption at each severity, and the mean over them all.

Two sources of corrupted images, never to be confused:
- the published CIFAR-10-C and CIFAR-100-C files (`--dataset cifar10-c`), whose
  figures compare with the literature's;
- corruptions generated here on any split (`--corruptions`, resnet_cifar.data.corruptions),
  with the published parameters but our own code and substitutes, so their
  figures carry the label GENERATED_CORRUPTIONS everywhere and compare only with each other.

Each cell is a whole evaluation (resnet_cifar.evaluation) with the checkpoint's
preprocessing and test-time views, as for the clean images beside it.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from resnet_cifar.choices import CORRUPTIONS, GENERATED_CORRUPTIONS, SEVERITIES
from resnet_cifar.data import Loader, Split
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError
from resnet_cifar.evaluation import evaluate

# Generated corruptions draw their randomness from this seed and each image's index, the same for every run, so
# two checkpoints evaluated on the same split see the very same corrupted images.
CORRUPTION_SEED = 0


@dataclass
class CorruptionTable:
    """Top-1 accuracy per corruption and severity, with the clean accuracy of the same model and views beside it."""

    source: str  # GENERATED_CORRUPTIONS, or the published set's name
    images: int  # per cell
    accuracy: dict[str, dict[int, float]] = field(default_factory=dict)
    clean: float | None = None
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        """The mean corruption accuracy: over every corruption and severity evaluated."""
        cells = [value for row in self.accuracy.values() for value in row.values()]
        return sum(cells) / len(cells)

    def row_mean(self, corruption: str) -> float:
        row = self.accuracy[corruption]
        return sum(row.values()) / len(row)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "images_per_cell": self.images, "mean_accuracy": self.mean,
                "clean_accuracy": self.clean, "seconds": self.seconds,
                "accuracy": {name: {str(s): value for s, value in row.items()} for name, row in self.accuracy.items()}}


def parse_corruptions(text: str) -> list[str]:
    """`all`, or names separated by commas, in CORRUPTIONS' order; a UserError for an unknown name."""
    if text.strip() == "all":
        return list(CORRUPTIONS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown or not names:
        raise UserError(f"Unknown corruption {(unknown or [text])[0]!r} (--corruptions); use all or names from: "
                        f"{', '.join(CORRUPTIONS)}.")
    return [name for name in CORRUPTIONS if name in names]


def parse_severities(text: str) -> list[int]:
    """`1-5`, `3` or `1,3,5`; a UserError for anything else or outside 1 to 5."""
    levels: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, -1)
        if not (match and low <= high and {low, high} <= set(SEVERITIES)):
            raise UserError(f"--severities {text!r} must name severities from 1 to 5, such as 1-5, 3 or 1,3,5.")
        levels.update(range(low, high + 1))
    return sorted(levels)


Evaluator = Callable[[Split], float]


def accuracy_of(model: nn.Module, preprocessing: Preprocessing, *, batch_size: int, device: torch.device, tta: str,
                tta_fraction: float) -> Evaluator:
    """The top-1 accuracy of `model` on a split, prepared and viewed as the checkpoint says."""
    num_classes = len(model.classes)

    def accuracy(split: Split) -> float:
        loader = Loader(split, batch_size=batch_size, device=device, preprocessing=preprocessing, train=False)
        return evaluate(model, lambda: loader.epoch(0), num_classes, tta=tta, tta_fraction=tta_fraction).accuracy
    return accuracy


def generated_table(split: Split, corruptions: list[str], severities: list[int], accuracy: Evaluator,
                    clean: float, device: torch.device, on_row: Callable[[CorruptionTable, str], None]) -> CorruptionTable:
    """Accuracy on `split` under each generated corruption and severity; `on_row` is told of each finished row."""
    from resnet_cifar.data.corruptions import corrupt  # its torch code is needed only here

    table = CorruptionTable(GENERATED_CORRUPTIONS, len(split), clean=clean)
    started = time.monotonic()
    images = split.images.to(device)
    for name in corruptions:
        table.accuracy[name] = {}
        for severity in severities:
            corrupted = corrupt(images, name, severity, seed=CORRUPTION_SEED).cpu()
            table.accuracy[name][severity] = accuracy(Split(corrupted, split.labels))
        table.seconds = time.monotonic() - started
        on_row(table, name)
    return table


def published_table(source: str, read: Callable[[str, int], Split], corruptions: list[str], severities: list[int],
                    accuracy: Evaluator, clean: float | None,
                    on_row: Callable[[CorruptionTable, str], None]) -> CorruptionTable:
    """Accuracy on a published corrupted set; `read(corruption, severity)` gives its images of one cell."""
    table = CorruptionTable(source, 0, clean=clean)
    started = time.monotonic()
    for name in corruptions:
        table.accuracy[name] = {}
        for severity in severities:
            cell = read(name, severity)
            table.images = len(cell)
            table.accuracy[name][severity] = accuracy(cell)
        table.seconds = time.monotonic() - started
        on_row(table, name)
    return table


def header_line(severities: list[int]) -> str:
    return f"{'corruption':<18}" + "".join(f"{s:>8}" for s in severities) + f"{'mean':>9}"


def row_line(table: CorruptionTable, corruption: str) -> str:
    """One line per corruption, starting with its name: its accuracy at each severity, then their mean."""
    row = table.accuracy[corruption]
    return f"{corruption:<18}" + "".join(f"{value:>8.2%}" for value in row.values()) + f"{table.row_mean(corruption):>9.2%}"


def summary_line(table: CorruptionTable) -> str:
    clean = f"{table.clean:.2%}" if table.clean is not None else "not measured"
    return (f"mean corruption accuracy {table.mean:.2%} ({table.source}; clean {clean}), "
            f"{len(table.accuracy)} corruptions x {len(next(iter(table.accuracy.values())))} severities of "
            f"{table.images} images in {table.seconds:.0f} s")
