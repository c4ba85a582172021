"""`resnet-cifar models [NAME]`: the model zoo with measured sizes, or one model's layer table."""
from __future__ import annotations

import argparse

from resnet_cifar.errors import UserError
from resnet_cifar.models import count_parameters, create_model, list_models
from resnet_cifar.models.registry import ARCHITECTURES
from resnet_cifar.models.resnet import SHORTCUTS, STEMS
from resnet_cifar.models.summary import check_input_size, count_flops, layer_table

HELP = "list the models with parameters and GFLOPs, or show one model's layers"

# Bounds that keep the measurements within a laptop's memory: FLOPs and shapes are measured by running
# each network on one image, whose activations grow with the square of its side.
MAX_INPUT_SIZE = 1024
MAX_CLASSES = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="a model name: show its layer table")
    parser.add_argument("--num-classes", type=int, default=10,
                        help=f"classifier outputs, 1 to {MAX_CLASSES:,} (default 10)")
    parser.add_argument("--stem", choices=STEMS, default="cifar", help="input stem (default cifar)")
    parser.add_argument("--shortcut", choices=SHORTCUTS, help="shortcut option (default: the model's own)")
    parser.add_argument("--input-size", type=int, default=32,
                        help=f"image side for shapes and FLOPs, 1 to {MAX_INPUT_SIZE} (default 32)")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.input_size <= MAX_INPUT_SIZE:
        raise UserError(f"--input-size must be from 1 to {MAX_INPUT_SIZE} pixels, not {args.input_size}.")
    if not 1 <= args.num_classes <= MAX_CLASSES:
        raise UserError(f"--num-classes must be from 1 to {MAX_CLASSES:,}, not {args.num_classes}.")
    options = {"shortcut": args.shortcut} if args.shortcut else {}
    names = [args.name] if args.name else zoo(args.stem, options)
    for name in names:  # all of them before printing anything, so that a refusal never follows half a table
        check_input_size(name, args.input_size, stem=args.stem, **options)
    if args.name:
        print_layers(create_model(args.name, num_classes=args.num_classes, stem=args.stem, **options), args)
    else:
        print_zoo(names, args, options)
    return 0


def zoo(stem: str, options: dict) -> list[str]:
    """The models the table shows: a network with one stem and no shortcut choice only when the options don't apply."""
    return [name for name in list_models()
            if ARCHITECTURES[name].shortcut is not None or not (options or stem != "cifar")]


def print_zoo(names: list[str], args: argparse.Namespace, options: dict) -> None:
    print(f"{'model':<11} {'family':<12} {'block':<10} {'stages':<13} {'parameters':>12} {'GFLOPs':>8}")
    for name in names:
        arch = ARCHITECTURES[name]
        model = create_model(name, num_classes=args.num_classes, stem=args.stem, **options)
        gflops = count_flops(model, args.input_size) / 1e9
        stages = "-".join(str(n) for n in arch.layers)
        print(f"{name:<11} {arch.family:<12} {arch.block.__name__:<10} {stages:<13} "
              f"{count_parameters(model):>12,} {gflops:>8.3f}")
    print(f"\n{args.num_classes} classes, {args.stem} stem, FLOPs for one {args.input_size}x{args.input_size} image "
          "counted by torch (a multiply-add is 2 FLOPs).")


def print_layers(model, args: argparse.Namespace) -> None:
    print(f"{args.name} ({args.stem} stem, {args.num_classes} classes, input 3x{args.input_size}x{args.input_size})")
    print(f"{'stage':<8} {'block':<22} {'output':<16} {'parameters':>12}")
    for row in layer_table(model, args.input_size):
        shape = "x".join(str(d) for d in row.output_shape)
        print(f"{row.stage:<8} {row.block:<22} {shape:<16} {row.parameters:>12,}")
    gflops = count_flops(model, args.input_size) / 1e9
    print(f"{'total':<8} {'':<22} {'':<16} {count_parameters(model):>12,}   {gflops:.3f} GFLOPs")
