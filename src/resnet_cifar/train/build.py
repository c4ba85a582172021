"""Build: everything a training run needs, made from its settings and the process it runs in.

`build_run(config, world)` is the one place where a config turns into working
parts: the machine settings, the dataset (or one passed in), the preprocessing,
the loaders, the model with its recipe hooks, the optimizer, schedule and
engine. The trainer, the FLOP count and the benchmarks all build through it, so
what they measure is what a user trains.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from resnet_cifar.config import TrainConfig, train_crop_size
from resnet_cifar.data import Dataset, Loader, Split, load_dataset
from resnet_cifar.data.augment import AugmentPolicy, ColorJitter, RandomErasing
from resnet_cifar.data.loader import Stream
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError
from resnet_cifar.models import Network, create_model, model_entry
from resnet_cifar.models.summary import check_input_size
from resnet_cifar.models.pretrained import init_from_misfit, init_from_torchvision
from resnet_cifar.train.distributed import data_parallel, sync_batch_norm
from resnet_cifar.train.ema import EMA
from resnet_cifar.train.engine import Engine
from resnet_cifar.train.hardware import amp_dtype, configure
from resnet_cifar.train.hooks import recipe_hooks, stem_convolution
from resnet_cifar.train.mixing import BatchMixer, Mixed
from resnet_cifar.train.optim import build_optimizer, build_schedule
from resnet_cifar.train.whitening import misfit as whitening_misfit
from resnet_cifar.world import World

# Model options that are settings, passed only when set: not every network of the zoo has each of them.
MODEL_OPTIONS = ("zero_init_residual", "drop_path", "dropout")


@dataclass
class Run:
    config: TrainConfig
    world: World
    dataset: Dataset
    preprocessing: Preprocessing
    train_loader: Loader
    val_loader: Loader | None
    model: Network
    model_kwargs: dict[str, Any]  # create_model's arguments besides the name: what a checkpoint rebuilds it from
    engine: Engine
    mixer: BatchMixer | None = None

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights validation scores, best.pt selects and inference uses: the average when there is one."""
        return self.engine.ema.module if self.engine.ema is not None else self.model

    def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor | Mixed]]:
        """The training batches of `epoch` from `start_batch` on, at the epoch's crop size, mixed when asked
        (the labels then become a `Mixed`); each batch's mixing, like its images, depends only on its position."""
        batches = self.train_loader.epoch(epoch, start_batch=start_batch, crop_size=train_crop_size(self.config, epoch))
        if self.mixer is None:
            yield from batches
            return
        rng = np.random.default_rng([self.config.seed % 2**64, epoch, Stream.MIXING])
        draws = self.mixer.plan(rng, len(self.train_loader))[start_batch:]
        for (x, y), draw in zip(batches, draws):
            mixed = self.mixer.mix(x, y, self.dataset.num_classes, draw)
            yield mixed.x, mixed

    def step_cost(self, epoch: int) -> float:
        """A training step's cost in `epoch` relative to one on whole images: the share of pixels its crops keep
        (a crop the loader resizes to input_size costs a whole step)."""
        side = train_crop_size(self.config, epoch)
        if side is None or self.config.input_size is not None:
            return 1.0
        return side * side / (self.train_loader.height * self.train_loader.width)

    def eval_loader(self, split: Split) -> Loader:
        """A loader of `split` for evaluation: this process's share, prepared as training's images are."""
        return Loader(split, train=False, **_loader_options(self.config, self.world, self.preprocessing))


def load_data(config: TrainConfig, world: World, splits: tuple[str, ...] = ("train", "val")) -> Dataset:
    """The splits of the run's dataset; with --download rank 0 fetches it first and the others then find it."""
    if config.download and not world.is_main:
        world.barrier()
    dataset = load_dataset(config.dataset, config.data_dir, splits=splits, val_split=config.val_split,
                           seed=config.seed, download=config.download, image_size=config.image_size,
                           labels=config.labels)
    if config.download and world.is_main:
        world.barrier()
    return dataset


def build_run(config: TrainConfig, world: World, dataset: Dataset | None = None, *, init_weights: bool = True) -> Run:
    """Every part of a run of `config` in `world`, on the dataset given or the one the config names.

    `init_weights`: start from --init-from's weights when given (False when a checkpoint's will replace them).
    """
    check_model_settings(config)  # before the data is read
    configure(world.device, config.seed, config.deterministic)
    splits = ("train", "val", "test") if config.evaluate_test else ("train", "val")
    dataset = dataset if dataset is not None else load_data(config, world, splits)
    preprocessing = Preprocessing.for_run(config.image_size, config.input_size, config.mean, config.std,
                                          dataset.mean, dataset.std)
    options = _loader_options(config, world, preprocessing)
    policy = AugmentPolicy(config.augment, num_ops=config.randaugment_ops, magnitude=config.randaugment_magnitude)
    train_loader = Loader(dataset.train, train=True, crop_padding=config.crop_padding,
                          padding_mode=config.padding_mode, flip=config.flip, cutout=config.cutout, policy=policy,
                          erasing=RandomErasing(config.random_erasing),
                          jitter=ColorJitter(config.brightness, config.contrast), **options)
    val_loader = Loader(dataset.val, train=False, **options) if dataset.val is not None else None
    model_kwargs = _model_kwargs(config, dataset.num_classes)
    model = create_model(config.model, **model_kwargs)
    if config.init_from and init_weights:
        init_from_torchvision(model, config.init_from)
    engine = _engine(config, world, model, dataset.train.images, preprocessing, len(train_loader))
    mixer = (BatchMixer(mixup=config.mixup or None, cutmix=config.cutmix or None)
             if config.mixup or config.cutmix else None)
    return Run(config, world, dataset, preprocessing, train_loader, val_loader, engine.model, model_kwargs, engine,
               mixer)


