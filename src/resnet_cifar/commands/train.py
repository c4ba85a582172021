"""`resnet-cifar train`: settings from a recipe, a YAML file and flags (in that order), then a run folder.

Every setting of TrainConfig is also a flag of the same name with dashes; the
flags are generated from its definition in config.py, so the two cannot drift apart.
Building the flags needs no torch; the modules that train are imported only to run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from resnet_cifar.config import (FIELDS, GROUPS, KEYS, RESUMABLE, TrainConfig, check_setting, check_values, read_yaml,
                                 resolve, validate, value_type)
from resnet_cifar.errors import UserError
from resnet_cifar.recipes import RECIPES, default_preset, recipe_settings

HELP = "train a ResNet and write a run folder (config, metrics, curves, checkpoints, summary)"
METAVARS = {int: "N", float: "X"}


def setting_flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _add_setting(group: argparse._ArgumentGroup, key: str) -> None:
    metadata, kind = FIELDS[key].metadata, value_type(key)
    options: dict[str, Any] = {"dest": key, "default": argparse.SUPPRESS, "help": metadata["help"].replace("%", "%%")}
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif kind is list:
        options.update(type=float, nargs="+", metavar="X")
    elif metadata["choices"]:
        options.update(type=kind, choices=metadata["choices"])
    else:
        options.update(type=_checked(key, kind), metavar=metadata["metavar"] or METAVARS.get(kind, key.upper()))
    group.add_argument(setting_flag(key), **options)


def _checked(key: str, kind: type):
    """An argparse type that converts a flag's text and checks its range, so `--epochs 0` is refused at once."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        try:
            return check_setting(key, check_values({key: value}, "the flags")[key])
        except UserError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = kind.__name__
    return convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run = parser.add_argument_group("run")
    run.add_argument("--preset", dest="preset", default=argparse.SUPPRESS, choices=RECIPES,
                     help="recipe to start from: " + "; ".join(f"{n}: {r.purpose}" for n, r in RECIPES.items()).replace("%", "%%")
                     + " (default: fast on CUDA, cpu otherwise)")
    run.add_argument("--config", metavar="FILE", help="YAML file of settings; overrides the preset, flags override it")
    run.add_argument("--output", metavar="DIR", help="run folder (default: runs/PRESET-TIMESTAMP)")
    run.add_argument("--overwrite", action="store_true", help="replace the run already in --output")
    run.add_argument("--resume", metavar="PATH",
                     help="continue the run in this folder (or from this checkpoint) with its own settings")
    run.add_argument("--dist-timeout", metavar="SECONDS", type=float, default=600.0,
                     help="under torchrun: how long a process waits for the others before the job fails (default: 600)")
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for key in KEYS:
        if key != "preset":  # --preset, above, takes the recipes' names
            _add_setting(groups[FIELDS[key].metadata["group"]], key)


def run(args: argparse.Namespace) -> int:
    from resnet_cifar.train.distributed import process_device, process_group
    from resnet_cifar.train.run_folder import prepare_new
    from resnet_cifar.train.trainer import train

    flags = check_values({key: value for key, value in vars(args).items() if key in KEYS}, "the flags")
    if args.dist_timeout <= 0:
        raise UserError(f"--dist-timeout must be a positive number of seconds; got {args.dist_timeout:g}.")
    config, run_dir, resume = _resume(args, flags) if args.resume else _new_run(args, flags)
    with process_group(process_device(config.device), args.dist_timeout) as world:
        run_dir = Path(world.from_main(str(run_dir)))  # a default name holds the time, which may differ by a second
        if resume is None and world.is_main:
            prepare_new(run_dir, args.overwrite)
        world.barrier()  # the folder is ready before any rank goes on
        return train(config, run_dir, world, resume=resume)


def _new_run(args: argparse.Namespace, flags: dict[str, Any]) -> tuple[TrainConfig, Path, None]:
    from resnet_cifar.train.hardware import resolve_device

    file_values = read_yaml(args.config) if args.config else {}
    preset = flags.get("preset") or file_values.get("preset")
    if preset is None:
        preset = default_preset(resolve_device(flags.get("device", file_values.get("device", "auto"))).type)
    config = resolve(recipe_settings(preset), file_values, flags)
    run_dir = Path(args.output) if args.output else Path("runs") / f"{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    return config, run_dir, None


def _resume(args: argparse.Namespace, flags: dict[str, Any]) -> tuple[TrainConfig, Path, tuple[Path, dict[str, Any]]]:
    from resnet_cifar.checkpoint import read_checkpoint
    from resnet_cifar.train.run_folder import check_not_in_use

    fixed = [key for key in flags if key not in RESUMABLE]
    fixed += [name for name in ("config", "output") if getattr(args, name)]
    if args.overwrite:
        fixed.append("overwrite")
    if fixed:
        raise UserError(
            f"--resume continues a run with its own settings, so {setting_flag(fixed[0])} cannot be given; "
            f"only {', '.join(setting_flag(key) for key in RESUMABLE)} may change."
        )
    path, run_dir = _checkpoint_and_run_dir(Path(args.resume))
    check_not_in_use(run_dir)
    state = read_checkpoint(path)
    if "optimizer" not in state or "config" not in state:
        raise UserError(f"{path} holds weights but no training state; resume from a checkpoint written by this version's train.")
    config = validate(TrainConfig(**{**check_values(state["config"], str(path)), **flags}))
    done = state["epoch"]
    if config.epochs <= done:
        raise UserError(f"The run in {run_dir} has already trained {done} of {state['config']['epochs']} epochs; "
                        f"pass --epochs N with N above {done} to extend it.")
    return config, run_dir, (path, state)


def _checkpoint_and_run_dir(path: Path) -> tuple[Path, Path]:
    """A run folder means its checkpoints/last.pt; a checkpoint file must sit in a run folder's checkpoints/."""
    if path.is_dir():
        last = path / "checkpoints" / "last.pt"
        if not last.is_file():
            raise UserError(f"{path} holds no checkpoints/last.pt; pass a run folder written by `resnet-cifar train`.")
        return last, path
    if path.parent.name != "checkpoints":
        raise UserError(f"--resume {path}: the checkpoint must be inside a run folder's checkpoints/ to continue that run.")
    return path, path.parent.parent
