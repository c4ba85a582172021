"""Checkpoints for tests, written the way `resnet-cifar train` writes them but without training."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resnet_cifar.checkpoint import FORMAT_VERSION, save_checkpoint
from resnet_cifar.models import create_model

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_PREPROCESSING = {"image_size": 32, "input_size": 32, "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}


def checkpoint_dict(
    model_name: str = "resnet20",
    *,
    classes: list[str] | None = None,
    preprocessing: dict[str, Any] | None = None,
    ema: bool = False,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """A checkpoint of a freshly initialised model (random weights, seeded); `ema` adds a different set of weights."""
    classes = list(classes or CIFAR10_CLASSES)
    model_kwargs = {"num_classes": len(classes), **model_kwargs}
    torch.manual_seed(seed)
    model = create_model(model_name, **model_kwargs)
    state = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "model_kwargs": model_kwargs,
        "model": model.state_dict(),
        "classes": classes,
        "preprocessing": dict(preprocessing or CIFAR10_PREPROCESSING),
        "ema": create_model(model_name, **model_kwargs).state_dict() if ema else None,
    }
    if config is not None:
        state["config"] = config
    return state


def write_checkpoint(path: Path, model_name: str = "resnet20", **kwargs: Any) -> Path:
    save_checkpoint(checkpoint_dict(model_name, **kwargs), path)
    return Path(path)
