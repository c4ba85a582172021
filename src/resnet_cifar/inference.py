"""Class probabilities for images, preprocessed exactly as the model's training data was.

A checkpoint's `preprocessing` says how training saw its images: stored at
`image_size` pixels a side, fed to the model at `input_size`, normalised by
`mean`/`std`. Any picture is put through those same steps here, so a photo of
any size gets the treatment a CIFAR image got during training.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from resnet_cifar.errors import UserError

ImageLike = Union[str, Path, Image.Image, torch.Tensor]


@dataclass
class Prediction:
    """The `top_k` most likely classes of one image, most likely first."""

    source: str  # the file path, or "image N" for in-memory images
    classes: list[str]
    probabilities: list[float]


def resolve_device(name: str) -> torch.device:
    """"auto" is the first GPU when there is one, else the CPU; other names are checked before use."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N.") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asks for a GPU but PyTorch sees none; use --device cpu.")
    return device


def open_image(path: str | Path) -> Image.Image:
    """The image file at `path` as RGB, or a UserError saying why it cannot be read."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError as error:
        raise UserError(f"{path} does not exist; check the path.") from error
    except IsADirectoryError as error:
        raise UserError(f"{path} is a folder, not an image file.") from error
    except UnidentifiedImageError as error:
        raise UserError(f"{path} is not an image file Pillow can read.") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{path} is a damaged image file ({error}).") from error


def _as_pil(image: ImageLike) -> Image.Image:
    if isinstance(image, (str, Path)):
        return open_image(image)
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3:
        if image.is_floating_point():
            image = (image.detach() * 255).round().clamp(0, 255)
        return Image.fromarray(image.to("cpu", torch.uint8).permute(1, 2, 0).numpy())
    raise UserError(
        f"Cannot predict on {type(image).__name__}; pass file paths, PIL images or RGB tensors shaped [3, H, W] or [N, 3, H, W]."
    )


def preprocess(images: Sequence[ImageLike], preprocessing: dict[str, Any]) -> torch.Tensor:
    """A normalised float32 batch [N, 3, input_size, input_size] on the CPU.

    Tensors are taken as unnormalised RGB images, uint8 0-255 or float 0-1.
    """
    size = int(preprocessing["image_size"])
    stored = [
        np.asarray(_as_pil(image).resize((size, size), Image.Resampling.BILINEAR))
        for image in images
    ]
    x = torch.from_numpy(np.stack(stored)).permute(0, 3, 1, 2).float().div_(255)
    input_size = int(preprocessing["input_size"])
    if input_size != size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(preprocessing["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def _flatten(images: ImageLike | Iterable[ImageLike]) -> list[ImageLike]:
    if isinstance(images, (str, Path, Image.Image)):
        return [images]
    if isinstance(images, torch.Tensor):
        return list(images) if images.dim() == 4 else [images]
    flat: list[ImageLike] = []
    for image in images:
        flat.extend(list(image) if isinstance(image, torch.Tensor) and image.dim() == 4 else [image])
    return flat


@torch.inference_mode()
def predict(
    model: nn.Module,
    images: ImageLike | Iterable[ImageLike],
    *,
    top_k: int = 5,
    batch_size: int = 64,
) -> list[Prediction]:
    """The `top_k` classes and probabilities of each image, in the order given.

    `model` comes from `load_checkpoint` (it carries `classes` and `preprocessing`);
    `images` are file paths, PIL images or RGB tensors ([3, H, W] or a batch
    [N, 3, H, W]; uint8 0-255 or float 0-1, not normalised), alone or in a list.
    `top_k` is capped at the number of classes.
    """
    if not hasattr(model, "preprocessing") or not hasattr(model, "classes"):
        raise UserError("The model has no preprocessing or class names; load it with resnet_cifar.load_checkpoint(path).")
    if top_k < 1:
        raise UserError(f"top_k must be at least 1, got {top_k}.")
    top_k = min(top_k, len(model.classes))
    images = _flatten(images)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    predictions = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        x = preprocess(chunk, model.preprocessing).to(device)
        probabilities, indices = model(x).float().softmax(1).topk(top_k, dim=1)
        for offset, (image, probs, idx) in enumerate(zip(chunk, probabilities.tolist(), indices.tolist())):
            source = str(image) if isinstance(image, (str, Path)) else f"image {start + offset}"
            predictions.append(Prediction(source, [model.classes[i] for i in idx], probs))
    model.train(was_training)
    return predictions
