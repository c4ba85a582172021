"""Model names mapped to how to build them: `register_model` adds one, `create_model` builds it.

Each family module registers its own networks where it defines them (as timm's
`register_model` does); a network is its class plus the arguments that fix its
architecture (block, depth per stage, widths). A caller may set the class's other
keyword-only options (shortcut, zero_init_residual, drop_path, ...) through create_model.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from resnet_cifar.errors import UserError
from resnet_cifar.models.network import Network


@dataclass(frozen=True)
class ModelEntry:
    name: str
    network: type[Network]
    family: str  # a few words for the zoo table and docs, e.g. "paper CIFAR"
    # The recipes (`--preset`) a bare `train --model NAME` uses, with CUDA and without: each network trains
    # from its name alone, without the settings of another network's recipe.
    recipe: str
    cpu_recipe: str
    arguments: dict[str, Any] = field(default_factory=dict)  # fixed by the name, e.g. block, layers, widths
    stems: tuple[str, ...] = ("cifar",)  # the `stem` values the network accepts
    # Whether torchvision's ImageNet weights of the same name load into it (resnet_cifar.models.pretrained).
    torchvision_weights: bool = False

    @property
    def options(self) -> tuple[str, ...]:
        """Keyword arguments a caller may set through create_model (defaults in `arguments` may be overridden)."""
        return tuple(
            name
            for name, parameter in inspect.signature(self.network).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("num_classes", "stem")
        )


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, network: type[Network], family: str, *, recipe: str, cpu_recipe: str | None = None,
                   stems: tuple[str, ...] = ("cifar",), torchvision_weights: bool = False, **arguments: Any) -> None:
    """Make `create_model(name)` build `network(**arguments)`, trained by default with `recipe` on CUDA and
    `cpu_recipe` (else `recipe`) elsewhere; a name is registered once."""
    if name in _MODELS:
        raise ValueError(f"Model {name!r} is registered twice.")
    _MODELS[name] = ModelEntry(name, network, family, recipe, cpu_recipe or recipe, arguments, stems,
                               torchvision_weights)


def list_models() -> list[str]:
    """Every model name `create_model` accepts, in the order the families registered them."""
    return list(_MODELS)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of `name`, or a UserError listing the names there are."""
    if name not in _MODELS:
        raise UserError(f"Unknown model {name!r}; choose one of: {', '.join(_MODELS)}.")
    return _MODELS[name]


def create_model(name: str, *, num_classes: int = 10, stem: str = "cifar", **kwargs: Any) -> Network:
    """Build a freshly initialised network by name.

    kwargs: the network's options, e.g. shortcut ("A" or "B"; ResNets), zero_init_residual (bool), in_channels (int).
    """
    entry = model_entry(name)
    unknown = sorted(set(kwargs) - set(entry.options))
    if unknown:
        raise UserError(f"Unknown model option(s) {', '.join(unknown)} for {name}; "
                        f"valid options: {', '.join(entry.options)}.")
    return entry.network(**{**entry.arguments, **kwargs}, num_classes=num_classes, stem=stem)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
