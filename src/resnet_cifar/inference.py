"""Class probabilities for images, preprocessed exactly as the model's training data was.

A checkpoint's `Preprocessing` says how training saw its images: stored at
`image_size` pixels a side, normalised, fed to the model at its input size.
Any picture is stored the way a dataset stores it, then put through that same
object, so a photo of any size gets the treatment a CIFAR image got in training.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Union

import torch
from PIL import Image
from torch import nn

from resnet_cifar.data.folder import image_pixels, load_image
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError
from resnet_cifar.prediction import Prediction

__all__ = ["ImageLike", "Prediction", "predict", "preprocess"]

ImageLike = Union[str, Path, Image.Image, torch.Tensor]


def _stored(image: ImageLike, size: int) -> torch.Tensor:
    """uint8 [3, size, size]: the image as a dataset of `size`-pixel images stores it."""
    if isinstance(image, (str, Path)):
        return load_image(image, size)
    if isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3:
        if image.is_floating_point():
            image = (image.detach() * 255).round().clamp(0, 255)
        image = image.detach().to("cpu", torch.uint8)
        if image.shape[1:] == (size, size):
            return image
        image = Image.fromarray(image.permute(1, 2, 0).numpy())
    if not isinstance(image, Image.Image):
        raise UserError(f"Cannot predict on {type(image).__name__}; pass file paths, PIL images "
                        "or RGB tensors shaped [3, H, W] or [N, 3, H, W].")
    return image_pixels(image, size, f"passed in memory ({image.width}x{image.height})")


def preprocess(images: Sequence[ImageLike], preprocessing: Preprocessing) -> torch.Tensor:
    """A normalised float32 batch [N, 3, side, side] on the CPU, as the training loader made them.

    Tensors are taken as unnormalised RGB images, uint8 0-255 or float 0-1.
    """
    return preprocessing(torch.stack([_stored(image, preprocessing.image_size) for image in images]))


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
        raise UserError(
            "The model has no preprocessing or class names; load it with resnet_cifar.load_checkpoint(path)."
        )
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
