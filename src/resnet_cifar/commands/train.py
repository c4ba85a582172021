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
                                 read_yaml, resolve, validate, value_type)
from resnet_cifar.errors import UserError
from resnet_cifar.recipes import RECIPES, default_preset, recipe_settings
from resnet_cifar.runs import GROUP_FILE

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
                     + " (default: the --model's own recipe, see `resnet-cifar models`; without --model, fast on CUDA, cpu "
                          "otherwise)")
    run.add_argument("--config", metavar="FILE", help="YAML file of settings; overrides the preset, flags override it")
    run.add_argument("--output", metavar="DIR", help="run folder (default: runs/PRESET-TIMESTAMP)")
    run.add_argument("--overwrite", action="store_true", help="replace the run already in --output")
    run.add_argument("--resume", metavar="PATH",
                     help="continue the run in this folder (or from this checkpoint), or the seed group in this "
                          "folder, with its own settings")
    run.add_argument("--seeds", type=int, nargs="+", metavar="N",
                     help="train once per seed, each run in --output/seed-N, and keep the group's mean ± std "
                          "in --output/group.json")
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
    if args.seeds is not None or (args.resume and (Path(args.resume) / GROUP_FILE).is_file()):
        return _run_group(args, flags)
    config, run_dir, resume = _resume(args, flags) if args.resume else _new_run(args, flags)
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


def _new_run(args: argparse.Namespace, flags: dict[str, Any]) -> tuple[TrainConfig, Path, None]:
    from resnet_cifar.train.build import model_misfit
    from resnet_cifar.train.hardware import resolve_device

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
    return config, run_dir, None


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
    """A seed group: new (--seeds) or continued (--resume of a folder holding group.json)."""
    from resnet_cifar.train.distributed import process_device, process_group
    from resnet_cifar.train.seed_group import group_config, prepare_group, train_group

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
        config, group, _ = _new_run(args, {**flags, "seed": seeds[0]})

    def resumed(run_dir: Path) -> tuple[TrainConfig, tuple[Path, dict[str, Any]]]:
        seed_config, _, checkpoint = _resumed(run_dir, flags)
        return seed_config, checkpoint

    with process_group(process_device(config.device), args.dist_timeout) as world:
        if args.resume:
            group = Path(args.resume)
        else:
            group = Path(world.from_main(str(_claimed(group, args.output) if world.is_main else "")))
            if world.is_main:
                prepare_group(group, config, seeds, args.overwrite)
        world.barrier()
        return train_group(config, group, seeds, world, resumed)


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


def _resume(args: argparse.Namespace, flags: dict[str, Any]) -> tuple[TrainConfig, Path, tuple[Path, dict[str, Any]]]:
    _check_resume_flags(args, flags)
    config, run_dir, resume = _resumed(Path(args.resume), flags)
    return config, run_dir, resume


def _resumed(given: Path, flags: dict[str, Any]) -> tuple[TrainConfig, Path, tuple[Path, dict[str, Any]]]:
    """The settings of the run at `given` (a run folder or a checkpoint in one) with the resumable `flags`,
    its folder, and the checkpoint to continue from."""
    from resnet_cifar.checkpoint import read_checkpoint
    from resnet_cifar.train.run_folder import check_not_in_use

    path, run_dir = _checkpoint_and_run_dir(given)
    check_not_in_use(run_dir)
    state = read_checkpoint(path)
    if "optimizer" not in state or "config" not in state:
        raise UserError(f"{path} holds weights but no training state; resume from a checkpoint written by this version's train.")
    _refuse_edited_config(run_dir, state["config"])
    config = validate(TrainConfig(**{**check_values(state["config"], str(path)), **flags}))
    done = state["epoch"]
    if config.epochs <= done:
        raise UserError(f"The run in {run_dir} has already trained {done} of {state['config']['epochs']} epochs; "
                        f"pass --epochs N with N above {done} to extend it.")
    return config, run_dir, (path, state)


def _refuse_edited_config(run_dir: Path, trained: dict[str, Any]) -> None:
    """A run continues with the settings it was trained with; a config.yaml edited since is said, not ignored."""
    file = run_dir / "config.yaml"
    if not file.is_file():
        return
    written = read_yaml(file)
    changed = [key for key, value in written.items() if key not in RESUMABLE and trained.get(key, value) != value]
    if changed:
        key = changed[0]
        raise UserError(f"{file} says {key}: {written[key]!r}, but the run was trained with {trained[key]!r} "
                        f"({len(changed)} setting(s) differ); --resume continues with the run's own settings, so "
                        f"undo the edit, or start a new run with --config {file} --output NEW_DIR.")


def _checkpoint_and_run_dir(path: Path) -> tuple[Path, Path]:
    """A run folder means its checkpoints/last.pt; a checkpoint file must sit in a run folder's checkpoints/."""
    if not path.exists():
        raise UserError(f"--resume {path} does not exist; pass a run folder written by `resnet-cifar train`.")
    if path.is_dir():
        last = path / "checkpoints" / "last.pt"
        if not last.is_file():
            raise UserError(f"{path} holds no checkpoints/last.pt; pass a run folder written by `resnet-cifar train`.")
        return last, path
    if path.parent.name != "checkpoints":
        raise UserError(f"--resume {path}: the checkpoint must be inside a run folder's checkpoints/ to continue that run.")
    return path, path.parent.parent
