"""`resnet-cifar export CHECKPOINT --format onnx|torchscript --output FILE`: a model file for deployment."""
from __future__ import annotations

import argparse
from pathlib import Path

from resnet_cifar.choices import EXPORT_FORMATS

HELP = "write a checkpoint as an ONNX or TorchScript file, checked against PyTorch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                        help="a checkpoint written by `resnet-cifar train`")
    parser.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="onnx (preferred) or torchscript")
    parser.add_argument("--output", type=Path, required=True, metavar="FILE", help="the file to write")


def run(args: argparse.Namespace) -> int:
    from resnet_cifar.checkpoint import build_model, read_checkpoint
    from resnet_cifar.export import TOLERANCE, export

    checkpoint = read_checkpoint(args.checkpoint)
    model = build_model(checkpoint).eval()
    difference = export(model, args.output, args.format)
    size = model.preprocessing.model_input_size
    weights = "EMA weights" if model.uses_ema else "weights (no EMA in the checkpoint)"
    print(f"Wrote {args.output}: {checkpoint['model_name']} {weights} as {args.format}, "
          f"input [batch, 3, {size}, {size}] with any batch size, {len(model.classes)} classes.")
    print(f"Max abs logit difference to PyTorch (fp32, CPU): {difference:.2e} (limit {TOLERANCE:.0e}).")
    return 0
