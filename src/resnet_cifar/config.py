"""Training settings: one flat table, filled from a recipe, then a YAML file, then flags.

Every setting is defined once, below, as a field of TrainConfig: its type, its
default, and in `setting(...)` its help line, flag group, choices, range and
whether a resumed run may change it. The `train` flags, the checks of YAML files
and recipes, and the settings table in docs/training.md are all made from these
fields, so a new setting needs one line here and nothing else.

Flat, so every setting has one name everywhere: the YAML key, the attribute and,
with dashes, the flag (`batch_size`, `--batch-size`). Unknown keys are errors,
so a typo never silently falls back to a default (nanoGPT's rule).

This module imports no torch, so `resnet-cifar train --help` answers at once;
the names a choice accepts come from resnet_cifar.choices, as for the modules
that implement them.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resnet_cifar.choices import (AMP_MODES, AUGMENT_POLICIES, DATASETS, EVALUATION_DATASETS, FLIPS, LABELS,
                                  MAGNITUDE_BINS, OPTIMIZERS, PADDING_MODES, SCHEDULES, STEMS, TTA_MODES)
from resnet_cifar.errors import UserError


GROUPS = ("run", "model", "data", "optimisation", "evaluation", "speed and reproducibility")


@dataclass(frozen=True)
class Range:
    """The values a number may take: above `low` (or from it, when `closed`), below `high` if given."""

    low: float
    closed: bool = False  # the low end itself is allowed
    high: float | None = None
    high_closed: bool = False  # the high end itself is allowed

    def admits(self, value: float) -> bool:
        above = value >= self.low if self.closed else value > self.low
        below = self.high is None or (value <= self.high if self.high_closed else value < self.high)
        return above and below

    def describe(self) -> str:
        """What `admits` asks, to follow "must": "be positive", "be in [0, 1)", ..."""
        if self.high is not None:
            return f"be in {'[' if self.closed else '('}{self.low:g}, {self.high:g}{']' if self.high_closed else ')'}"
        if self.low == 0:
            return "not be negative" if self.closed else "be positive"
        return f"be at least {self.low:g}" if self.closed else f"be above {self.low:g}"


POSITIVE = Range(0)
NON_NEGATIVE = Range(0, closed=True)
FRACTION = Range(0, closed=True, high=1)  # 0 included, 1 not
PROBABILITY = Range(0, closed=True, high=1, high_closed=True)


def setting(default: Any, group: str, help: str, *, choices: tuple[str, ...] = (), limits: Range | None = None,
            resumable: bool = False, metavar: str | None = None) -> Any:
    """One setting's definition: a dataclass field whose metadata says everything but its type."""
    if group not in GROUPS:
        raise ValueError(f"Unknown settings group {group!r}.")
    metadata = {"group": group, "help": help, "choices": choices, "limits": limits, "resumable": resumable,
                "metavar": metavar}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are what a recipe does not mention."""

    preset: str | None = setting(None, "run", "the recipe these settings started from (--preset)")
    # Model
    model: str = setting("fastresnet8", "model", "network name, see `resnet-cifar models`; without --preset it "
                         "trains with its own recipe")
    stem: str = setting("cifar", "model", "cifar: 3x3 stride-1 stem; imagenet: torchvision's 7x7 stem with max-pool",
                        choices=STEMS)
    zero_init_residual: bool = setting(False, "model", "start every residual branch at zero")
    whiten_stem: bool = setting(False, "model", "set the first convolution to whiten 2x2 patches of the training "
                                "images, then freeze it")
    stem_bias_epochs: float | None = setting(None, "model", "with --whiten-stem: train the stem's bias at the BN "
                                             "biases' rate, decaying to 0 over these epochs, then freeze it",
                                             limits=POSITIVE)
    init_from: str | None = setting(None, "model", "torchvision ImageNet weights file (state_dict) to start from; "
                                    "needs --stem imagenet", metavar="FILE")
    drop_path: float = setting(0.0, "model", "stochastic depth: the last residual branch is dropped with this "
                               "probability in training, earlier ones less, linearly (0: off)", limits=FRACTION)
    dropout: float = setting(0.0, "model", "Wide ResNets: dropout between the two convolutions of each block (0: off)",
                             limits=FRACTION)
    # Data
    dataset: str = setting("cifar10", "data", f"which dataset ({', '.join(EVALUATION_DATASETS)}: evaluate only)",
                           choices=DATASETS + EVALUATION_DATASETS)
    data_dir: str = setting("data", "data", "folder holding the dataset (or where --download puts it)",
                            resumable=True, metavar="DIR")
    download: bool = setting(False, "data", "download the CIFAR archive if it is missing (md5-checked)", resumable=True)
    labels: str = setting("fine", "data", "CIFAR-100 labels: fine (100 classes) or coarse (20)", choices=LABELS)
    val_split: int = setting(5000, "data", "training images held out for validation and model selection (0: none)",
                             limits=NON_NEGATIVE)
    image_size: int = setting(32, "data", "side images are stored at (folder datasets are resized to it)",
                              limits=POSITIVE)
    input_size: int | None = setting(None, "data", "side the model sees (the loader resizes batches)", limits=POSITIVE)
    mean: list[float] | None = setting(None, "data", "per-channel normalisation mean, 0-1 scale "
                                       "(default: the training images')")
    std: list[float] | None = setting(None, "data", "per-channel normalisation std, 0-1 scale "
                                      "(default: the training images')")
    crop_padding: int = setting(0, "data", "random-crop padding in pixels (0: no crops)", limits=NON_NEGATIVE)
    padding_mode: str = setting("reflect", "data", "how crops fill the border", choices=PADDING_MODES)
    flip: str = setting("none", "data", "horizontal flips: random, or alternate (each image flipped every other "
                        "epoch)", choices=FLIPS)
    cutout: int = setting(0, "data", "side of a square zeroed at a random place in each image (0: off)",
                          limits=NON_NEGATIVE)
    early_crop_size: int | None = setting(None, "data", "train the first --early-crop-epochs on random windows of "
                                          "this side: cheaper steps, objects at their scale", limits=POSITIVE)
    early_crop_epochs: int = setting(0, "data", "epochs at the start trained on --early-crop-size windows (0: none)",
                                     limits=NON_NEGATIVE)
    augment: str = setting("none", "data", "augmentation policy, drawn per image: AutoAugment's CIFAR-10 policy, "
                           "RandAugment or TrivialAugmentWide", choices=AUGMENT_POLICIES)
    randaugment_ops: int = setting(2, "data", "randaugment: operations per image", limits=NON_NEGATIVE)
    randaugment_magnitude: int = setting(9, "data", f"randaugment: magnitude bin, 0 to {MAGNITUDE_BINS - 1}",
                                         limits=Range(0, closed=True, high=MAGNITUDE_BINS - 1, high_closed=True))
    random_erasing: float = setting(0.0, "data", "probability of erasing a random box of each training image "
                                    "(after normalisation, so it takes the mean colour; 0: off)", limits=PROBABILITY)
    brightness: float = setting(0.0, "data", "shift each training image's normalised pixels by a uniform draw in "
                                "[-X, X] (0: off)", limits=NON_NEGATIVE)
    contrast: float = setting(0.0, "data", "scale each training image's normalised pixels by a uniform draw in "
                              "[1 - X, 1 + X] (0: off)", limits=FRACTION)
    mixup: float = setting(0.0, "data", "MixUp's Beta alpha: each batch blended with itself shuffled (0: off)",
                           limits=NON_NEGATIVE)
    cutmix: float = setting(0.0, "data", "CutMix's Beta alpha: a box of each image replaced by another's; with "
                            "--mixup too, each batch takes one of the two (0: off)", limits=NON_NEGATIVE)
    # Optimisation
    epochs: int = setting(10, "optimisation", "epochs to train (with --resume: extend the run to this many)",
                          limits=POSITIVE, resumable=True)
    batch_size: int = setting(128, "optimisation", "images per step over all processes together (under torchrun "
                              "each takes an equal share)", limits=POSITIVE)
    optimizer: str = setting("sgd", "optimisation", "optimizer; muon: Muon for the convolution filters, SGD for "
                             "biases and classifier", choices=OPTIMIZERS)
    lr: float = setting(0.1, "optimisation", "peak learning rate", limits=POSITIVE)
    momentum: float = setting(0.9, "optimisation", "SGD momentum (also muon's SGD part)", limits=FRACTION)
    nesterov: bool = setting(False, "optimisation", "Nesterov momentum (SGD and muon)")
    muon_lr: float = setting(0.24, "optimisation", "muon: the filters' peak learning rate (an angle per step, not "
                             "comparable to --lr)", limits=POSITIVE)
    muon_momentum: float = setting(0.6, "optimisation", "muon: the filters' Nesterov momentum", limits=FRACTION)
    weight_decay: float = setting(5e-4, "optimisation", "weight decay", limits=NON_NEGATIVE)
    weight_decay_bn_bias: bool = setting(True, "optimisation", "also decay BatchNorm weights and biases")
    bn_bias_lr_scale: float = setting(1.0, "optimisation", "learning-rate multiplier for BatchNorm biases (their "
                                      "decay per step unchanged)", limits=POSITIVE)
    schedule: str = setting("cosine", "optimisation", "learning-rate schedule, applied per step after the warmup",
                            choices=SCHEDULES)
    milestones: list[float] = setting([0.5, 0.75], "optimisation", "multistep: fractions of the run at which the "
                                      "lr is multiplied by --milestone-gamma")
    milestone_gamma: float = setting(0.1, "optimisation", "multistep: the factor applied to the lr at each milestone",
                                     limits=Range(0, high=1))
    warmup_epochs: float = setting(0.0, "optimisation", "linear warmup from lr/100, in epochs (may be fractional); "
                                   "with the linear schedule, the one-cycle shape", limits=NON_NEGATIVE)
    label_smoothing: float = setting(0.0, "optimisation", "label smoothing of the training loss", limits=FRACTION)
    grad_clip: float | None = setting(None, "optimisation", "clip the global gradient norm to this value",
                                      limits=POSITIVE)
    ema: bool = setting(False, "optimisation", "validate, select and export an exponential moving average of the "
                        "weights")
    ema_decay: float = setting(0.999, "optimisation", "EMA decay per step", limits=FRACTION)
    # Evaluation
    tta: str = setting("none", "evaluation", "test-time augmentation for validation and test", choices=TTA_MODES)
    tta_fraction: float = setting(1.0, "evaluation", "test-time views only for this fraction of the images, those "
                                  "whose plain top-1 probability is lowest (selective TTA; 1: every image)",
                                  limits=Range(0, high=1, high_closed=True))
    evaluate_test: bool = setting(False, "evaluation", "evaluate the test split once, at the end, with the best "
                                  "weights", resumable=True)
    # Speed and reproducibility
    device: str = setting("auto", "speed and reproducibility", "auto, cpu, cuda or cuda:N", resumable=True)
    amp: str = setting("auto", "speed and reproducibility", "mixed precision: auto is bf16 on CUDA and off on the CPU",
                       choices=AMP_MODES)
    channels_last: bool = setting(True, "speed and reproducibility", "channels-last memory format (faster "
                                  "convolutions)")
    compile: bool = setting(False, "speed and reproducibility", "torch.compile the model (slow start, faster steps)")
    sync_bn: bool = setting(False, "speed and reproducibility", "under torchrun: BatchNorm statistics over the "
                            "global batch rather than each process's share")
    seed: int = setting(0, "speed and reproducibility", "seed of every random choice (initialisation, split, "
                        "augmentation)")
    deterministic: bool = setting(False, "speed and reproducibility", "deterministic kernels: bit-identical reruns, "
                                  "somewhat slower")


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)
KEYS = tuple(FIELDS)
RESUMABLE = tuple(name for name, f in FIELDS.items() if f.metadata["resumable"])


def value_type(key: str) -> type:
    """The setting's type with any `| None` removed: bool, int, float, str or list."""
    hint = _HINTS[key]
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)] if typing.get_origin(hint) is not list else []
    kind = args[0] if args else hint
    return list if typing.get_origin(kind) is list else kind


