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

from resnet_cifar.config import (FIELDS, GROUPS, KEYS, RESUMABLE, TrainConfig, check_setting, check_values, default,
                                 read_yaml, resolve, value_type)
from resnet_cifar.errors import UserError
from resnet_cifar.recipes import RECIPES, default_preset, recipe_settings
from resnet_cifar.runs.layout import GroupPaths

HELP = "train a ResNet and write a run folder (config, metrics, curves, checkpoints, summary)"
METAVARS = {int: "N", float: "X"}


def setting_flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _add_setting(group: argparse._ArgumentGroup, key: str, **overrides: Any) -> None:
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
    group.add_argument(setting_flag(key), **{**options, **overrides})


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
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    # The recipes' names are known here, not in config.py (recipes are made of settings).
    overrides = {"preset": dict(
        choices=RECIPES, type=str,
        help="recipe to start from: " + "; ".join(f"{n}: {r.purpose}" for n, r in RECIPES.items()).replace("%", "%%")
        + " (default: the --model's own recipe, see `resnet-cifar models`; without --model, fast on CUDA, cpu "
          "otherwise)")}
    for key in KEYS:
        _add_setting(groups[FIELDS[key].metadata["group"]], key, **overrides.get(key, {}))
    run = groups["run"]
    run.add_argument("--config", metavar="FILE", help="YAML file of settings; overrides the preset, flags override it")
    run.add_argument("--output", metavar="DIR", help="run folder (default: runs/PRESET-TIMESTAMP)")
    run.add_argument("--overwrite", action="store_true", help="replace the run already in --output")
    run.add_argument("--resume", metavar="PATH",
                     help="continue the run in this folder (or from this checkpoint), or the seed group in this "
                          "folder, with its own settings")
    group = GroupPaths(Path("--output"))
    run.add_argument("--seeds", type=int, nargs="+", metavar="N",
                     help=f"train once per seed, each run in {group.seed('N').root}, and keep the group's mean ± std "
                          f"in {group.summary}")
    run.add_argument("--dist-timeout", metavar="SECONDS", type=float, default=600.0,
                     help="under torchrun: how long a process waits for the others before the job fails (default: 600)")


def run(args: argparse.Namespace) -> int:
    from resnet_cifar.runs.group import is_group
    from resnet_cifar.runs.resume import resumption
    from resnet_cifar.runs.writer import prepare_new
    from resnet_cifar.train.distributed import process_device, process_group
    from resnet_cifar.train.trainer import train

    flags = check_values({key: value for key, value in vars(args).items() if key in KEYS}, "the flags")
    if args.dist_timeout <= 0:
        raise UserError(f"--dist-timeout must be a positive number of seconds; got {args.dist_timeout:g}.")
    if args.seeds is not None or (args.resume and is_group(Path(args.resume))):
        return _run_group(args, flags)
    if args.resume:
        _check_resume_flags(args, flags)
        start = resumption(Path(args.resume), flags)
        config, run_dir, resume = start.config, start.run_dir, start.checkpoint
    else:
        config, run_dir = _new_run(args, flags)
        resume = None
    with process_group(process_device(config.device), args.dist_timeout) as world:
        if resume is None:  # a default name holds the time, so rank 0 picks it for every rank
            run_dir = Path(world.from_main(str(_claimed(run_dir, args.output) if world.is_main else "")))
        if resume is None and world.is_main:
            prepare_new(run_dir, args.overwrite)
        world.barrier()  # the folder is ready before any rank goes on
        try:
            return train(config, run_dir, world, resume=resume)
        finally:  # a run that never started (an error, Ctrl-C while the data loads) leaves no empty folder
            if world.is_main and run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()


def _new_run(args: argparse.Namespace, flags: dict[str, Any]) -> tuple[TrainConfig, Path]:
    from resnet_cifar.train.build import model_misfit
    from resnet_cifar.world import resolve_device

    file_values = read_yaml(args.config) if args.config else {}
    own = {**file_values, **flags}  # what the user set, beside the recipe
    named = own.get("preset")
    preset = named or default_preset(own.get("model", default("model")),
                                     resolve_device(own.get("device", "auto")).type)
    recipe = recipe_settings(preset)
    config = resolve(recipe, file_values, flags)
    misfit = model_misfit(config)
    if misfit is not None and named and misfit.key in recipe and misfit.key not in own:
        source = f"--preset {named}" if "preset" in flags else f"preset {named} (in {args.config})"
        undo = _undo_flag(misfit.key)
        raise UserError(f"{source} sets {misfit.key}, which {config.model} cannot take ({misfit.reason}); drop "
                        f"--preset{f' or add {undo}' if undo else ''}.")
    if misfit is not None:  # the user's own setting: said now, before a folder is made
        raise UserError(misfit.message)
    run_dir = Path(args.output) if args.output else Path("runs") / f"{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    return config, run_dir


def _undo_flag(key: str) -> str | None:
    """The flag that sets `key` back to the training default, where there is one."""
    value = default(key)
    if isinstance(value, bool):
        return setting_flag(key) if value else "--no-" + setting_flag(key)[2:]
    return None if value is None else f"{setting_flag(key)} {value}"


def _claimed(run_dir: Path, output: str | None) -> Path:
    """`run_dir`, or for a default name (no --output) the first of NAME, NAME-2, ... that this process could
    create: two runs started in the same second get folders of their own."""
    if output is not None:
        return run_dir
    for attempt in range(1, 1000):
        candidate = run_dir if attempt == 1 else run_dir.with_name(f"{run_dir.name}-{attempt}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"Could not make a new run folder beside {run_dir}; pass --output DIR.")


def _run_group(args: argparse.Namespace, flags: dict[str, Any]) -> int:
    """A seed group: new (--seeds) or continued (--resume of a seed group's folder)."""
    from resnet_cifar.runs.group import group_config, prepare_group
    from resnet_cifar.train.distributed import process_device, process_group
    from resnet_cifar.train.trainer import train_group

    if args.resume:
        _check_resume_flags(args, flags)
        group = Path(args.resume)
        config, seeds = group_config(group, flags)
    else:
        if "seed" in flags:
            raise UserError("--seeds trains one run per seed, so --seed cannot be given with it.")
        seeds = args.seeds
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise UserError(f"--seeds takes different seeds of 0 or more; got {' '.join(map(str, seeds))}.")
        config, group = _new_run(args, {**flags, "seed": seeds[0]})

    with process_group(process_device(config.device), args.dist_timeout) as world:
        if not args.resume:
            group = Path(world.from_main(str(_claimed(group, args.output) if world.is_main else "")))
            if world.is_main:
                prepare_group(group, config, seeds, args.overwrite)
        world.barrier()
        return train_group(config, group, seeds, world, flags)


def _check_resume_flags(args: argparse.Namespace, flags: dict[str, Any]) -> None:
    fixed = [key for key in flags if key not in RESUMABLE]
    fixed += [name for name in ("config", "output", "seeds") if getattr(args, name)]
    if args.overwrite:
        fixed.append("overwrite")
    if fixed:
        raise UserError(
            f"--resume continues a run with its own settings, so {setting_flag(fixed[0])} cannot be given; "
            f"only {', '.join(setting_flag(key) for key in RESUMABLE)} may change."
        )
