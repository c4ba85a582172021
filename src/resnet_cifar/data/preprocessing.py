"""How an image becomes the tensor a model sees, defined once for training, evaluation, prediction and export.

A dataset stores each image as uint8 RGB at `image_size` pixels a side (folder
datasets are resized to it when read). The model sees it normalised per channel,
(x / 255 - mean) / std with mean and std on the 0-1 scale, and, when
`input_size` is set, resized to that side (bilinear) after normalisation.
Training stores this object in every checkpoint, so evaluate, predict and export
prepare images exactly as training did: changing the normalisation cannot make
prediction disagree with training.

Each step has a torch form (training, evaluation, predict with a checkpoint) and
a numpy form (predict with an ONNX file, which needs no torch), computed from
the same factors; torch is imported only by the torch forms.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from resnet_cifar.errors import UserError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Preprocessing:
    image_size: int  # side the dataset stores images at
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int | None = None  # side the model sees, when the loader must resize; None: as stored (or cropped)

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise UserError(f"mean and std need three values each, std positive; got mean={list(self.mean)}, "
                            f"std={list(self.std)}.")
        if self.image_size < 1 or (self.input_size is not None and self.input_size < 1):
            raise UserError(f"image_size and input_size must be positive numbers of pixels; got {self.image_size} "
                            f"and {self.input_size}.")

    @classmethod
    def for_run(cls, image_size: int, input_size: int | None, mean: Sequence[float] | None,
                std: Sequence[float] | None, data_mean: Sequence[float], data_std: Sequence[float]) -> "Preprocessing":
        """A training run's: the given statistics, else the training images' own."""
        return cls(image_size, tuple(mean or data_mean), tuple(std or data_std), input_size)

    @property
    def model_input_size(self) -> int:
        """The side of the images the model is fed at evaluation."""
        return self.input_size or self.image_size

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 [3] factors such that uint8 pixels * scale + shift is the normalised value (computed in
        float64 then rounded once), so a loader can normalise with one fused multiply-add per channel."""
        mean, std = np.asarray(self.mean, dtype=np.float64), np.asarray(self.std, dtype=np.float64)
        return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)

    def scale_and_shift(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """The factors as float32 [1, 3, 1] tensors on `device`."""
        import torch

        scale, shift = self.factors()
        return torch.from_numpy(scale).view(1, 3, 1).to(device), torch.from_numpy(shift).view(1, 3, 1).to(device)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, H, W] to normalised float32 on the same device."""
        import torch

        scale, shift = self.scale_and_shift(images.device)
        n, channels, height, width = images.shape
        x = images.to(torch.float32).view(n, channels, height * width)
        return (x * scale + shift).view(n, channels, height, width)

    def normalize_array(self, images: np.ndarray) -> np.ndarray:
        """normalize for numpy: uint8 [N, 3, H, W] to normalised float32."""
        scale, shift = self.factors()
        return images.astype(np.float32) * scale[:, None, None] + shift[:, None, None]

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """A normalised batch at the side the model expects (unchanged when input_size is not set or already met)."""
        import torch.nn.functional as F

        if self.input_size is None or x.shape[-2:] == (self.input_size, self.input_size):
            return x
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)

    def resize_array(self, x: np.ndarray) -> np.ndarray:
        """resize for numpy: the same bilinear interpolation (align_corners=False, no antialiasing), one axis at a
        time, with torch's source coordinates and weights."""
        if self.input_size is None or x.shape[-2:] == (self.input_size, self.input_size):
            return x
        rows, row_weight, next_row = _bilinear(x.shape[-2], self.input_size)
        columns, column_weight, next_column = _bilinear(x.shape[-1], self.input_size)
        x = x[..., columns] * (1 - column_weight) + x[..., next_column] * column_weight
        return x[..., rows, :] * (1 - row_weight[:, None]) + x[..., next_row, :] * row_weight[:, None]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images as stored [N, 3, image_size, image_size] to the model's input."""
        return self.resize(self.normalize(images))

    def prepare_array(self, images: np.ndarray) -> np.ndarray:
        """__call__ for numpy: uint8 images as stored to the model's float32 input."""
        return self.resize_array(self.normalize_array(images))

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's `preprocessing` entry; `input_size` there is always the side the model sees."""
        return {"image_size": self.image_size, "input_size": self.model_input_size,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Preprocessing":
        image_size, input_size = int(values["image_size"]), int(values["input_size"])
        return cls(image_size, tuple(float(v) for v in values["mean"]), tuple(float(v) for v in values["std"]),
                   None if input_size == image_size else input_size)


def _bilinear(size: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of `target` output positions along an axis of `size` pixels: the pixel before it, the weight of
    the pixel after, and that pixel; PyTorch's rule for align_corners=False (in float32, as torch computes it)."""
    scale = np.float32(size / target)
    source = np.maximum((np.arange(target, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    before = source.astype(np.int64)
    return before, (source - before).astype(np.float32), np.minimum(before + 1, size - 1)