def default(key: str) -> Any:
    """The value a setting has when no recipe, file or flag sets it."""
    f = FIELDS[key]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _type_ok(value: Any, hint: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # a finite number: no setting means infinity, and NaN compares false with every limit
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return isinstance(value, list) and all(_type_ok(item, args[0]) for item in value)
    return any(_type_ok(value, arg) if arg is not type(None) else value is None for arg in args)


def _type_name(hint: Any) -> str:
    name = str(hint).replace("typing.", "").replace("NoneType", "null").replace("<class '", "").replace("'>", "")
    return name.replace("float", "a finite float") if "float" in name else name


def check_values(values: dict[str, Any], source: str) -> dict[str, Any]:
    """`values` unchanged if every key is known and typed right, else a UserError naming the key and `source`."""
    for key, value in values.items():
        if key not in _HINTS:
            raise UserError(f"Unknown setting {key!r} in {source}; valid settings: {', '.join(KEYS)}.")
        if not _type_ok(value, _HINTS[key]):
            raise UserError(f"Setting {key!r} in {source} must be {_type_name(_HINTS[key])}, got {value!r}.")
    return values


def check_setting(key: str, value: Any) -> Any:
    """`value` if it is among the setting's choices and within its range, else a UserError naming the setting."""
    metadata = FIELDS[key].metadata
    choices, limits = metadata["choices"], metadata["limits"]
    if choices and value not in choices:
        raise UserError(f"Setting {key!r} must be one of {', '.join(choices)}; got {value!r}.")
    if limits is not None and value is not None and not limits.admits(value):
        raise UserError(f"Setting {key!r} must {limits.describe()}; got {value!r}.")
    return value


def validate(config: TrainConfig) -> TrainConfig:
    """Reject values no run could use, naming the setting (the YAML key; the flag is the key with dashes)."""
    if config.dataset in EVALUATION_DATASETS:
        trained_on = "cifar100" if config.dataset == "cifar100-c" else "cifar10"
        raise UserError(f"--dataset {config.dataset} is a test set for evaluation only; train on {trained_on}, then "
                        f"run resnet-cifar evaluate CHECKPOINT --dataset {config.dataset}.")
    for key in FIELDS:
        check_setting(key, getattr(config, key))
    for key in ("mean", "std"):
        value = getattr(config, key)
        if value is not None and len(value) != 3:
            raise UserError(f"Setting {key!r} needs three values (red, green, blue); got {value!r}.")
    if config.std is not None and min(config.std) <= 0:
        raise UserError(f"Setting 'std' must be positive; got {config.std!r}.")
    if config.stem_bias_epochs is not None and not config.whiten_stem:
        raise UserError(f"Setting 'stem_bias_epochs' needs whiten_stem and a positive number of epochs; got "
                        f"{config.stem_bias_epochs!r} with whiten_stem {config.whiten_stem}.")
    if config.optimizer in ("sgd", "muon") and config.nesterov and config.momentum == 0:
        raise UserError("Nesterov momentum (--nesterov) needs --momentum above 0.")
    if config.schedule == "multistep" and not all(0 < m < 1 for m in config.milestones):
        raise UserError(f"Setting 'milestones' takes fractions of the run between 0 and 1; got {config.milestones!r}.")
    if config.early_crop_epochs and not 0 < (config.early_crop_size or 0) <= config.image_size:
        raise UserError(f"Setting 'early_crop_epochs' needs 'early_crop_size', a window side from 1 to image_size "
                        f"({config.image_size}); got {config.early_crop_size!r} (early_crop_epochs 0 turns the crops off).")
    return config


def train_crop_size(config: TrainConfig, epoch: int) -> int | None:
    """The side of the training windows in `epoch` (0-based), or None for whole (padded and shifted) images."""
    return config.early_crop_size if epoch < config.early_crop_epochs else None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice is an error rather than the last one silently winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML file (a mapping of keys to values), checked against TrainConfig."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"Config file {path} is a folder; pass a YAML file such as {path / 'config.yaml'}.")
    if not path.is_file():
        raise UserError(f"Config file {path} does not exist; check the path.")
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except UnicodeDecodeError:
        raise UserError(f"Config file {path} is not UTF-8 text; pass a YAML file of settings (key: value lines).") from None
    except _DuplicateKey as error:
        raise UserError(f"Config file {path} gives {error.key!r} twice (again on line {error.line}); keep one.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"Config file {path} is not valid YAML ({str(error).splitlines()[0]}{where}); "
                        "fix its syntax.") from None
    if not isinstance(values, dict):
        raise UserError(f"Config file {path} must be a mapping of settings (key: value lines).")
    return check_values(values, str(path))


def write_yaml(config: TrainConfig, path: str | Path) -> None:
    header = "# Every setting of this run; rerun it with: resnet-cifar train --config THIS_FILE --output NEW_DIR\n"
    Path(path).write_text(header + yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


def resolve(recipe: dict[str, Any], file_values: dict[str, Any], flag_values: dict[str, Any]) -> TrainConfig:
    """Recipe, then config file, then flags: a later layer wins for every key it sets.

    A recipe's stem-bias schedule belongs to its whitened stem: a file or flag that turns the whitening
    off takes the schedule with it, unless it sets the schedule too (and is then told it needs the whitening).
    """
    values = {**recipe, **file_values, **flag_values}
    if not values.get("whiten_stem") and "stem_bias_epochs" not in {**file_values, **flag_values}:
        values.pop("stem_bias_epochs", None)
    return validate(TrainConfig(**values))


_DOC_TYPES = {bool: "true or false", int: "integer", float: "number", str: "text", list: "list of numbers"}


def settings_table() -> str:
    """The Markdown table of every setting, by group, as docs/training.md shows it (`make docs` rewrites it)."""
    lines = []
    for group in GROUPS:
        lines += ["", f"**{group.capitalize()}**", "", "| setting (flag) | type | default | what it does |",
                  "|---|---|---|---|"]
        for key, f in FIELDS.items():
            if f.metadata["group"] != group:
                continue
            kind = ", ".join(f.metadata["choices"]) if f.metadata["choices"] else _DOC_TYPES[value_type(key)]
            if f.metadata["limits"] is not None:
                kind += ", " + f.metadata["limits"].describe().replace("be ", "", 1)  # "not negative", "in [0, 1)"
            if type(None) in typing.get_args(_HINTS[key]):
                kind += ", or null"
            value = default(key)
            shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            resumable = " May change on `--resume`." if f.metadata["resumable"] else ""
            lines.append(f"| `{key}` (`--{key.replace('_', '-')}`) | {kind} | `{shown}` | "
                         f"{f.metadata['help']}.{resumable} |")
    return "\n".join(lines[1:]) + "\n"
