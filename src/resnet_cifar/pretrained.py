"""Start training from torchvision's ImageNet weights instead of from scratch.

The ImageNet-family models keep torchvision's parameter names, so a torchvision
state_dict loads into them directly; only the classifier (`fc`) is left out,
because its shape depends on the class count and its ImageNet classes mean
nothing for CIFAR. A file from download.pytorch.org is such a state_dict too.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from resnet_cifar.checkpoint import load_without_code
from resnet_cifar.errors import UserError
from resnet_cifar.models import list_models, model_entry

_BLOCK_KEY = re.compile(r"^layer(\d+)\.(\d+)\.")
IMAGENET_MODELS = [name for name in list_models() if model_entry(name).family == "ImageNet"]


def describe_architecture(state_dict: dict[str, torch.Tensor]) -> str:
    """The model name whose layout these parameter names have (e.g. "resnet50"), or a description."""
    blocks: dict[int, int] = {}
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match[1]), int(match[2])
            blocks[stage] = max(blocks.get(stage, 0), index + 1)
    layers = tuple(blocks[stage] for stage in sorted(blocks))
    bottleneck = "layer1.0.conv3.weight" in state_dict
    for name in list_models():
        arguments = model_entry(name).arguments
        if arguments.get("layers") == layers and (getattr(arguments.get("block"), "expansion", 1) == 4) == bottleneck:
            return name
    return f"a network with {layers or 'no'} residual blocks per stage"


# What init_from_torchvision asks for, when it was given something else.
EXPECTED = ("pass torchvision ImageNet weights saved with "
            "torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V2').state_dict(), path)")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = load_without_code(path, what="weights file", expected=EXPECTED, if_corrupt="download it again")
    if isinstance(state, dict) and "model_name" in state and "model" in state:
        raise UserError(f"{path} is a resnet-cifar checkpoint, not torchvision ImageNet weights; "
                        "to continue its run, pass --resume instead.")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a torchvision state_dict; {EXPECTED}.")
    return state


def init_from_torchvision(model: nn.Module, path: str | Path) -> None:
    """Copy every weight except `fc` from a torchvision ImageNet ResNet state_dict file into `model`.

    `model` must be the same ImageNet-family ResNet (resnet18..152) built with
    stem="imagenet"; its own freshly initialised `fc` is kept, so any class count works.
    """
    path = Path(path)
    own = model.state_dict()
    wanted = describe_architecture(own)
    if wanted not in IMAGENET_MODELS:
        raise UserError(
            f"torchvision ImageNet weights ({path}) fit only {', '.join(IMAGENET_MODELS)}, but the model is {wanted}; "
            "choose one of them (--model NAME, or create_model(NAME) in Python)."
        )
    if getattr(model, "stem_type", None) != "imagenet":
        raise UserError(
            f"ImageNet weights from {path} need the ImageNet stem (--stem imagenet, or stem='imagenet' in Python)."
        )
    source = _read_state_dict(path)
    given = describe_architecture(source)
    if wanted != given:
        instead = (f", or use {given} (--model {given}, or create_model('{given}') in Python)"
                   if given in IMAGENET_MODELS else "")
        raise UserError(f"{path} holds weights of {given}, but the model is {wanted}; pass {wanted} weights{instead}.")

    state = {key: value for key, value in source.items() if not key.startswith("fc.")}
    state.update({key: value for key, value in own.items() if key.startswith("fc.")})
    # Checkpoints older than torchvision 0.4 lack BatchNorm's step counter; it does not affect the outputs.
    for key, value in own.items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = [key for key in own if key in state and own[key].shape != state[key].shape]
    if missing or unexpected or wrong_shape:
        first = (wrong_shape or missing or unexpected)[0]
        raise UserError(
            f"{path} does not fit {wanted} (first mismatch: {first}); "
            "use torchvision weights of the same model with the default (1x1 projection) shortcut."
        )
    model.load_state_dict(state)
