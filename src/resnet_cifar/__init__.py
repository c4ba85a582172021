"""resnet-cifar: define, train, evaluate and use ResNets on CIFAR-10/100 and folders of images.

The names below are imported on first use, so that `import resnet_cifar` (and
with it the command line's `--help`) does not wait seconds for torch.
"""
from importlib import import_module
from typing import Any

from resnet_cifar.errors import UserError

__version__ = "0.1.0"

_LAZY = {
    "Prediction": "resnet_cifar.prediction",
    "predict": "resnet_cifar.inference",
    "load_checkpoint": "resnet_cifar.checkpoint",
    "create_model": "resnet_cifar.models",
    "list_models": "resnet_cifar.models",
}

__all__ = ["Prediction", "UserError", "create_model", "list_models", "load_checkpoint", "predict", "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'resnet_cifar' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
