"""Measured facts about a model: parameters, FLOPs and a per-block layer table.

FLOPs are counted by running the model under torch's FlopCounterMode, not typed
in from a paper, so the table stays true when the code changes. torch counts a
multiply-add as two FLOPs. A model built on the meta device is counted without
computing anything, which is how `resnet-cifar models` sizes the whole zoo in a moment.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_cifar.errors import UserError
from resnet_cifar.models.network import Network
from resnet_cifar.models.registry import count_parameters, create_model


def check_input_size(name: str, input_size: int, flag: str = "--input-size", **kwargs) -> None:
    """Refuse an image side that network `name` (built with `kwargs`) shrinks below one pixel.

    Tried on the meta device, where a forward pass computes only shapes: no memory, no weights to initialise.
    """
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    count_flops_or_refuse(model, name, input_size, flag)


def count_flops_or_refuse(model: nn.Module, name: str, input_size: int, flag: str = "--input-size") -> int:
    """`count_flops`, with a side the network shrinks below one pixel said as the user's mistake: one forward
    pass both checks and counts, which is what lets `resnet-cifar models` size the whole zoo quickly."""
    try:
        return count_flops(model, input_size)
    except RuntimeError:
        raise UserError(f"{name} cannot take {input_size}x{input_size} images: its layers shrink them below "
                        f"one pixel; pass a larger {flag}.") from None


def _example(model: nn.Module, input_size: int, in_channels: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.zeros(1, in_channels, input_size, input_size, device=device)


@contextmanager
def _batch_norm_passed_through(model: nn.Module) -> Iterator[None]:
    """BatchNorm changes no shape and torch's counter counts no FLOPs for it, while on the meta device its
    Python decomposition takes a third of a forward pass: while counting, its layers hand their input on."""
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    for module in norms:
        module.forward = _unchanged
    try:
        yield
    finally:
        for module in norms:
            del module.forward


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


def count_flops(model: nn.Module, input_size: int = 32, in_channels: int = 3) -> int:
    """Forward FLOPs for one image of input_size x input_size."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), _batch_norm_passed_through(model):
        model(_example(model, input_size, in_channels))
    model.train(was_training)
    return counter.get_total_flops()


@dataclass
class LayerRow:
    stage: str
    block: str
    output_shape: tuple[int, ...]
    parameters: int


def layer_table(model: Network, input_size: int = 32, in_channels: int = 3) -> list[LayerRow]:
    """One row for the stem, each residual block and the head, with the shape each one outputs.

    The head's parameters are what the stem and the blocks leave over, so the rows always add up to the total.
    """
    stem = model.stem_layers()
    parts = [("stem", model.stem_description, stem[-1])]
    for name, stage in model.stages():
        parts += [(name, f"{type(block).__name__} {index}", block) for index, block in enumerate(stage)]
    parts.append(("head", model.head_description, model.fc))
    shapes: dict[int, tuple[int, ...]] = {}

    def record(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        shapes[id(module)] = tuple(output.shape[1:])

    hooks = [module.register_forward_hook(record) for _, _, module in parts]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(_example(model, input_size, in_channels))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    counts = [sum(count_parameters(m) for m in stem)] + [count_parameters(m) for _, _, m in parts[1:-1]]
    counts.append(count_parameters(model) - sum(counts))
    return [LayerRow(stage, block, shapes[id(module)], count)
            for (stage, block, module), count in zip(parts, counts)]
