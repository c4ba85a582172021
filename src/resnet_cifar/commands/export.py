"""`resnet-cifar export CHECKPOINT --format onnx|torchscript --output FILE`: a model file for deployment.

An existing FILE is replaced only with --overwrite, and never when it is the
checkpoint being exported (under any of its names); FILE must end as its format
does (see choices.EXPORT_SUFFIXES), so an ONNX model is never saved as `best.pt`.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from resnet_cifar.choices import EXPORT_FORMATS, EXPORT_SUFFIXES
from resnet_cifar.errors import UserError
from resnet_cifar.runs.reader import checkpoint_to_use

HELP = "write a checkpoint as an ONNX or TorchScript file, checked against PyTorch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=checkpoint_to_use, metavar="CHECKPOINT",
                        help="a checkpoint written by `resnet-cifar train`, or its run folder (its best checkpoint)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="onnx (preferred) or torchscript")
    parser.add_argument("--output", type=Path, required=True, metavar="FILE",
                        help="the file to write: .onnx for onnx; .ts, .torchscript, .pt or .pth for torchscript")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")


def check_output(checkpoint: Path, output: Path, fmt: str, overwrite: bool) -> None:
    """Refuse, before the slow export, an output that would destroy a file or be named for another format."""
    suffix = EXPORT_SUFFIXES[fmt][0]
    other = output.with_suffix(suffix)
    if other == output:
        other = output.with_name(f"{output.stem}-{fmt}{suffix}")
    if output.is_file():
        if os.path.samefile(checkpoint, output):
            raise UserError(f"--output {output} is the checkpoint being exported; name another file, such as {other}.")
        if not overwrite:
            raise UserError(f"--output {output} already exists; pass --overwrite to replace it, or name another file.")
    if output.suffix.lower() not in EXPORT_SUFFIXES[fmt] and not output.is_dir():
        endings = " or ".join(", ".join(EXPORT_SUFFIXES[fmt]).rsplit(", ", 1))
        raise UserError(f"--output {output} does not end in {endings}, as {fmt} files do; name it {other}.")


def run(args: argparse.Namespace) -> int:
    from resnet_cifar.checkpoint import build_model, read_checkpoint
    from resnet_cifar.export import TOLERANCE, export, run_metadata

    checkpoint = read_checkpoint(args.checkpoint)
    check_output(args.checkpoint, args.output, args.format, args.overwrite)
    model = build_model(checkpoint).eval()
    difference = export(model, args.output, args.format, run_metadata(args.checkpoint, checkpoint))
    size = model.preprocessing.model_input_size
    weights = "EMA weights" if model.uses_ema else "weights (no EMA in the checkpoint)"
    print(f"Wrote {args.output}: {checkpoint['model_name']} {weights} as {args.format}, "
          f"input [batch, 3, {size}, {size}] with any batch size, {len(model.classes)} classes.")
    print(f"Largest logit difference to PyTorch (fp32, CPU, relative to the largest logit above 1): {difference:.2e} "
          f"(limit {TOLERANCE:.0e}).")
    return 0
