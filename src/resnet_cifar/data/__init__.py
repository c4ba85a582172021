"""Datasets as uint8 tensors in memory, and the loader that augments them in batches on the device.

Every source (CIFAR archives, image folders) ends as a `Dataset` of `Split`s:
images uint8 [N, 3, H, W] and labels int64 [N]. Nothing downstream reads files.

The names below are imported on first use, so that the modules that need no
torch (pixels.py, preprocessing.py: what predicting with an ONNX file uses)
can be imported without it.
"""
from importlib import import_module
from typing import Any

_LAZY = {
    "Dataset": "resnet_cifar.data.splits",
    "Split": "resnet_cifar.data.splits",
    "Loader": "resnet_cifar.data.loader",
    "load_dataset": "resnet_cifar.data.dataset",
}

__all__ = ["Dataset", "Loader", "Split", "load_dataset"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'resnet_cifar.data' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
