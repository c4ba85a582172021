"""`resnet-cifar models [NAME]`: the model zoo with measured sizes, or one model's layer table.

The zoo is built on the meta device: shapes, parameters and FLOPs without
allocating or initialising a single weight, so the table comes in a moment.
"""
from __future__ import annotations

import argparse

from resnet_cifar.choices import STEMS

HELP = "list the models with parameters and GFLOPs, or show one model's layers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="a model name: show its layer table")
    parser.add_argument("--num-classes", type=int, default=10, help="classifier outputs (default 10)")
    parser.add_argument("--stem", choices=STEMS, default="cifar", help="input stem (default cifar)")
    parser.add_argument("--shortcut", metavar="A|B",
                        help="ResNet shortcuts: A zero-padded identity, B 1x1 projection (default: the model's own)")
    parser.add_argument("--input-size", type=int, default=32, help="image side for shapes and FLOPs (default 32)")


def run(args: argparse.Namespace) -> int:
    import torch

    from resnet_cifar.models import create_model

    options = {"shortcut": args.shortcut} if args.shortcut else {}
    with torch.device("meta"):
        if args.name:
            print_layers(create_model(args.name, num_classes=args.num_classes, stem=args.stem, **options), args)
        else:
            print_zoo(args, options)
    return 0


def print_zoo(args: argparse.Namespace, options: dict) -> None:
    from resnet_cifar.models import count_parameters, create_model, list_models, model_entry
    from resnet_cifar.models.summary import count_flops

    print(f"{'model':<11} {'family':<12} {'block':<10} {'stages':<13} {'parameters':>12} {'GFLOPs':>8}")
    for name in list_models():
        entry = model_entry(name)
        if args.stem not in entry.stems or not set(options) <= set(entry.options):
            continue  # the asked-for stem or option does not exist for this network
        model = create_model(name, num_classes=args.num_classes, stem=args.stem, **options)
        gflops = count_flops(model, args.input_size) / 1e9
        stages = "-".join(str(len(stage)) for _, stage in model.stages())
        block = type(model.stages()[0][1][0]).__name__
        print(f"{name:<11} {entry.family:<12} {block:<10} {stages:<13} {count_parameters(model):>12,} {gflops:>8.3f}")
    print(f"\n{args.num_classes} classes, {args.stem} stem, FLOPs for one {args.input_size}x{args.input_size} image "
          "counted by torch (a multiply-add is 2 FLOPs).")


def print_layers(model, args: argparse.Namespace) -> None:
    from resnet_cifar.models import count_parameters
    from resnet_cifar.models.summary import count_flops, layer_table

    print(f"{args.name} ({args.stem} stem, {args.num_classes} classes, input 3x{args.input_size}x{args.input_size})")
    print(f"{'stage':<8} {'block':<26} {'output':<16} {'parameters':>12}")
    for row in layer_table(model, args.input_size):
        shape = "x".join(str(d) for d in row.output_shape)
        print(f"{row.stage:<8} {row.block:<26} {shape:<16} {row.parameters:>12,}")
    gflops = count_flops(model, args.input_size) / 1e9
    print(f"{'total':<8} {'':<26} {'':<16} {count_parameters(model):>12,}   {gflops:.3f} GFLOPs")
