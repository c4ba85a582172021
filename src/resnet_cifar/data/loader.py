"""Batches from a split held whole on the device, augmented a batch at a time.

CIFAR is small enough to live on the GPU (150 MB as uint8), so instead of a
DataLoader decoding and transforming images one by one in worker processes,
the whole split sits on the device and each batch is made by a handful of
tensor operations there (the airbench approach):

  1. crop and flip are one gather: for every output pixel we compute which
     source pixel it comes from (shifted, mirrored, reflected at the border or
     pointing at a black pixel for zero padding) and fetch them all at once;
     the output may be smaller than the image (`crop_size`);
  2. an augmentation policy (AutoAugment, RandAugment, TrivialAugmentWide)
     transforms the uint8 batch, each image by its own draw;
  3. the uint8 pixels become float32, normalised as the run's `Preprocessing` says,
     then each image's brightness and contrast jittered when asked;
  4. cutout zeroes a square per image and random erasing a box (after
     normalisation, so they take the mean colour, as in DeVries & Taylor 2017);
  5. the preprocessing's resize feeds models that expect larger inputs.

Pixels are stored packed, one int32 (R, G, B and a spare byte) per pixel, so the
gather moves whole pixels rather than single bytes: about ten times faster on a
CPU, for a third more memory than plain uint8.

All randomness of an epoch (the permutation, shifts, flips, cutout positions,
the policy's, the jitter's and the erasing's draws) is drawn up front from (seed, epoch) on the
CPU, each kind from its own stream, and copied to the device once,
so a batch depends only on (seed, epoch, batch index): `epoch(e, start_batch=k)`
resumes mid-epoch exactly, and CPU and GPU draw the same random choices.
Nothing in the per-batch path copies to or from the host or waits for
the device.
"""
from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum

import numpy as np
import torch

from resnet_cifar.choices import FLIPS, PADDING_MODES
from resnet_cifar.data.splits import Split
from resnet_cifar.data.augment import AugmentPolicy, ColorJitter, RandomErasing, box_mask
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError


class Stream(IntEnum):
    """Every random stream of a run, one table: each draws from numpy's generator seeded [seed, epoch, stream],
    so each is independent of the others and of how many draws the others made. The alternate-flip choice is
    drawn once, at epoch 0, for the whole run; the batch mixing (resnet_cifar.train.mixing) lives outside the loader."""

    EPOCH = 0  # the order of the images and their crops
    FLIP = 1
    POLICY = 2
    ERASING = 3
    MIXING = 4
    JITTER = 5


