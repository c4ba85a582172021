"""An .onnx file as a torch module, so `evaluate` runs it through the code written for checkpoints.

evaluation.evaluate and split_logits take a model callable on normalised
batches, and give it test-time views (flips, shifts) for all or the least sure
of the images; wrapping the onnxruntime session lets an ONNX file get exactly
the run's views and the same report, without a second implementation of either.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from resnet_cifar.onnx_model import OnnxModel, check_cpu, read_onnx


class OnnxModule(nn.Module):
    """The file's logits for a normalised batch on any device, returned on that device.

    It has no parameters (the weights live in the session) and carries what
    build_model puts on a checkpoint's model: classes, preprocessing, uses_ema,
    model_name; and the run's settings the file records (run_settings).
    """

    def __init__(self, model: OnnxModel):
        super().__init__()
        self.onnx = model
        self.classes = model.classes
        self.preprocessing = model.preprocessing
        self.uses_ema = model.uses_ema
        self.model_name = model.network
        self.run_settings = model.run_settings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.onnx.logits(x.detach().cpu().numpy())).to(x.device)


def load_onnx_module(path: Path, device: str) -> OnnxModule:
    """The .onnx file at `path` as an OnnxModule; `device` is the command's --device, which must mean the CPU."""
    check_cpu(device, path)
    return OnnxModule(read_onnx(path)).eval()
