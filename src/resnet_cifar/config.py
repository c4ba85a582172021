"""Training settings: one flat table, filled from a recipe, then a YAML file, then flags.

Flat, so every setting has one name everywhere: the YAML key, the attribute and,
with dashes, the flag (`batch_size`, `--batch-size`). Unknown keys are errors,
so a typo never silently falls back to a default (nanoGPT's rule).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resnet_cifar.errors import UserError


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are what a recipe does not mention."""

    preset: str = "fast"
    # Model
    model: str = "resnet20"
    stem: str = "cifar"  # "imagenet": torchvision's 7x7 stride-2 stem and max-pool
    zero_init_residual: bool = False
    whiten_stem: bool = False  # first convolution set from the training images' patch statistics, then frozen
    stem_bias_epochs: float | None = None  # whiten_stem: the stem's bias learns at the BN biases' rate, decaying to 0 over these epochs, then freezes
    init_from: str | None = None  # torchvision ImageNet state_dict file; needs stem "imagenet"
    # Data
    dataset: str = "cifar10"
    data_dir: str = "data"
    download: bool = False
    labels: str = "fine"  # CIFAR-100 only: "coarse" trains on the 20 superclasses
    val_split: int = 5000  # training images held out for validation and model selection
    image_size: int = 32  # side the dataset stores images at (folder datasets are resized to it)
    input_size: int | None = None  # side the model sees, when the loader should resize
    mean: list[float] | None = None  # None: the training images' own statistics
    std: list[float] | None = None
    crop_padding: int = 0  # random crops from images padded by this many pixels
    padding_mode: str = "reflect"
    flip: str = "none"  # none | random | alternate (each image flipped every other epoch)
    cutout: int = 0
    early_crop_size: int | None = None  # the first early_crop_epochs train on random windows this many pixels wide
    early_crop_epochs: int = 0  # 0: no early crops
    # Optimisation
    epochs: int = 10
    batch_size: int = 128  # global: under torchrun each of N processes takes batch_size / N images per step
    optimizer: str = "sgd"  # sgd | muon (Muon for the convolution filters, SGD for the rest) | adam | adamw
    lr: float = 0.1
    momentum: float = 0.9  # SGD, and muon's SGD part
    muon_lr: float = 0.24  # muon: the filters' peak learning rate (an angle per step, not comparable to lr)
    muon_momentum: float = 0.6  # muon: the filters' Nesterov momentum
    nesterov: bool = False
    weight_decay: float = 5e-4
    weight_decay_bn_bias: bool = True  # False: BatchNorm weights and biases are not decayed
    bn_bias_lr_scale: float = 1.0  # BatchNorm biases learn this many times faster (decay per step unchanged)
    schedule: str = "cosine"  # constant | multistep | cosine | linear, per step after the warmup
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # multistep: fractions of the run
    warmup_epochs: float = 0.0  # linear warmup from lr/100; "linear" with warmup is the one-cycle shape
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max global gradient norm
    ema: bool = False  # validate, select and export an exponential moving average of the weights
    ema_decay: float = 0.999  # per step
    # Evaluation
    tta: str = "none"  # none | flip | flip-translate, for validation and test
    evaluate_test: bool = False  # the test split is read only when asked, at the very end
    # Speed and reproducibility
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto | off | bf16 | fp16; auto is bf16 on CUDA, off on the CPU
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False  # several processes: BatchNorm statistics over the global batch, not each rank's share
    seed: int = 0
    deterministic: bool = False


CHOICES: dict[str, tuple[str, ...]] = {
    "stem": ("cifar", "imagenet"),
    "dataset": ("cifar10", "cifar100", "folder"),
    "labels": ("fine", "coarse"),
    "padding_mode": ("reflect", "zeros"),
    "flip": ("none", "random", "alternate"),
    "optimizer": ("sgd", "muon", "adam", "adamw"),
    "schedule": ("constant", "multistep", "cosine", "linear"),
    "tta": ("none", "flip", "flip-translate"),
    "amp": ("auto", "off", "bf16", "fp16"),
}
POSITIVE = ("image_size", "epochs", "batch_size", "lr", "bn_bias_lr_scale", "muon_lr")
NON_NEGATIVE = ("val_split", "crop_padding", "cutout", "early_crop_epochs", "momentum", "muon_momentum", "weight_decay", "warmup_epochs", "label_smoothing")

