"""Honest evaluation: every sample counts once, averages are over samples, one host sync at the end.

The tutorial this project replaces averaged per-batch losses (so a short last
batch weighed as much as a full one) and counted accuracy on whatever the loop
happened to see. Here the totals are accumulated on the device as a confusion
matrix, a summed loss, a top-5 count and the calibration bins (and, when asked,
the most confident mistakes); all figures derive from those.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from resnet_cifar.choices import TTA_MODES
from resnet_cifar.world import World

# Equal-width confidence bins of the expected calibration error: the 15 of Guo et al. 2017, which most papers report.
CALIBRATION_BINS = 15


def tta_logits(model: nn.Module, x: torch.Tensor, tta: str = "none", plain: torch.Tensor | None = None) -> torch.Tensor:
    """Logits averaged over test-time views of a normalised batch.

    "flip" adds the mirror image; "flip-translate" also adds the batch shifted one
    pixel down-right and its mirror shifted up-left (reflect padding), with the
    unshifted pair weighted as much as the two shifted views together.
    `plain`: the batch's logits without views, when already computed.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"Unknown test-time augmentation {tta!r}; choose one of: {', '.join(TTA_MODES)}.")
    logits = model(x) if plain is None else plain
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


# Forward passes per image of each test-time augmentation: flip-translate is the image, its mirror and two shifts.
TTA_VIEWS = {"none": 1, "flip": 2, "flip-translate": 4}


def views_per_image(tta: str, tta_fraction: float = 1.0) -> float:
    """Forward passes per image with selective TTA: one for every image, the other views for the fraction chosen."""
    return 1 + (TTA_VIEWS[tta] - 1) * tta_fraction


def least_confident(confidence: torch.Tensor, fraction: float) -> torch.Tensor:
    """bool [N]: the `fraction` of images (at least one, for any fraction above 0) with the lowest `confidence`;
    ties go to the earlier image, so the choice depends only on the confidences."""
    count = min(len(confidence), math.ceil(fraction * len(confidence)))
    chosen = torch.zeros(len(confidence), dtype=torch.bool, device=confidence.device)
    chosen[confidence.argsort(stable=True)[:count]] = True
    return chosen


