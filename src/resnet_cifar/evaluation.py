"""Honest evaluation: every sample counts once, averages are over samples, one host sync at the end.

The tutorial this project replaces averaged per-batch losses (so a short last
batch weighed as much as a full one) and counted accuracy on whatever the loop
happened to see. Here the totals are accumulated on the device as a confusion
matrix, a summed loss and a top-5 count; all figures derive from those.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from resnet_cifar.config import TTA_MODES
from resnet_cifar.world import World


def tta_logits(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Logits averaged over test-time views of a normalised batch.

    "flip" adds the mirror image; "flip-translate" also adds the batch shifted one
    pixel down-right and its mirror shifted up-left (reflect padding), with the
    unshifted pair weighted as much as the two shifted views together.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"Unknown test-time augmentation {tta!r}; choose one of: {', '.join(TTA_MODES)}.")
    logits = model(x)
    if tta == "none":
        return logits
    logits = 0.5 * (logits + model(x.flip(3)))
    if tta == "flip":
        return logits
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    height, width = x.shape[-2:]
    down_right = padded[:, :, :height, :width]
    up_left = padded[:, :, 2:, 2:].flip(3)
    return 0.5 * logits + 0.25 * (model(down_right) + model(up_left))


@dataclass
class Metrics:
    """Totals over a whole split; rows of `confusion` are true classes, columns predictions."""

    confusion: torch.Tensor  # int64 [C, C], on the CPU
    loss_sum: float
    top5_correct: int

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    @property
    def accuracy(self) -> float:
        return float(self.confusion.diagonal().sum()) / max(self.count, 1)

    @property
    def top5(self) -> float:
        return self.top5_correct / max(self.count, 1)

    @property
    def per_class_accuracy(self) -> list[float]:
        totals = self.confusion.sum(1).clamp(min=1)
        return (self.confusion.diagonal().double() / totals).tolist()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    *,
    tta: str = "none",
    amp_dtype: torch.dtype | None = None,
    world: World | None = None,
) -> Metrics:
    """Loss, top-1/top-5 and the confusion matrix of `model` over normalised batches (x, y).

    Under torchrun (`world` of several processes) each process passes its own
    disjoint share of the split and the totals are summed across processes, so
    the result covers the whole split exactly once.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, top-5 hits
    for x, y in batches:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = tta_logits(model, x, tta)
        logits = logits.float()
        sums[0] += F.cross_entropy(logits, y, reduction="sum")
        top = logits.topk(min(5, num_classes), dim=1).indices
        sums[1] += (top == y[:, None]).any(1).sum()
        confusion += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes * num_classes)
    if world is not None:
        world.sum_(confusion)
        world.sum_(sums)
    model.train(was_training)
    loss_sum, top5 = sums.tolist()
    return Metrics(confusion.view(num_classes, num_classes).cpu(), loss_sum, round(top5))
