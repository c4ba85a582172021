"""`resnet-cifar export CHECKPOINT --format onnx|torchscript --output FILE [--int8 ...]`: a model file for deployment.

An existing FILE is replaced only with --overwrite, and never when it is the
checkpoint being exported (under any of its names); FILE must end as its format
does (see choices.EXPORT_SUFFIXES), so an ONNX model is never saved as `best.pt`.
With --int8, FILE is the INT8 ONNX file (quantize.py); its data settings come,
as evaluate's do, from the flags, else the checkpoint's training config.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_cifar.choices import DATASETS, EXPORT_FORMATS, EXPORT_SUFFIXES
from resnet_cifar.errors import UserError
from resnet_cifar.runs.reader import checkpoint_to_use

if TYPE_CHECKING:
    from torch import nn

HELP = "write a checkpoint as an ONNX (fp32 or INT8) or TorchScript file, checked against PyTorch"
# A few hundred images pin the activation ranges down: 128, 512 and 2,048 lost 0.60, 0.58 and 0.52 points with MinMax
# on the cpu recipe's checkpoint (docs/experiments.md, 2026-12-07).
CALIBRATION_IMAGES = 512


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=checkpoint_to_use, metavar="CHECKPOINT",
                        help="a checkpoint written by `resnet-cifar train`, or its run folder (its best checkpoint)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="onnx (preferred) or torchscript")
    parser.add_argument("--output", type=Path, required=True, metavar="FILE",
                        help="the file to write: .onnx for onnx; .ts, .torchscript, .pt or .pth for torchscript")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    int8 = parser.add_argument_group("INT8 (ONNX only)")
    int8.add_argument("--int8", action="store_true",
                      help="quantize the ONNX file to INT8 (static, calibrated on training images) and check it "
                           "against fp32 on the run's validation images")
    int8.add_argument("--data-dir", type=Path, metavar="DIR",
                      help="folder holding the training data to calibrate on (default: the training run's)")
    int8.add_argument("--dataset", choices=DATASETS, help="dataset of --data-dir (default: the training run's)")
    int8.add_argument("--calibration-images", type=int, metavar="N",
                      help=f"training images to calibrate on (default {CALIBRATION_IMAGES})")


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


def check_int8_flags(args: argparse.Namespace) -> None:
    """The INT8 flags make sense together and only together; checked before anything is read (the count is
    checked by quantize.export_int8)."""
    if args.int8 and args.format != "onnx":
        raise UserError(f"--int8 quantizes ONNX files only; pass --format onnx, or drop --int8 for {args.format}.")
    given = [flag for flag, value in (("--data-dir", args.data_dir), ("--dataset", args.dataset),
                                      ("--calibration-images", args.calibration_images)) if value is not None]
    if given and not args.int8:
        one = len(given) == 1
        raise UserError(f"{' and '.join(given)} only {'applies' if one else 'apply'} to --int8's calibration; "
                        f"add --int8 or drop {'it' if one else 'them'}.")


def run(args: argparse.Namespace) -> int:
    from resnet_cifar.checkpoint import build_model, read_checkpoint
    from resnet_cifar.export import TOLERANCE, export, run_metadata

    check_int8_flags(args)
    checkpoint = read_checkpoint(args.checkpoint)
    check_output(args.checkpoint, args.output, args.format, args.overwrite)
    model = build_model(checkpoint).eval()
    run = run_metadata(args.checkpoint, checkpoint)
    if args.int8:
        return run_int8(args, checkpoint, model, run)
    difference = export(model, args.output, args.format, run)
    print(f"Wrote {args.output}: {describe(checkpoint, model)} as {args.format}, {shape(model)}.")
    print(f"Largest logit difference to PyTorch (fp32, CPU, relative to the largest logit above 1): {difference:.2e} "
          f"(limit {TOLERANCE:.0e}).")
    return 0


def describe(checkpoint: dict[str, Any], model: nn.Module) -> str:
    weights = "EMA weights" if model.uses_ema else "weights (no EMA in the checkpoint)"
    return f"{checkpoint['model_name']} {weights}"


def shape(model: nn.Module) -> str:
    size = model.preprocessing.model_input_size
    return f"input [batch, 3, {size}, {size}] with any batch size, {len(model.classes)} classes"


def run_int8(args: argparse.Namespace, checkpoint: dict[str, Any], model: nn.Module, run: dict[str, Any]) -> int:
    from resnet_cifar.commands.evaluate import settings
    from resnet_cifar.export import TOLERANCE
    from resnet_cifar.quantize import ACCURACY_DROP_WARNING, export_int8

    config = checkpoint.get("config") or {}
    if args.data_dir is None and "data_dir" not in config:
        raise UserError(f"--int8 calibrates on training images, and {args.checkpoint} does not record where they "
                        "are; pass --data-dir DIR (and --dataset NAME).")
    count = CALIBRATION_IMAGES if args.calibration_images is None else args.calibration_images
    done = export_int8(model, args.output, run, settings(args, config), count)
    megabytes = 1 / 1e6
    print(f"Wrote {args.output}: {describe(checkpoint, model)} as onnx INT8 (QDQ, per-channel int8 weights, uint8 "
          f"activations, the first convolution in fp32; calibrated on {done.calibration.words}), {shape(model)}.")
    print(f"Size {done.int8_bytes * megabytes:.2f} MB, {done.int8_bytes / done.fp32_bytes:.2f}x the fp32 file's "
          f"{done.fp32_bytes * megabytes:.2f} MB. The fp32 model's largest logit difference to PyTorch: "
          f"{done.difference:.2e} (limit {TOLERANCE:.0e}).")
    print(f"INT8 against fp32 on {done.checked_on.words}, without test-time views: top-1 agreement "
          f"{done.agreement:.2%}, accuracy {done.int8_accuracy:.2%} against {done.fp32_accuracy:.2%} "
          f"({100 * (done.int8_accuracy - done.fp32_accuracy):+.2f} points).")
    if done.accuracy_drop > ACCURACY_DROP_WARNING:
        print(f"resnet-cifar export: warning: INT8 loses {100 * done.accuracy_drop:.2f} points of accuracy against "
              f"fp32 (more than {100 * ACCURACY_DROP_WARNING:.0f}); {args.output} was kept, but check it before "
              "shipping it, or use the fp32 file.", file=sys.stderr)
    return 0
