"""`resnet-cifar models [NAME]`: the model zoo with measured sizes, or one model's layer table.

The networks are built on the meta device: shapes, parameters and FLOPs without
allocating or initialising a single weight, so the table comes in a moment and
any image side is measured without memory to spare.
"""
from __future__ import annotations

import argparse

from resnet_cifar.choices import STEMS
from resnet_cifar.errors import UserError

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

    from resnet_cifar.models import create_model, list_models, model_entry
    from resnet_cifar.models.summary import count_flops_or_refuse

    if args.input_size < 1:
        raise UserError(f"--input-size must be a positive number of pixels, not {args.input_size}.")
    if args.num_classes < 1:
        raise UserError(f"--num-classes must be at least 1, not {args.num_classes}.")
    options = {"shortcut": args.shortcut} if args.shortcut else {}
    # Without a name: the networks the asked-for stem and options exist for.
    names = [args.name] if args.name else [
        name for name in list_models()
        if args.stem in model_entry(name).stems and set(options) <= set(model_entry(name).options)]
    with torch.device("meta"):
        models = {name: create_model(name, num_classes=args.num_classes, stem=args.stem, **options) for name in names}
    # Every network counted before anything is printed, so that a refusal never follows half a table.
    flops = {name: count_flops_or_refuse(model, name, args.input_size) for name, model in models.items()}
    if args.name:
        print_layers(models[args.name], flops[args.name], args)
    else:
        print_zoo(models, flops, args)
    return 0


def print_zoo(models: dict, flops: dict[str, int], args: argparse.Namespace) -> None:
    from resnet_cifar.models import count_parameters, model_entry

    print(f"{'model':<14} {'family':<15} {'block':<18} {'stages':<13} {'parameters':>12} {'GFLOPs':>8}  "
          "recipe (CUDA / CPU)")
    for name, model in models.items():
        gflops = flops[name] / 1e9
        stages = "-".join(str(len(stage)) for _, stage in model.stages())
        block = type(model.stages()[0][1][0]).__name__
        entry = model_entry(name)
        print(f"{name:<14} {entry.family:<15} {block:<18} {stages:<13} {count_parameters(model):>12,} "
              f"{gflops:>8.3f}  {entry.recipe} / {entry.cpu_recipe}")
    print(f"\n{args.num_classes} classes, {args.stem} stem, FLOPs for one {args.input_size}x{args.input_size} image "
          "counted by torch (a multiply-add is 2 FLOPs); `train --model NAME` without --preset uses the recipe shown.")


def print_layers(model, flops: int, args: argparse.Namespace) -> None:
    from resnet_cifar.models import count_parameters
    from resnet_cifar.models.summary import layer_table

    print(f"{args.name} ({args.stem} stem, {args.num_classes} classes, input 3x{args.input_size}x{args.input_size})")
    print(f"{'stage':<8} {'block':<26} {'output':<16} {'parameters':>12}")
    for row in layer_table(model, args.input_size):
        shape = "x".join(str(d) for d in row.output_shape)
        print(f"{row.stage:<8} {row.block:<26} {shape:<16} {row.parameters:>12,}")
    print(f"{'total':<8} {'':<26} {'':<16} {count_parameters(model):>12,}   {flops / 1e9:.3f} GFLOPs")
