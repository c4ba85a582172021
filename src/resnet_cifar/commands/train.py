"""`resnet-cifar train`: settings from a recipe, a YAML file and flags (in that order), then a run folder.

Every setting of TrainConfig is also a flag of the same name with dashes; the
flags are generated from the config's type hints so the two cannot drift apart.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from resnet_cifar.checkpoint import read_checkpoint
from resnet_cifar.config import CHOICES, KEYS, TrainConfig, check_values, read_yaml, resolve, validate
from resnet_cifar.errors import UserError
from resnet_cifar.recipes import RECIPES, default_preset, recipe_settings
from resnet_cifar.train.distributed import barrier, from_main_process, is_main_process, process_device, process_group
from resnet_cifar.train.hardware import resolve_device
from resnet_cifar.train.run_folder import check_not_in_use, prepare_new
from resnet_cifar.train.trainer import train

HELP = "train a ResNet and write a run folder (config, metrics, curves, checkpoints, summary)"

# Settings a resumed run may change; everything else comes from its checkpoint.
RESUMABLE = ("epochs", "device", "data_dir", "download", "evaluate_test")

METAVARS = {"init_from": "FILE", "data_dir": "DIR"}

# Flag groups: (title, [(setting, help)]). Types, choices and defaults come from TrainConfig.
GROUPS: list[tuple[str, list[tuple[str, str]]]] = [
    ("model", [
        ("model", "network name, see `resnet-cifar models`"),
        ("stem", "cifar: 3x3 stride-1 stem; imagenet: torchvision's 7x7 stem with max-pool"),
        ("zero_init_residual", "start every residual branch at zero"),
        ("init_from", "torchvision ImageNet weights file (state_dict) to start from; needs --stem imagenet"),
        ("whiten_stem", "set the first convolution to whiten 2x2 patches of the training images, then freeze it"),
        ("stem_bias_epochs", "with --whiten-stem: train the stem's bias at the BN biases' rate, decaying to 0 over these epochs, then freeze it"),
    ]),
    ("data", [
        ("dataset", "which dataset"),
        ("data_dir", "folder holding the dataset (or where --download puts it)"),
        ("download", "download the CIFAR archive if it is missing (md5-checked)"),
        ("labels", "CIFAR-100 labels: fine (100 classes) or coarse (20)"),
        ("val_split", "training images held out for validation (0: none)"),
        ("image_size", "side images are stored at (folder datasets are resized to it)"),
        ("input_size", "side the model sees (the loader resizes batches)"),
        ("mean", "per-channel normalisation mean, 0-1 scale (default: the training images')"),
        ("std", "per-channel normalisation std, 0-1 scale (default: the training images')"),
        ("crop_padding", "random-crop padding in pixels (0: no crops)"),
        ("padding_mode", "how crops fill the border"),
        ("flip", "horizontal flips: random, or alternate (each image flipped every other epoch)"),
        ("cutout", "side of a square zeroed at a random place in each image (0: off)"),
        ("early_crop_size", "train the first --early-crop-epochs on random windows of this side: cheaper steps, objects at their scale"),
        ("early_crop_epochs", "epochs at the start trained on --early-crop-size windows"),
    ]),
    ("optimisation", [
        ("epochs", "epochs to train (with --resume: extend the run to this many)"),
        ("batch_size", "images per step over all processes together (under torchrun each takes an equal share)"),
        ("optimizer", "optimizer; muon: Muon for the convolution filters, SGD for biases and classifier"),
        ("lr", "peak learning rate"),
        ("momentum", "SGD momentum"),
        ("nesterov", "Nesterov momentum (SGD)"),
        ("muon_lr", "muon: the filters' peak learning rate"),
        ("muon_momentum", "muon: the filters' momentum"),
        ("weight_decay", "weight decay"),
        ("weight_decay_bn_bias", "also decay BatchNorm weights and biases"),
        ("bn_bias_lr_scale", "learning-rate multiplier for BatchNorm biases"),
        ("schedule", "learning-rate schedule, applied per step"),
        ("milestones", "multistep: fractions of the run at which the lr is divided by 10"),
        ("warmup_epochs", "linear warmup length in epochs (may be fractional)"),
        ("label_smoothing", "label smoothing of the training loss"),
        ("grad_clip", "clip the global gradient norm to this value"),
        ("ema", "validate and export an exponential moving average of the weights"),
        ("ema_decay", "EMA decay per step"),
    ]),
    ("evaluation", [
        ("tta", "test-time augmentation for validation and test"),
        ("evaluate_test", "evaluate the test split once, at the end, with the best weights"),
    ]),
    ("speed and reproducibility", [
        ("device", "auto, cpu, cuda or cuda:N"),
        ("amp", "mixed precision: auto is bf16 on CUDA and off on the CPU"),
        ("channels_last", "channels-last memory format (faster convolutions)"),
        ("compile", "torch.compile the model (slow start, faster steps)"),
        ("sync_bn", "under torchrun: BatchNorm statistics over the global batch rather than each process's share"),
        ("seed", "seed of every random choice (initialisation, split, augmentation)"),
        ("deterministic", "deterministic kernels: bit-identical reruns, somewhat slower"),
    ]),
]


def _add_setting(group: argparse._ArgumentGroup, key: str, help_text: str) -> None:
    hint = str(TrainConfig.__annotations__[key])
    options: dict[str, Any] = {"dest": key, "default": argparse.SUPPRESS, "help": help_text}
    if hint == "bool":
        options["action"] = argparse.BooleanOptionalAction
    elif hint.startswith("list"):
        options.update(type=float, nargs="+", metavar="X")
    else:
        options["type"] = int if hint.startswith("int") else float if hint.startswith("float") else str
        if key in CHOICES:
            options["choices"] = CHOICES[key]
        else:
            options["metavar"] = {"int": "N", "float": "X"}.get(options["type"].__name__, METAVARS.get(key, key.upper()))
    group.add_argument("--" + key.replace("_", "-"), **options)


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
    for title, settings in GROUPS:
        group = parser.add_argument_group(title)
        for key, help_text in settings:
            _add_setting(group, key, help_text)


def run(args: argparse.Namespace) -> int:
    flags = {key: value for key, value in vars(args).items() if key in KEYS}
    if args.dist_timeout <= 0:
        raise UserError(f"--dist-timeout must be a positive number of seconds; got {args.dist_timeout:g}.")
    config, run_dir, resume = _resume(args, flags) if args.resume else _new_run(args, flags)
    with process_group(process_device(config.device), args.dist_timeout):
        run_dir = Path(from_main_process(str(run_dir)))  # a default name holds the time, which may differ by a second
        if resume is None and is_main_process():
            prepare_new(run_dir, args.overwrite)
        barrier()  # the folder is ready before any rank goes on
        return train(config, run_dir, resume=resume)


def _new_run(args: argparse.Namespace, flags: dict[str, Any]) -> tuple[TrainConfig, Path, None]:
    file_values = read_yaml(args.config) if args.config else {}
    preset = flags.get("preset") or file_values.get("preset")
    if preset is None:
        preset = default_preset(resolve_device(flags.get("device", file_values.get("device", "auto"))).type)
    config = resolve(recipe_settings(preset), file_values, flags)
    run_dir = Path(args.output) if args.output else Path("runs") / f"{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    return config, run_dir, None


def _resume(args: argparse.Namespace, flags: dict[str, Any]) -> tuple[TrainConfig, Path, tuple[Path, dict[str, Any]]]:
    fixed = [key for key in flags if key not in RESUMABLE]
    fixed += [name for name in ("config", "output") if getattr(args, name)]
    if args.overwrite:
        fixed.append("overwrite")
    if fixed:
        raise UserError(
            f"--resume continues a run with its own settings, so --{fixed[0].replace('_', '-')} cannot be given; "
            f"only {', '.join('--' + key.replace('_', '-') for key in RESUMABLE)} may change."
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