def split_logits(model: nn.Module, batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]], tta: str,
                 tta_fraction: float = 1.0, amp_dtype: torch.dtype | None = None, world: World | None = None
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(float32 logits, labels) of every batch, with test-time views for the `tta_fraction` of the split's images
    that the plain prediction is least sure of (1: every image).

    Selective TTA (hiverge's cifar10-speedrun, 2025): the views change few confident
    predictions, so a quarter of the images get most of their gain for a quarter of
    their cost. The least sure images are chosen over the whole split (over all ranks
    under torchrun), not per batch, so the figures do not depend on the batch size.
    That takes two passes: `batches()` is called once for the plain logits and once
    more for the chosen images' views (an evaluation loader gives the same batches each time).
    """
    def forward(x: torch.Tensor, views: str, plain: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            return tta_logits(model, x, views, plain).float()

    if tta == "none" or tta_fraction >= 1:
        return [(forward(x, tta), y) for x, y in batches()]
    results = [(forward(x, "none"), y) for x, y in batches()]
    confidence = torch.cat([logits.softmax(1).amax(1) for logits, _ in results])
    chosen = _least_confident_of_all(confidence, tta_fraction, world)
    start = 0
    for (x, _), (logits, y) in zip(batches(), results):
        rows = chosen[start:start + len(y)].nonzero().squeeze(1)
        start += len(y)
        if len(rows):
            logits[rows] = forward(x[rows], tta, plain=logits[rows])
    return results


def _least_confident_of_all(confidence: torch.Tensor, fraction: float, world: World | None) -> torch.Tensor:
    """least_confident over the images of every rank, returned for this rank's images in its order."""
    if world is None or not world.distributed:
        return least_confident(confidence, fraction)
    counts = torch.zeros(world.size, dtype=torch.int64, device=confidence.device)
    counts[world.rank] = len(confidence)
    world.sum_(counts)
    offset = int(counts[:world.rank].sum())
    every = torch.zeros(int(counts.sum()), device=confidence.device)
    every[offset:offset + len(confidence)] = confidence
    return least_confident(world.sum_(every), fraction)[offset:offset + len(confidence)]


@dataclass
class Mistake:
    """A misclassified image: its position among the evaluated images, in the order the batches came."""

    index: int
    label: int
    predicted: int
    probability: float  # the predicted class's


@dataclass
class Metrics:
    """Totals over a whole split; rows of `confusion` are true classes, columns predictions."""

    confusion: torch.Tensor  # int64 [C, C], on the CPU
    loss_sum: float
    top5_correct: int
    # float64 [3, CALIBRATION_BINS] on the CPU: images, summed confidence and correct predictions per
    # confidence bin, bin m holding confidences in ((m - 1) / bins, m / bins].
    calibration: torch.Tensor = field(default_factory=lambda: torch.zeros(3, CALIBRATION_BINS, dtype=torch.float64))
    mistakes: list[Mistake] = field(default_factory=list)  # most confident first

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

    @property
    def per_class_recall(self) -> list[float]:
        """The share of each class's images found: the same as its accuracy."""
        return self.per_class_accuracy

    @property
    def per_class_precision(self) -> list[float]:
        """The share of each class's predictions that are right; 0 for a class never predicted."""
        predicted = self.confusion.sum(0).clamp(min=1)
        return (self.confusion.diagonal().double() / predicted).tolist()

    @property
    def per_class_f1(self) -> list[float]:
        """Harmonic mean of precision and recall; 0 where both are 0."""
        return [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(self.per_class_precision, self.per_class_recall)]

    @property
    def ece(self) -> float:
        """Expected calibration error: the gap between accuracy and mean confidence, weighted by each bin's images."""
        images, confidence, correct = self.calibration
        return float((correct - confidence).abs().sum()) / max(self.count, 1)

    @property
    def reliability(self) -> dict[str, list]:
        """Per confidence bin: its upper edge, images, mean confidence and accuracy (None for an empty bin)."""
        images, confidence, correct = self.calibration.tolist()
        return {
            "upper_edge": [(m + 1) / len(images) for m in range(len(images))],
            "images": [round(n) for n in images],
            "confidence": [c / n if n else None for c, n in zip(confidence, images)],
            "accuracy": [k / n if n else None for k, n in zip(correct, images)],
        }


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    num_classes: int,
    *,
    tta: str = "none",
    tta_fraction: float = 1.0,
    amp_dtype: torch.dtype | None = None,
    world: World | None = None,
    mistakes: int = 0,
) -> Metrics:
    """Loss, top-1/top-5, the confusion matrix and calibration of `model` over the normalised batches (x, y) that
    `batches()` yields (see split_logits for the test-time views and why it is a function).

    Under torchrun (`world` of several processes) each process passes its own
    disjoint share of the split and the totals are summed across processes, so
    the result covers the whole split exactly once. `mistakes` > 0 also keeps that many of the most confident
    misclassified images (single process only: their positions are in this
    process's order of batches).
    """
    if mistakes and world is not None and world.distributed:
        raise ValueError("evaluate() keeps mistakes in a single process only; pass mistakes=0 with several processes.")
    was_training = model.training
    model.eval()
    results = split_logits(model, batches, tta, tta_fraction, amp_dtype, world)
    device = world.device if world is not None else results[0][0].device if results else torch.device("cpu")
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, top-5 hits
    calibration = torch.zeros(3, CALIBRATION_BINS, dtype=torch.float64, device=device)
    # The most confident mistakes so far: confidence, and (position, label, prediction) as rows.
    kept_confidence = torch.zeros(0, device=device)
    kept = torch.zeros(0, 3, dtype=torch.int64, device=device)
    seen = 0
    for logits, y in results:
        sums[0] += F.cross_entropy(logits, y, reduction="sum")
        top = logits.topk(min(5, num_classes), dim=1).indices
        sums[1] += (top == y[:, None]).any(1).sum()
        predicted = logits.argmax(1)
        confidence = logits.softmax(1).amax(1)
        confusion += torch.bincount(y * num_classes + predicted, minlength=num_classes * num_classes)
        # A float32 times 15 is exact in float64, so each confidence lands in the bin whose interval holds it.
        bins = (confidence.double() * CALIBRATION_BINS).ceil().long().clamp(1, CALIBRATION_BINS) - 1
        calibration.index_add_(1, bins, torch.stack([torch.ones_like(confidence), confidence,
                                                     (predicted == y).float()]).double())
        if mistakes:
            # Right answers get -1, so they can only be kept while there are too few mistakes; dropped at the end.
            positions = torch.arange(seen, seen + len(y), device=device)
            candidates = torch.cat([kept_confidence, torch.where(predicted == y, -1.0, confidence)])
            rows = torch.cat([kept, torch.stack([positions, y, predicted], 1)])
            order = candidates.topk(min(mistakes, len(candidates))).indices
            kept_confidence, kept = candidates[order], rows[order]
        seen += len(y)
    if world is not None:
        for totals in (confusion, sums, calibration):
            world.sum_(totals)
    model.train(was_training)
    loss_sum, top5 = sums.tolist()
    found = [Mistake(index, label, wrong, p)
             for p, (index, label, wrong) in zip(kept_confidence.tolist(), kept.tolist()) if p >= 0]
    return Metrics(confusion.view(num_classes, num_classes).cpu(), loss_sum, round(top5), calibration.cpu(), found)
