"""Measured facts about a model: parameters, FLOPs and a per-block layer table.

FLOPs are counted by running the model under torch's FlopCounterMode, not typed
in from a paper, so the table stays true when the code changes. torch counts a
multiply-add as two FLOPs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_cifar.errors import UserError
from resnet_cifar.models.registry import count_parameters, create_model


def check_input_size(name: str, input_size: int, **kwargs) -> None:
    """Refuse an image side that network `name` (built with `kwargs`) shrinks below one pixel.

    Tried on the meta device, where a forward pass computes only shapes: no memory, no time.
    """
    with torch.device("meta"):
        model = create_model(name, **kwargs).eval()
        try:
            model(torch.zeros(1, 3, input_size, input_size))
        except RuntimeError:
            raise UserError(f"{name} cannot take {input_size}x{input_size} images: its layers shrink them below "
                            "one pixel; pass a larger --input-size.") from None


def count_flops(model: nn.Module, input_size: int = 32, in_channels: int = 3) -> int:
    """Forward FLOPs for one image of input_size x input_size."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, in_channels, input_size, input_size))
    model.train(was_training)
    return counter.get_total_flops()


@dataclass
class LayerRow:
    stage: str
    block: str
    output_shape: tuple[int, ...]
    parameters: int


def layer_table(model: nn.Module, input_size: int = 32, in_channels: int = 3) -> list[LayerRow]:
    """One row for the stem, each residual block and the head, with the shape each one outputs."""
    rows: list[LayerRow] = []
    hooks = []

    def record(stage: str, block: str, module: nn.Module) -> None:
        def hook(_module, _inputs, output):
            rows.append(LayerRow(stage, block, tuple(output.shape[1:]), count_parameters(module)))

        hooks.append(module.register_forward_hook(hook))

    stem = nn.ModuleList([model.conv1, model.bn1])
    record("stem", "conv1+bn1+relu" + ("+maxpool" if not isinstance(model.maxpool, nn.Identity) else ""), model.maxpool)
    for name in model.stage_names:
        for index, block in enumerate(getattr(model, name)):
            record(name, f"{type(block).__name__} {index}", block)
    record("head", "avgpool+fc", model.fc)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, input_size, input_size))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    rows[0].parameters = count_parameters(stem)
    return rows
