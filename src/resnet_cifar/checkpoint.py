"""Checkpoint files: written atomically, read without running code, turned back into models.

A checkpoint is a dict saved with torch.save. The keys every reader relies on:

    format_version  int, FORMAT_VERSION
    model_name      str, a name from list_models()
    model_kwargs    dict for create_model: num_classes, stem, shortcut, ...
    model           state_dict with plain keys (no "module." or "_orig_mod." prefix)
    classes         list of class names, index = label
    preprocessing   {"image_size": stored image side, "input_size": side the model sees,
                     "mean": [r, g, b], "std": [r, g, b]} on the 0-1 pixel scale
    ema             state_dict of the weight average, or None

Training adds its own state (optimizer, scheduler, RNG, epoch, step, config, ...);
everything stored must be loadable with torch.load(weights_only=True), which
refuses pickled code, so a downloaded checkpoint cannot run anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError
from resnet_cifar.files import make_folder, save_atomically
from resnet_cifar.models import create_model
from resnet_cifar.safe_load import load_without_code

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_name", "model_kwargs", "model", "classes", "preprocessing")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# What every command reading a checkpoint asks for, when it was given something else.
EXPECTED = "pass a .pt file written by `resnet-cifar train`"


def model_description(model_name: str, model_kwargs: dict[str, Any], classes: list[str],
                      preprocessing: Preprocessing) -> dict[str, Any]:
    """The keys besides the weights that inference needs to rebuild and use a model."""
    return {"format_version": FORMAT_VERSION, "model_name": model_name, "model_kwargs": dict(model_kwargs),
            "classes": list(classes), "preprocessing": preprocessing.to_dict()}


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file beside `path`, then rename: a crash or a full disk never leaves half a
    checkpoint, and the one already at `path` stays intact. A UserError names the path when the disk refuses."""
    path = Path(path)
    make_folder(path.parent)
    save_atomically(state, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at `path`, or a UserError saying in one sentence why it cannot be used."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, and not a run folder with a checkpoint; pass a checkpoint file written "
                        "by `resnet-cifar train`.")
    checkpoint = load_without_code(path, what="checkpoint", expected=EXPECTED, if_corrupt="use another copy")
    kind = _other_torch_file(checkpoint)
    if kind is not None:
        raise UserError(f"{path} holds {kind}, not a resnet-cifar checkpoint; {EXPECTED}.")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise UserError(f"{path} is not a resnet-cifar checkpoint (missing {', '.join(missing)}); {EXPECTED}.")
    if checkpoint["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"{path} was written by a newer resnet-cifar (format {checkpoint['format_version']}); upgrade to read it."
        )
    return checkpoint


def _other_torch_file(content: Any) -> str | None:
    """What a torch.save file other than a checkpoint holds, when it is something a user may mistake for one."""
    if not isinstance(content, dict):
        return f"a {type(content).__name__}"
    if set(content) == {"images", "labels"}:
        return "the decoded images of a folder dataset (a file of its .resnet-cifar-cache)"
    if content and "model" not in content and all(isinstance(value, torch.Tensor) for value in content.values()):
        return "only weights (a state_dict)"
    return None


def plain_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the prefixes DistributedDataParallel and torch.compile add to parameter names."""
    plain = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        plain[key] = value
    return plain


def load_model_state(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Strictly load weights, turning a shape or name mismatch into one sentence naming `source`."""
    state_dict = plain_state_dict(state_dict)
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong_shape:
        details = []
        if wrong_shape:
            key = wrong_shape[0]
            details.append(f"{key} has shape {tuple(state_dict[key].shape)}, expected {tuple(own[key].shape)}")
        if missing:
            details.append(f"{len(missing)} weights missing such as {missing[0]}")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected weights such as {unexpected[0]}")
        raise UserError(f"{source} does not fit this model ({'; '.join(details)}); use weights of the same model and class count.")
    model.load_state_dict(state_dict)


def build_model(checkpoint: dict[str, Any], *, use_ema: bool = True) -> nn.Module:
    """The model a checkpoint describes, with its weights (the EMA ones when present and wanted).

    The model also carries `classes`, `preprocessing` and `model_name` from the
    checkpoint, and `uses_ema` saying which weights were loaded, so inference and
    export need nothing else.
    """
    model = create_model(checkpoint["model_name"], **checkpoint["model_kwargs"])
    ema = checkpoint.get("ema") if use_ema else None
    load_model_state(model, ema if ema is not None else checkpoint["model"], f"checkpoint of {checkpoint['model_name']}")
    model.classes = list(checkpoint["classes"])
    model.preprocessing = Preprocessing.from_dict(checkpoint["preprocessing"])
    model.uses_ema = ema is not None
    model.model_name = checkpoint["model_name"]
    return model


def load_checkpoint(path: str | Path, *, use_ema: bool = True, device: str | torch.device = "cpu") -> nn.Module:
    """A model ready for inference (eval mode, on `device`) from a `resnet-cifar train` checkpoint."""
    model = build_model(read_checkpoint(path), use_ema=use_ema)
    return model.to(device).eval()
