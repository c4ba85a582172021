"""Augmentation policies (AutoAugment, RandAugment, TrivialAugmentWide) and random erasing, per image on whole batches.

torchvision's policies transform one image at a time (applied to a batch tensor
they draw once for the whole batch), which would undo the point of our loader:
the split lives on the device and each batch is made by a handful of tensor
operations there. So the policies are split in two steps:

  1. `plan(rng, n)` draws every random choice of an epoch up front on the CPU
     (per image and per step: the operation, its magnitude bin and its sign),
     like the loader's crop and flip plan; a batch then depends only on its
     slice of the plan, which gives exact mid-epoch resume and the same draws on
     a CPU and a GPU;
  2. `apply(images, plan)` runs each step on the whole batch with one parameter
     per image: all geometric operations (shear, translate, rotate) are one
     nearest-neighbour gather, all colour blends (brightness, colour, contrast,
     sharpness) one blend with a per-image "degenerate" image and weight, and
     posterize, solarize and invert are per-image masks and thresholds; each
     image takes the identity parameters of every operation it did not draw.
     AutoContrast and Equalize have no parameter, so torchvision.transforms.v2's
     own functional ops run on the whole batch and each image keeps its result
     only if it drew them.

The number of kernels per batch is therefore fixed (no grouping by draw, no
loop over images), nothing is copied to or from the host and nothing waits for
the device. On the CPU the results are bit-identical to torchvision's
policies applying the same draws image by image (tested); the op list,
magnitude ranges and AutoAugment's CIFAR-10 policy follow
torchvision.transforms.v2 (`_auto_augment.py`).

Random erasing (Zhong et al. 2017, torchvision's RandomErasing) works the same
way on the normalised float batch, so an erased box takes the mean colour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from resnet_cifar.choices import AUGMENT_POLICIES, MAGNITUDE_BINS
from resnet_cifar.errors import UserError


# The operations, with the range their magnitude m spans over a policy's bins, spread as
# torchvision spreads it: torch.linspace(low, high, bins) in float32 (so TrivialAugmentWide's
# bin 15 shifts by 15.999999 pixels, truncated to 15, as there). "standard" is the space of
# AutoAugment (10 bins) and RandAugment (31 bins), "wide" that of TrivialAugmentWide (31 bins);
# None: no magnitude. Signed ops use -m for half the draws.
#                 standard            wide           signed  what m means
_OPS = {
    "Identity":     (None,              None,           False),  # -
    "ShearX":       ((0.0, 0.3),        (0.0, 0.99),    True),   # x moves by m * y, the top edge fixed
    "ShearY":       ((0.0, 0.3),        (0.0, 0.99),    True),   # y moves by m * x, the left edge fixed
    "TranslateX":   ((0.0, 150 / 331),  (0.0, 32.0),    True),   # pixels right; standard: a share of the width
    "TranslateY":   ((0.0, 150 / 331),  (0.0, 32.0),    True),   # pixels down; standard: a share of the height
    "Rotate":       ((0.0, 30.0),       (0.0, 135.0),   True),   # degrees counter-clockwise about the centre
    "Brightness":   ((0.0, 0.9),        (0.0, 0.99),    True),   # factor 1 + m against black
    "Color":        ((0.0, 0.9),        (0.0, 0.99),    True),   # factor 1 + m against the image in grey
    "Contrast":     ((0.0, 0.9),        (0.0, 0.99),    True),   # factor 1 + m against its mean grey level
    "Sharpness":    ((0.0, 0.9),        (0.0, 0.99),    True),   # factor 1 + m against a 3x3 blur
    "Posterize":    ((8.0, 4.0),        (8.0, 2.0),     False),  # bits kept per channel, rounded to whole bits
    "Solarize":     ((1.0, 0.0),        (1.0, 0.0),     False),  # invert the pixels >= 255 * m
    "AutoContrast": (None,              None,           False),  # stretch each channel to 0..255
    "Equalize":     (None,              None,           False),  # equalise each channel's histogram
    "Invert":       (None,              None,           False),  # 255 - pixel
}
_OP_NAMES = tuple(_OPS)
# RandAugment and TrivialAugmentWide draw uniformly from every op but Invert, which only
# AutoAugment's learned sub-policies use.
_DRAWN_OPS = tuple(_OP_NAMES.index(name) for name in _OP_NAMES if name != "Invert")

# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, as in torchvision): each image draws one of
# these 25 sub-policies, whose two steps (op, probability, magnitude bin of 10) then each
# happen with their probability.
_AUTOAUGMENT_BINS = 10
_CIFAR10_POLICY = (
    (("Invert", 0.1, 0), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 0), ("Equalize", 0.9, 0)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 0), ("Equalize", 0.5, 0)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 0), ("AutoContrast", 0.4, 0)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 0)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 0), ("Equalize", 0.6, 0)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 0)),
    (("AutoContrast", 0.8, 0), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 0)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 0), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 0), ("Invert", 0.1, 0)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 0)),
)

# What a colour blend mixes the image with (its "degenerate" image).
_BLACK, _GREY, _MEAN_GREY, _BLUR = range(4)
_DEGENERATE = {"Brightness": _BLACK, "Color": _GREY, "Contrast": _MEAN_GREY, "Sharpness": _BLUR}


class AugmentPolicy:
    """One of AUGMENT_POLICIES, drawn per image by `plan` and applied to uint8 batches on any device by `apply`.

    A plan has three rows per step (op index into `op_names`, magnitude bin, sign: 1 negates
    a signed op's magnitude) and one column per image: TrivialAugmentWide has one step,
    RandAugment `num_ops`, AutoAugment two (a step that its probability skips is Identity),
    `none` none.
    """

    op_names = _OP_NAMES

    def __init__(self, name: str, *, num_ops: int = 2, magnitude: int = 9) -> None:
        if name not in AUGMENT_POLICIES:
            raise UserError(f"Unknown augmentation policy {name!r}; --augment must be one of {', '.join(AUGMENT_POLICIES)}.")
        if num_ops < 0:
            raise UserError(f"--randaugment-ops must be 0 or more operations per image, not {num_ops}.")
        if not 0 <= magnitude < MAGNITUDE_BINS:
            raise UserError(f"--randaugment-magnitude must be a bin between 0 and {MAGNITUDE_BINS - 1}, "
                            f"not {magnitude}.")
        self.name = name
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.steps = {"none": 0, "autoaugment": 2, "randaugment": num_ops, "trivialaugment": 1}[name]
        self.bins = _AUTOAUGMENT_BINS if name == "autoaugment" else MAGNITUDE_BINS
        self.space = "wide" if name == "trivialaugment" else "standard"
        self._tables: dict[tuple[int, int, torch.device], _Tables] = {}

    def __repr__(self) -> str:
        return f"AugmentPolicy({self.name!r}, num_ops={self.num_ops}, magnitude={self.magnitude})"

    def plan(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """int64 [3 * steps, n]: every random choice for n images, drawn from `rng` in a fixed order."""
        if self.steps == 0:
            return np.zeros((0, n), dtype=np.int64)
        if self.name == "autoaugment":
            ops_and_bins = _draw_autoaugment(rng, n)
        else:
            ops_and_bins = [_draw_uniform(rng, n, self.bins if self.name == "trivialaugment" else None, self.magnitude)
                            for _ in range(self.steps)]
        return np.stack([row for op, magnitude_bin in ops_and_bins
                         for row in (op, magnitude_bin, rng.integers(0, 2, n))]).astype(np.int64)

    def magnitude_of(self, op: str, magnitude_bin: int, sign: int, height: int, width: int) -> float:
        """The magnitude torchvision's policy passes to `op` for this draw (0 for ops without one)."""
        standard, wide, signed = _OPS[op]
        span = wide if self.space == "wide" else standard
        if span is None:
            return 0.0
        low, high = span
        if op in ("TranslateX", "TranslateY") and self.space == "standard":
            # AutoAugment searched translations on 331-pixel images; the standard space scales them to the image.
            high *= width if op == "TranslateX" else height
        m = float(torch.linspace(low, high, self.bins)[magnitude_bin])
        if op == "Posterize":
            m = float(round(m))
        return -m if signed and sign else m

    def apply(self, images: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] augmented by `plan`: this batch's columns of `plan(...)`, as int64 on images' device."""
        if plan.shape != (3 * self.steps, images.shape[0]):
            raise ValueError(f"{self!r} needs a plan of shape {(3 * self.steps, images.shape[0])} for this batch, "
                             f"got {tuple(plan.shape)}.")
        if self.steps == 0:
            return images
        tables = self._tables_for(images.shape[-2], images.shape[-1], images.device)
        for step in range(self.steps):
            op, magnitude_bin, sign = plan[3 * step:3 * step + 3]
            images = _apply_step(images, tables, (op * self.bins + magnitude_bin) * 2 + sign)
        return images

    def _tables_for(self, height: int, width: int, device: torch.device) -> _Tables:
        key = (height, width, device)
        if key not in self._tables:
            self._tables[key] = _Tables.build(self, height, width).to(device)
        return self._tables[key]


def _draw_uniform(rng: np.random.Generator, n: int, bins: int | None, magnitude: int) -> tuple[np.ndarray, np.ndarray]:
    """RandAugment's and TrivialAugmentWide's step: any op but Invert; a random bin, or always `magnitude`."""
    op = np.asarray(_DRAWN_OPS)[rng.integers(0, len(_DRAWN_OPS), n)]
    return op, rng.integers(0, bins, n) if bins else np.full(n, magnitude)


def _draw_autoaugment(rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Both steps of a sub-policy of _CIFAR10_POLICY per image; a step its probability skips becomes Identity."""
    subpolicy = rng.integers(0, len(_CIFAR10_POLICY), n)
    steps = []
    for step in zip(*_CIFAR10_POLICY):
        names, probabilities, bins = zip(*step)
        op = np.asarray([_OP_NAMES.index(name) for name in names])[subpolicy]
        happens = rng.random(n) < np.asarray(probabilities)[subpolicy]
        steps.append((np.where(happens, op, _OP_NAMES.index("Identity")), np.asarray(bins)[subpolicy]))
    return steps


@dataclass
class _Tables:
    """Each op's parameters for every (op, bin, sign) draw, indexed by (op * bins + bin) * 2 + sign, for one image size.

    Every image takes every stage of a step; the ops it did not draw leave it
    unchanged: the identity warp, blend weight 0, mask 255, threshold 256 and no
    AutoContrast or Equalize.
    """

    source: torch.Tensor        # int64 [K, H * W]: the input pixel each output pixel reads (-1: outside, black)
    scale: torch.Tensor         # float32 [K]: blend output = image * scale + weight * what it is blended with
    weight: torch.Tensor        # float32 [K]
    degenerate: torch.Tensor    # int64 [K]: what the blend mixes in, one of _BLACK.._BLUR
    mask: torch.Tensor          # uint8 [K]: bits kept by Posterize
    threshold: torch.Tensor     # int16 [K]: pixels at or above it are inverted (256: none)
    autocontrast: torch.Tensor  # bool [K]
    equalize: torch.Tensor      # bool [K]

    @staticmethod
    def build(policy: AugmentPolicy, height: int, width: int) -> _Tables:
        rows = [_parameters(name, policy.magnitude_of(name, magnitude_bin, sign, height, width), height, width)
                for name in _OP_NAMES for magnitude_bin in range(policy.bins) for sign in (0, 1)]
        warp, scale, weight, degenerate, mask, threshold, autocontrast, equalize = zip(*rows)
        return _Tables(
            source=_source_pixels(torch.tensor(warp, dtype=torch.float32).view(-1, 2, 3), height, width),
            scale=torch.tensor(scale, dtype=torch.float32), weight=torch.tensor(weight, dtype=torch.float32),
            degenerate=torch.tensor(degenerate), mask=torch.tensor(mask, dtype=torch.uint8),
            threshold=torch.tensor(threshold, dtype=torch.int16),
            autocontrast=torch.tensor(autocontrast), equalize=torch.tensor(equalize),
        )

    def to(self, device: torch.device) -> _Tables:
        return _Tables(**{field.name: getattr(self, field.name).to(device) for field in fields(self)})


def _parameters(op: str, m: float, height: int, width: int) -> tuple:
    """(warp, scale, weight, degenerate, mask, threshold, autocontrast, equalize) of `op` with magnitude m."""
    warp, scale, weight, degenerate, mask, threshold = _warp_matrix(op, m, height, width), 1.0, 0.0, _BLACK, 255, 256
    if op in _DEGENERATE:
        factor = 1.0 + m
        degenerate = _DEGENERATE[op]
        # torchvision blends as image * f + degenerate * (1 - f), but sharpens as
        # image + (1 - f) * (blur - image); each is kept so the results match its bit for bit.
        scale, weight = (1.0 if op == "Sharpness" else factor), 1.0 - factor
    elif op == "Posterize":
        mask = (0xFF << (8 - int(m))) & 0xFF
    elif op == "Solarize":
        # torch compares a uint8 image with a Python float in float32.
        threshold = math.ceil(np.float32(255.0 * m))
    elif op == "Invert":
        threshold = 0
    return warp, scale, weight, degenerate, mask, threshold, op == "AutoContrast", op == "Equalize"


def _warp_matrix(op: str, m: float, height: int, width: int) -> list[float]:
    """The op as torchvision's affine/rotate call it: (angle, translate, shear, centre) of `_inverse_affine`."""
    middle, top_left = (0.0, 0.0), (-width / 2, -height / 2)  # centres, in coordinates about the image's middle
    shear = math.degrees(math.atan(m))  # torchvision's policies pass shear factors as angles
    arguments = {
        "ShearX": (0.0, (0.0, 0.0), (shear, 0.0), top_left),
        "ShearY": (0.0, (0.0, 0.0), (0.0, shear), top_left),
        "TranslateX": (0.0, (float(int(m)), 0.0), (0.0, 0.0), middle),  # whole pixels, truncated
        "TranslateY": (0.0, (0.0, float(int(m))), (0.0, 0.0), middle),
        "Rotate": (-m, (0.0, 0.0), (0.0, 0.0), middle),  # rotate() turns the other way from affine()
    }
    return _inverse_affine(*arguments.get(op, (0.0, (0.0, 0.0), (0.0, 0.0), middle)))


def _inverse_affine(angle: float, translate: tuple[float, float], shear: tuple[float, float],
                    centre: tuple[float, float]) -> list[float]:
    """[a, b, c, d, e, f]: the output pixel (x, y) reads the input at (a x + b y + c, d x + e y + f).

    The forward map is T C R Sy Sx C^-1 (shear x, then y, rotate, all about the
    centre, then translate), so its inverse is C (R Sy Sx)^-1 C^-1 T^-1; the
    operations are ordered as in torchvision, so that pixels exactly halfway
    between two sources round the same way.
    """
    rotation, shear_x, shear_y = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = centre, translate
    # R Sy Sx = [[p, q], [r, s]], of determinant 1, so its inverse is [[s, -q], [-r, p]].
    p = math.cos(rotation - shear_y) / math.cos(shear_y)
    q = -(p * math.tan(shear_x) + math.sin(rotation))
    r = math.sin(rotation - shear_y) / math.cos(shear_y)
    s = math.cos(rotation) - r * math.tan(shear_x)
    a, b, d, e = s, -q, -r, p
    return [a, b, cx - a * (cx + tx) - b * (cy + ty), d, e, cy - d * (cx + tx) - e * (cy + ty)]


def _apply_step(images: torch.Tensor, tables: _Tables, draw: torch.Tensor) -> torch.Tensor:
    """One step of the policy, every image with its own draw (index into `tables`)."""
    per_image = (-1, 1, 1, 1)
    images = _warp(images, tables.source[draw])
    images = _blend(images, tables.scale[draw], tables.weight[draw], tables.degenerate[draw])
    images = images & tables.mask[draw].view(per_image)
    inverted = images >= tables.threshold[draw].view(per_image)
    images = images ^ inverted.to(torch.uint8).mul_(255)  # x ^ 255 = 255 - x
    images = _choose(tables.autocontrast[draw], TF.autocontrast(images), images)
    return _choose(tables.equalize[draw], TF.equalize(images), images)


def _choose(chosen: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """`new` for the images where `chosen` [B] is true, else `old`.

    For uint8 on the CPU, torch.where is ten times slower than this sum of products, which is exact:
    one of its terms is always zero.
    """
    chosen = chosen.view(-1, 1, 1, 1)
    return new * chosen + old * ~chosen


def _source_pixels(matrices: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """int64 [K, H * W]: the input pixel that each output pixel of each inverse affine map [K, 2, 3] reads, -1 for
    none (outside the image).

    Found by torchvision's own arithmetic (the grid of its _affine_grid, one map at a
    time, then grid_sample's nearest neighbour, applied to an image of pixel numbers):
    a source exactly halfway between two pixels rounds as its kernels round it on
    this CPU, which differs between CPUs' vector units, so no formula of our own
    could match it everywhere. Done once per image size, not per batch.
    """
    base = torch.empty(1, height, width, 3)
    base[..., 0].copy_(torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, steps=width))
    base[..., 1].copy_(torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, steps=height).unsqueeze_(-1))
    base[..., 2].fill_(1)
    half = torch.tensor([0.5 * width, 0.5 * height])
    grids = torch.cat([base.view(1, height * width, 3).bmm(matrix[None].transpose(1, 2).div(half))
                       for matrix in matrices]).view(-1, height, width, 2)
    numbers = torch.arange(1, height * width + 1, dtype=torch.float32).view(1, 1, height, width)
    found = F.grid_sample(numbers.expand(len(matrices), 1, height, width), grids, mode="nearest",
                          padding_mode="zeros", align_corners=False)
    return found.view(len(matrices), height * width).long() - 1


def _warp(images: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Each image's pixels fetched from `source` [B, H * W] (see _source_pixels) by one gather; black outside."""
    n, channels, h, w = images.shape
    index = source.clamp(min=0).view(n, 1, h * w).expand(n, channels, h * w)
    warped = images.reshape(n, channels, h * w).gather(2, index)
    return warped.view(n, channels, h, w) * (source >= 0).view(n, 1, h, w)


def _blend(images: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, degenerate: torch.Tensor) -> torch.Tensor:
    """image * scale + weight * (what the image is blended with), clamped and truncated as torchvision does."""
    per_image = (-1, 1, 1, 1)
    x = images.float()
    grey = TF.rgb_to_grayscale(images).float()  # torchvision floors the grey level of uint8 images
    kind = degenerate.view(per_image)
    # At most one term is not zero: exact, and faster than torch.where on the CPU.
    mixed_in = (grey * (kind == _GREY) + grey.mean(dim=(1, 2, 3), keepdim=True) * (kind == _MEAN_GREY)
                + (_sharpness_blur(x) - x) * (kind == _BLUR))
    # addcmul rounds once, as torchvision's add(..., alpha=) does.
    out = torch.addcmul(x * scale.view(per_image), mixed_in, weight.view(per_image))
    return out.clamp_(0, 255).to(torch.uint8)


def _sharpness_blur(x: torch.Tensor) -> torch.Tensor:
    """torchvision's Sharpness degenerate: 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13, rounded; the border unchanged.

    The weighted sum is a whole number, so it is exact in float32, and sum / 13 is
    never halfway between integers: rounding it gives exactly torchvision's result.
    """
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    total = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:] + 4 * x[..., 1:-1, 1:-1]
    blurred = x.clone()
    blurred[..., 1:-1, 1:-1] = total.div_(13).round_()
    return blurred


# RandomErasing's box: its area a uniform share of the image within SCALE, its aspect ratio
# (height / width) log-uniform within RATIO; a box that does not fit is drawn again, up to
# ERASING_TRIES times, after which the image is left alone (torchvision's rule).
ERASING_SCALE = (0.02, 0.33)
ERASING_RATIO = (0.3, 3.3)
ERASING_TRIES = 10


class RandomErasing:
    """Zero a random box in each image with probability p, on the normalised float batch (torchvision's RandomErasing).

    The plan is drawn without knowing the image size (the loader may crop), so it
    holds the raw draws, one column per image: [erase?, ERASING_TRIES areas as
    shares of the image, ERASING_TRIES aspect ratios, top and left as fractions of
    the free range]; `apply` turns them into boxes for the batch's size on its
    device.
    """

    def __init__(self, p: float) -> None:
        if not 0 <= p <= 1:
            raise UserError(f"--random-erasing must be a probability between 0 and 1, not {p}.")
        self.p = p

    def plan(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """float32 [3 + 2 * ERASING_TRIES, n]: the draws for n images, from `rng` in a fixed order."""
        erase = rng.random(n) < self.p
        area = rng.uniform(*ERASING_SCALE, (ERASING_TRIES, n))
        ratio = np.exp(rng.uniform(*np.log(ERASING_RATIO), (ERASING_TRIES, n)))
        position = rng.random((2, n))
        return np.concatenate([erase[None], area, ratio, position]).astype(np.float32)

    def boxes(self, plan: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """int64 [4, B]: top, left, box height and width per image (height 0: not erased)."""
        erase, area, ratio, position = plan[0], plan[1:1 + ERASING_TRIES], plan[1 + ERASING_TRIES:-2], plan[-2:]
        pixels = area * (height * width)
        box_h = (pixels * ratio).sqrt().round().long()
        box_w = (pixels / ratio).sqrt().round().long()
        fits = (box_h < height) & (box_w < width)
        first = fits.int().argmax(dim=0, keepdim=True)  # the first try that fits, as torchvision takes
        box_h, box_w = box_h.gather(0, first)[0], box_w.gather(0, first)[0]
        box_h = torch.where((erase > 0) & fits.any(dim=0), box_h, 0)
        top = (position[0] * (height - box_h + 1)).long().clamp(max=height - box_h)
        left = (position[1] * (width - box_w + 1)).long().clamp(max=width - box_w)
        return torch.stack([top, left, box_h, box_w])

    def apply(self, x: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
        """x (float [B, C, H, W], normalised) each drawn box zeroed; `plan`: this batch's columns, on x's device."""
        top, left, box_h, box_w = self.boxes(plan, x.shape[-2], x.shape[-1])
        return x.masked_fill(box_mask(top, left, box_h, box_w, x.shape[-2], x.shape[-1]), 0.0)


class ColorJitter:
    """Shift each image's brightness and scale its contrast by its own uniform draws, on the normalised batch.

    hiverge's cifar10-speedrun (2025) adds this to airbench94_muon's crops and flips:
    x + b, then times c, with b in [-brightness, brightness] and c in [1 - contrast,
    1 + contrast]. On normalised pixels (mean 0) the shift moves every channel by
    b standard deviations and the scale stretches values about the mean colour.
    """

    def __init__(self, brightness: float, contrast: float) -> None:
        if brightness < 0 or not 0 <= contrast < 1:
            raise UserError(f"--brightness must not be negative and --contrast must be in [0, 1); got {brightness} "
                            f"and {contrast}.")
        self.brightness, self.contrast = brightness, contrast

    @property
    def active(self) -> bool:
        return self.brightness > 0 or self.contrast > 0

    def plan(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """float32 [2, n]: each image's shift and contrast factor."""
        shift = rng.uniform(-self.brightness, self.brightness, n)
        scale = 1 + rng.uniform(-self.contrast, self.contrast, n)
        return np.stack([shift, scale]).astype(np.float32)

    def apply(self, x: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
        """x (float [B, C, H, W], normalised) shifted and scaled per image, in place; `plan`: this batch's columns."""
        return x.add_(plan[0].view(-1, 1, 1, 1)).mul_(plan[1].view(-1, 1, 1, 1))


def box_mask(top: torch.Tensor, left: torch.Tensor, box_h: torch.Tensor | int, box_w: torch.Tensor | int,
             height: int, width: int) -> torch.Tensor:
    """bool [B, 1, height, width]: True inside each image's box (int64 [B] corners, sides [B] or one for all).

    The one shape of cutout and random erasing; a box may reach past the image's edges, and is cut there."""
    rows = torch.arange(height, device=top.device)
    cols = torch.arange(width, device=top.device)
    box_h = torch.as_tensor(box_h, device=top.device).expand_as(top)
    box_w = torch.as_tensor(box_w, device=top.device).expand_as(top)
    in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])
    return in_rows[:, None, :, None] & in_cols[:, None, None, :]