def _model_kwargs(config: TrainConfig, num_classes: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": num_classes, "stem": config.stem}
    kwargs.update({key: getattr(config, key) for key in MODEL_OPTIONS if getattr(config, key)})
    return kwargs


def memory_format(config: TrainConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.contiguous_format


@dataclass(frozen=True)
class Misfit:
    """A setting the network cannot take: its key, why (words that follow "cannot take KEY"), and the sentence
    for a user who set it themselves."""

    key: str
    reason: str
    message: str


def model_misfit(config: TrainConfig) -> Misfit | None:
    """The first setting of `config` that its network cannot take, found without data or weights."""
    entry, model = model_entry(config.model), config.model
    if config.stem not in entry.stems:
        return Misfit("stem", f"it has only the {' or '.join(entry.stems)} stem",
                      f"--model {model} has only the {' or '.join(entry.stems)} stem; "
                      f"drop --stem {config.stem} or choose another --model.")
    for key in MODEL_OPTIONS:
        if getattr(config, key) and key not in entry.options:
            flag = "--" + key.replace("_", "-")
            return Misfit(key, f"it has no {key} option",
                          f"--model {model} has no {flag} option (its options: {', '.join(entry.options) or 'none'}); "
                          f"drop {flag} or choose another --model.")
    sides = {"input_size" if config.input_size else "image_size": config.input_size or config.image_size}
    if config.early_crop_epochs and config.input_size is None:
        sides["early_crop_size"] = config.early_crop_size
    for key, side in sides.items():
        try:
            check_input_size(model, side, "--" + key.replace("_", "-"), stem=config.stem)
        except UserError as error:
            return Misfit(key, f"its layers shrink {side}x{side} images below one pixel", str(error))
    if config.whiten_stem:
        with torch.device("meta"):
            reason = whitening_misfit(stem_convolution(create_model(model, stem=config.stem)))
        if reason is not None:
            return Misfit("whiten_stem", reason, f"--model {model} cannot take --whiten-stem ({reason}); "
                                                 "drop --whiten-stem or use a model such as fastresnet8.")
    if config.init_from:
        misfit = init_from_misfit(model, config.stem)
        if misfit is not None:
            return Misfit("init_from", *misfit)
    return None


def check_model_settings(config: TrainConfig) -> None:
    """The model settings' mistakes, said before any work: an unknown name, a stem, option or side it lacks."""
    misfit = model_misfit(config)
    if misfit is not None:
        raise UserError(misfit.message)


def _loader_options(config: TrainConfig, world: World, preprocessing: Preprocessing) -> dict[str, Any]:
    return dict(batch_size=world.per_process_batch(config.batch_size), device=world.device,
                preprocessing=preprocessing, channels_last=config.channels_last, seed=config.seed,
                rank=world.rank, world_size=world.size)


def _engine(config: TrainConfig, world: World, model: Network, train_images: torch.Tensor,
            preprocessing: Preprocessing, steps_per_epoch: int) -> Engine:
    """The model on its device with the recipe's hooks, and the optimizer, schedule and wrappers that train it."""
    model.to(world.device, memory_format=memory_format(config))
    hooks = recipe_hooks(config, model, train_images, preprocessing, steps_per_epoch)
    if config.sync_bn and world.distributed:  # before the optimizer and EMA take the BatchNorm layers' parameters
        model = sync_batch_norm(model, world)
    optimizer = build_optimizer(model, config, [group for hook in hooks for group in hook.param_groups()])
    dtype = amp_dtype(config.amp, world.device)
    # The module that runs forward passes: the model itself, or wrapped in DDP when there are several
    # processes, then compiled when asked (compiling the DDP wrapper lets the compiler overlap the gradient sync).
    forward = data_parallel(model, world, params_may_freeze=any(hook.may_freeze_parameters for hook in hooks))
    forward = torch.compile(forward) if config.compile else forward
    return Engine(model, forward, optimizer, build_schedule(config, steps_per_epoch),
                  torch.amp.GradScaler(world.device.type, enabled=dtype == torch.float16), dtype,
                  label_smoothing=config.label_smoothing, grad_clip=config.grad_clip,
                  ema=EMA(model, config.ema_decay) if config.ema else None, hooks=hooks, world=world)