class Loader:
    """Normalised float32 batches (x, y) of one split on `device`; see docs/architecture.md for the contract."""

    def __init__(self, split: Split, *, batch_size: int, device: str | torch.device, preprocessing: Preprocessing,
                 train: bool, crop_padding: int = 0, padding_mode: str = "reflect", flip: str = "none", cutout: int = 0,
                 policy: AugmentPolicy | None = None, erasing: RandomErasing | None = None,
                 jitter: ColorJitter | None = None,
                 channels_last: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        n, channels, height, width = split.images.shape
        _check_settings(channels, height, width, batch_size, crop_padding, padding_mode, flip, cutout, rank, world_size)
        self.device = torch.device(device)
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.train = train
        self.crop_padding = crop_padding if train else 0
        self.padding_mode = padding_mode
        self.flip = flip if train else "none"
        self.cutout = cutout if train else 0
        self.policy = policy if train and policy is not None and policy.steps else None
        self.erasing = erasing if train and erasing is not None and erasing.p > 0 else None
        self.jitter = jitter if train and jitter is not None and jitter.active else None
        self.channels_last = channels_last
        self.seed = seed % 2**64
        self.rank = rank
        self.world_size = world_size
        self.size = n
        self.height, self.width = height, width

        # One int32 per pixel (bytes R, G, B, 0), flattened, plus a black pixel at the
        # end that zero padding points to.
        packed = torch.zeros(n * height * width + 1, 4, dtype=torch.uint8, device=self.device)
        packed[:-1, :3] = split.images.to(self.device).permute(0, 2, 3, 1).reshape(-1, 3)
        self._pixels = packed.view(torch.int32).view(-1)
        self._labels = split.labels.to(self.device)
        self._scale, self._shift = preprocessing.scale_and_shift(self.device)  # normalisation as one multiply-add
        self._rows = torch.arange(height, device=self.device)
        self._cols = torch.arange(width, device=self.device)
        if self.train and len(self) == 0:
            raise UserError(f"The batch size {batch_size} is larger than this rank's share of the training split "
                            f"({n} images over {world_size} process(es)); use a smaller --batch-size.")

    def _share_size(self) -> int:
        """Samples of one epoch that fall to this rank (before dropping a partial batch)."""
        if self.train:
            return self.size // self.world_size
        return len(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        share = self._share_size()
        return share // self.batch_size if self.train else -(-share // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.train else self._share_size()

    def epoch(self, epoch: int, start_batch: int = 0, crop_size: int | None = None
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of `epoch` from batch `start_batch` on.

        `crop_size` (training only): each image becomes a random crop_size x crop_size
        window of the padded image instead of a full-size one, so the step is cheaper
        while objects keep their scale (the network pools globally, so any size fits).
        """
        if crop_size is not None and not (self.train and 0 < crop_size <= min(self.height, self.width)):
            raise UserError(f"A crop size of {crop_size} needs a training split with images at least that large "
                            f"(these are {self.height}x{self.width}).")
        size = (crop_size or self.height, crop_size or self.width)
        plan = self._plan(epoch, size)
        policy_plan = self._draws(epoch, Stream.POLICY, self.policy)
        erasing_plan = self._draws(epoch, Stream.ERASING, self.erasing)
        jitter_plan = self._draws(epoch, Stream.JITTER, self.jitter)
        for k in range(start_batch, len(self)):
            part = slice(k * self.batch_size, (k + 1) * self.batch_size)
            yield self._batch(plan[:, part], size, *(draws[:, part] if draws is not None else None
                                                     for draws in (policy_plan, erasing_plan, jitter_plan)))

    def _draws(self, epoch: int, stream: int, augmentation: AugmentPolicy | RandomErasing | ColorJitter | None
               ) -> torch.Tensor | None:
        """An augmentation's draws for this rank's samples of `epoch` (one column per sample), on the device."""
        if augmentation is None:
            return None
        draws = augmentation.plan(np.random.default_rng([self.seed, epoch, stream]), self.size)
        usable = self.size - self.size % self.world_size
        return torch.from_numpy(np.ascontiguousarray(draws[:, self.rank:usable:self.world_size])).to(self.device)

    def _plan(self, epoch: int, size: tuple[int, int]) -> torch.Tensor:
        """int64 [6, share]: index, row offset, column offset, flip, cutout row and column per sample of this rank."""
        n = self.size
        if not self.train:
            order = np.arange(self.rank, n, self.world_size)
            return torch.from_numpy(np.stack([order] + [np.zeros_like(order)] * 5)).to(self.device)
        rng = np.random.default_rng([self.seed, epoch, Stream.EPOCH])
        p = self.crop_padding
        order = rng.permutation(n)
        dy = rng.integers(-p, self.height - size[0] + p + 1, n)
        dx = rng.integers(-p, self.width - size[1] + p + 1, n)
        if self.flip == "random":
            flip = rng.integers(0, 2, n)
        elif self.flip == "alternate":
            # airbench: a fixed random choice per image, inverted on odd epochs, so each
            # image is seen both ways in every pair of epochs.
            base = np.random.default_rng([self.seed, 0, Stream.FLIP]).integers(0, 2, n)
            flip = base[order] ^ (epoch % 2)
        else:
            flip = np.zeros(n, dtype=np.int64)
        cy, cx = rng.integers(0, size[0], n), rng.integers(0, size[1], n)
        # Every rank draws the same plan and takes every world_size-th sample: disjoint shares, equal sizes.
        usable = n - n % self.world_size
        plan = np.stack([order, dy, dx, flip, cy, cx])[:, self.rank:usable:self.world_size]
        return torch.from_numpy(np.ascontiguousarray(plan)).to(self.device)

    def _batch(self, plan: torch.Tensor, size: tuple[int, int], policy_plan: torch.Tensor | None,
               erasing_plan: torch.Tensor | None, jitter_plan: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        index, dy, dx, flip, cy, cx = plan
        b, h, w = len(index), self.height, self.width
        (oh, ow), out_rows, out_cols = size, self._rows[:size[0]], self._cols[:size[1]]
        rows = out_rows + dy[:, None]  # [B, oh] source row of each output row
        cols = torch.where(flip[:, None].bool(), ow - 1 - out_cols, out_cols) + dx[:, None]  # [B, ow]; a flip mirrors the window
        if self.crop_padding and self.padding_mode == "reflect":
            rows, cols = _reflect(rows, h), _reflect(cols, w)
        source = (index[:, None] * (h * w) + rows.clamp(0, h - 1) * w)[:, :, None] + cols.clamp(0, w - 1)[:, None, :]
        if self.crop_padding and self.padding_mode == "zeros":
            inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
            source = torch.where(inside, source, len(self._pixels) - 1)
        pixels = self._pixels[source].view(torch.uint8).view(b, oh, ow, 4)  #: R, G, B, spare byte

        images = pixels.permute(0, 3, 1, 2)[:, :3]
        if self.policy is not None:
            images = self.policy.apply(images.contiguous(), policy_plan)
        x = torch.empty(b, 3, oh, ow, dtype=torch.float32, device=self.device)
        x.copy_(images)
        x.view(b, 3, oh * ow).mul_(self._scale).add_(self._shift)
        if self.jitter is not None:
            self.jitter.apply(x, jitter_plan)
        if self.cutout:
            x.masked_fill_(box_mask(cy - self.cutout // 2, cx - self.cutout // 2, self.cutout, self.cutout, oh, ow), 0.0)
        if self.erasing is not None:
            x = self.erasing.apply(x, erasing_plan)
        x = self.preprocessing.resize(x).contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        return x, self._labels[index]


def _reflect(positions: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror positions outside [0, size) back inside without repeating the edge (like np.pad 'reflect')."""
    positions = positions.abs()
    return torch.where(positions >= size, 2 * (size - 1) - positions, positions)


def _check_settings(channels: int, height: int, width: int, batch_size: int, crop_padding: int, padding_mode: str,
                    flip: str, cutout: int, rank: int, world_size: int) -> None:
    if channels != 3:
        raise UserError(f"The loader needs RGB images [N, 3, H, W], not {channels} channels.")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {batch_size}.")
    if flip not in FLIPS:
        raise UserError(f"flip must be one of {', '.join(FLIPS)}, not {flip!r}.")
    if padding_mode not in PADDING_MODES:
        raise UserError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, not {padding_mode!r}.")
    if not 0 <= crop_padding < min(height, width):
        raise UserError(f"crop_padding must be between 0 and {min(height, width) - 1} pixels, not {crop_padding}.")
    if cutout < 0:
        raise UserError(f"cutout must be 0 (off) or a square size in pixels, not {cutout}.")
    if not 0 <= rank < world_size:
        raise UserError(f"rank {rank} is outside 0..{world_size - 1} for world_size {world_size}.")