_HINTS = typing.get_type_hints(TrainConfig)
KEYS = tuple(_HINTS)


def _type_ok(value: Any, hint: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return isinstance(value, list) and all(_type_ok(item, args[0]) for item in value)
    return any(_type_ok(value, arg) if arg is not type(None) else value is None for arg in args)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("NoneType", "null").replace("<class '", "").replace("'>", "")


def check_values(values: dict[str, Any], source: str) -> dict[str, Any]:
    """`values` unchanged if every key is known and typed right, else a UserError naming the key and `source`."""
    for key, value in values.items():
        if key not in _HINTS:
            raise UserError(f"Unknown setting {key!r} in {source}; valid settings: {', '.join(KEYS)}.")
        if not _type_ok(value, _HINTS[key]):
            raise UserError(f"Setting {key!r} in {source} must be {_type_name(_HINTS[key])}, got {value!r}.")
    return values


def validate(config: TrainConfig) -> TrainConfig:
    """Reject values no run could use, naming the setting (key, or the flag with dashes)."""
    for key, choices in CHOICES.items():
        if getattr(config, key) not in choices:
            raise UserError(f"Setting {key!r} must be one of {', '.join(choices)}; got {getattr(config, key)!r}.")
    for key in POSITIVE:
        if getattr(config, key) <= 0:
            raise UserError(f"Setting {key!r} must be positive; got {getattr(config, key)!r}.")
    for key in NON_NEGATIVE:
        if getattr(config, key) < 0:
            raise UserError(f"Setting {key!r} must not be negative; got {getattr(config, key)!r}.")
    for key in ("mean", "std"):
        value = getattr(config, key)
        if value is not None and len(value) != 3:
            raise UserError(f"Setting {key!r} needs three values (red, green, blue); got {value!r}.")
    if config.std is not None and min(config.std) <= 0:
        raise UserError(f"Setting 'std' must be positive; got {config.std!r}.")
    if not 0 <= config.ema_decay < 1:
        raise UserError(f"Setting 'ema_decay' must be in [0, 1); got {config.ema_decay!r}.")
    if config.stem_bias_epochs is not None and (not config.whiten_stem or config.stem_bias_epochs <= 0):
        raise UserError(f"Setting 'stem_bias_epochs' needs whiten_stem and a positive number of epochs; got "
                        f"{config.stem_bias_epochs!r} with whiten_stem {config.whiten_stem}.")
    if config.schedule == "multistep" and not all(0 < m < 1 for m in config.milestones):
        raise UserError(f"Setting 'milestones' takes fractions of the run between 0 and 1; got {config.milestones!r}.")
    if config.grad_clip is not None and config.grad_clip <= 0:
        raise UserError(f"Setting 'grad_clip' must be positive or null; got {config.grad_clip!r}.")
    if config.input_size is not None and config.input_size <= 0:
        raise UserError(f"Setting 'input_size' must be positive or null; got {config.input_size!r}.")
    if config.early_crop_epochs and not 0 < (config.early_crop_size or 0) <= config.image_size:
        raise UserError(f"Setting 'early_crop_epochs' needs 'early_crop_size', a window side from 1 to image_size "
                        f"({config.image_size}); got {config.early_crop_size!r} (early_crop_epochs 0 turns the crops off).")
    return config


def train_crop_size(config: TrainConfig, epoch: int) -> int | None:
    """The side of the training windows in `epoch` (0-based), or None for whole (padded and shifted) images."""
    return config.early_crop_size if epoch < config.early_crop_epochs else None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML file (a mapping of keys to values), checked against TrainConfig."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Config file {path} does not exist; check the path.")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"Config file {path} is not valid YAML ({str(error).splitlines()[0]}); fix its syntax.") from error
    if not isinstance(values, dict):
        raise UserError(f"Config file {path} must be a mapping of settings (key: value lines).")
    return check_values(values, str(path))


def write_yaml(config: TrainConfig, path: str | Path) -> None:
    header = "# Every setting of this run; rerun it with: resnet-cifar train --config THIS_FILE --output NEW_DIR\n"
    Path(path).write_text(header + yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


def resolve(recipe: dict[str, Any], file_values: dict[str, Any], flag_values: dict[str, Any]) -> TrainConfig:
    """Recipe, then config file, then flags: a later layer wins for every key it sets."""
    return validate(TrainConfig(**{**recipe, **file_values, **flag_values}))
