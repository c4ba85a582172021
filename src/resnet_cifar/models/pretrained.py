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

from resnet_cifar.errors import UserError
from resnet_cifar.models.registry import create_model, list_models, model_entry
from resnet_cifar.safe_load import load_without_code

_BLOCK_KEY = re.compile(r"^layer(\d+)\.(\d+)\.")
# The networks whose registry entry says torchvision's ImageNet weights load into them.
IMAGENET_MODELS = [name for name in list_models() if model_entry(name).torchvision_weights]


def init_from_misfit(name: str, stem: str) -> tuple[str, str] | None:
    """Why torchvision ImageNet weights cannot start network `name` with `stem`, as (the words after
    "cannot take init_from", the sentence for the user); None when they can. The one statement of the rule."""
    if name not in IMAGENET_MODELS:
        return ("it is not a torchvision ImageNet network",
                f"torchvision ImageNet weights fit only {', '.join(IMAGENET_MODELS)}, but the model is {name}; "
                "choose one of them (--model NAME, or create_model(NAME) in Python).")
    if stem != "imagenet":
        return ("its weights need the imagenet stem",
                "torchvision ImageNet weights need the ImageNet stem they were trained with (--stem imagenet, or "
                "stem='imagenet' in Python).")
    return None


def describe_architecture(state_dict: dict[str, torch.Tensor]) -> str:
    """The model name whose layout these parameter names have (e.g. "resnet50"), or a description.

    The layout is the blocks per stage and whether they are bottlenecks, read from the names alone;
    each network of the zoo is built on the meta device (no memory, no time) to read its own.
    """
    layout = _layout(state_dict)
    for name in list_models():
        with torch.device("meta"):
            own = create_model(name, stem=model_entry(name).stems[-1]).state_dict()
        if _layout(own) == layout:
            return name
    return f"a network with {layout[0] or 'no'} residual blocks per stage"


def _layout(state_dict: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], bool]:
    blocks: dict[int, int] = {}
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match[1]), int(match[2])
            blocks[stage] = max(blocks.get(stage, 0), index + 1)
    return tuple(blocks[stage] for stage in sorted(blocks)), "layer1.0.conv3.weight" in state_dict


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
    stem = "imagenet" if own.get("conv1.weight", torch.empty(0)).shape[-1:] == (7,) else "cifar"
    misfit = init_from_misfit(wanted, stem)
    if misfit is not None:
        raise UserError(f"{path}: {misfit[1]}")
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
