"""Batch-level MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019), as torchvision's classification references do.

Each image is mixed with its neighbour in the batch rolled by one (image i with
image i - 1, torchvision's pairing; the loader shuffles, so neighbours are
random): MixUp blends the two, lam * own + (1 - lam) * partner; CutMix pastes
the partner's pixels into a box. lam is drawn from Beta(alpha, alpha). The
targets become the same mixture of the two one-hot labels, so every row sums
to 1, and `F.cross_entropy(logits, mixed.targets, label_smoothing=eps)` still
applies label smoothing (torch accepts probability targets). With both methods
on, each batch picks one of them with equal chance (torchvision's RandomChoice).

CutMix's box is centred on a random pixel with sides sqrt(1 - lam) of the
image's, and clipped at the image border; lam is then corrected to the share
of pixels that really stayed the image's own, so the targets match the pixels.

Training accuracy under mixing (`mixed_correct`): a prediction counts lam
towards the image's own label and 1 - lam towards its partner's,

    lam * [prediction == own label] + (1 - lam) * [prediction == partner's label],

the definition of the mixup reference code (facebookresearch/mixup-cifar10).
An image whose partner has another label scores at most max(lam, 1 - lam), so
this reads below the accuracy on clean images: compare it only between runs
that mix alike, and judge a model by its validation accuracy.

Like the loader, all draws of an epoch are made up front on the CPU (`plan`),
one per batch, so a batch's mixing depends only on (seed, epoch, batch index):
mid-epoch resume is exact and nothing is copied to or from the device per batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from resnet_cifar.errors import UserError

METHODS = ("mixup", "cutmix")


@dataclass(frozen=True)
class MixDraw:
    """The random choices of one batch."""

    method: str                  # "mixup" or "cutmix"
    lam: float                   # Beta(alpha, alpha) draw: the share of each image that stays its own
    centre: tuple[float, float]  # CutMix's box centre (row, column) as fractions of the image's height and width


@dataclass
class Mixed:
    """A mixed batch: what the loss and the training accuracy need."""

    x: torch.Tensor        # the mixed images, same shape, dtype and memory format as the input
    targets: torch.Tensor  # float32 [B, num_classes], lam on y, 1 - lam on partner_y; rows sum to 1
    y: torch.Tensor        # int64 [B], each image's own label
    partner_y: torch.Tensor  # int64 [B], the label of the image mixed into it
    lam: float             # the share of y in every row (for CutMix, after the box is clipped)


class BatchMixer:
    """MixUp and/or CutMix with their Beta alphas (None: that method off; at least one must be on)."""

    def __init__(self, *, mixup: float | None = None, cutmix: float | None = None) -> None:
        for flag, alpha in (("--mixup", mixup), ("--cutmix", cutmix)):
            if alpha is not None and not alpha > 0:
                raise UserError(f"{flag} must be a positive Beta alpha (1.0 is usual for CutMix, 0.2 to 1.0 for "
                                f"MixUp), not {alpha}; leave it out to turn it off.")
        self.alphas = {method: alpha for method, alpha in zip(METHODS, (mixup, cutmix)) if alpha is not None}
        if not self.alphas:
            raise ValueError("BatchMixer needs a mixup or a cutmix alpha.")

    def plan(self, rng: np.random.Generator, num_batches: int) -> list[MixDraw]:
        """One MixDraw per batch of an epoch, from `rng` in a fixed order."""
        methods = list(self.alphas)
        chosen = rng.integers(0, len(methods), num_batches)
        alphas = np.asarray([self.alphas[methods[k]] for k in chosen], dtype=np.float64)
        lams = rng.beta(alphas, alphas)
        centres = rng.random((num_batches, 2))
        return [MixDraw(methods[k], float(lam), (float(row), float(col)))
                for k, lam, (row, col) in zip(chosen, lams, centres)]

    def mix(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, draw: MixDraw) -> Mixed:
        """Mix the float batch x [B, C, H, W] with labels y [B] as `draw` says."""
        partner_x, partner_y = x.roll(1, 0), y.roll(1, 0)
        if draw.method == "mixup":
            lam = draw.lam
            mixed = x.mul(lam).add_(partner_x, alpha=1.0 - lam)
        else:
            top, left, bottom, right = cutmix_box(draw, x.shape[-2], x.shape[-1])
            lam = 1.0 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])
            mixed = x.clone()
            mixed[..., top:bottom, left:right] = partner_x[..., top:bottom, left:right]
        own = F.one_hot(y, num_classes).float()
        targets = own.mul(lam).add_(F.one_hot(partner_y, num_classes).float(), alpha=1.0 - lam)
        return Mixed(mixed, targets, y, partner_y, lam)


def cutmix_box(draw: MixDraw, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the pasted box, clipped to the image (torchvision's CutMix rule)."""
    centre_row = min(int(draw.centre[0] * height), height - 1)
    centre_col = min(int(draw.centre[1] * width), width - 1)
    half = 0.5 * math.sqrt(1.0 - draw.lam)
    half_h, half_w = int(half * height), int(half * width)
    return (max(centre_row - half_h, 0), max(centre_col - half_w, 0),
            min(centre_row + half_h, height), min(centre_col + half_w, width))


def mixed_correct(logits: torch.Tensor, mixed: Mixed) -> torch.Tensor:
    """0-dim tensor: the batch's correct predictions under mixing (see the module docstring), on the device."""
    predicted = logits.argmax(1)
    return (predicted == mixed.y).sum() * mixed.lam + (predicted == mixed.partner_y).sum() * (1.0 - mixed.lam)
