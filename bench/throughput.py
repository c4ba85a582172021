"""Training images per second of a recipe's run against the plain PyTorch loop of a tutorial, model by model.

Ours: the run of `--preset` (default `paper`), with the --models, --batch-size,
--amp and --compile given, built by `resnet_cifar.train.build.build_run` and
trained by `run.engine.train_epoch` over `run.train_batches(epoch)`: the split on
the device and augmented in whole batches, channels_last, bf16 autocast on a GPU,
no host sync in the step, and whatever else the recipe adds (EMA, recipe hooks).

Baseline: the loop a tutorial ships for the same config, which mirrors it in
- the network: torchvision's (resnet18 ... resnet152) with the usual CIFAR edit
  (3x3 stride-1 conv1, no max-pool) for the `cifar` stem and torchvision's own
  layout for `imagenet`; ours where torchvision has none (resnet20, fastresnet8, ...);
  default memory format, fp32;
- the data: a DataLoader with 2 worker processes transforming one PIL image at a
  time (reference_pipeline.py) with the config's crop padding, flip, input
  size (Resize) and normalisation statistics;
- the optimizer family: torch.optim's SGD (momentum, Nesterov, weight decay), Adam
  or AdamW over all parameters at the config's rate; for `muon`, whose filters torch's
  own Muon cannot take (it accepts 2-D parameters only), our Muon for the filters and
  SGD for the rest;
- and it reads `loss.item()` after every step for its running loss, as tutorials do.

`--preset seed` is the tutorial this project started from: torchvision's ResNet-50
on images resized to 224, Normalize(0.5), Adam at 1e-3, batch 64.

Both train the same number of steps of the same batch size on the same random
CIFAR-shaped images (the content does not change the cost). A round is one epoch
of --steps steps; rounds alternate (ours, baseline, ours, ...) after a warm-up round
each, so load from other processes falls on both alike. Ours trains whole-image
epochs: a recipe's cheaper early-crop epochs (`fast`) are skipped.

    python bench/throughput.py [--preset paper] [--models resnet20 ...] [--batch-size N] [--steps 10]
                               [--rounds 2] [--device auto] [--amp auto|off|bf16|fp16] [--compile] [--threads 1]

The last line is `RESULT ratio=<geometric mean over models> <model>_ours=... <model>_base=... ...`.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from resnet_cifar.config import TrainConfig, resolve
from resnet_cifar.data import Dataset, Split
from resnet_cifar.models import create_model
from resnet_cifar.recipes import recipe_settings
from resnet_cifar.train.build import Run, build_run
from resnet_cifar.train.engine import EpochTotals
from resnet_cifar.train.muon import Muon
from resnet_cifar.world import World, resolve_device

from reference_pipeline import reference_loader, reference_transform

TORCHVISION_MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
CLASSES = 10
Round = Callable[[int], int]  # trains round r, returns the images trained


def torchvision_model(config: TrainConfig) -> nn.Module:
    """The network as a tutorial builds it: torchvision's, with the CIFAR stem edit for the `cifar` stem."""
    if config.model not in TORCHVISION_MODELS:
        return create_model(config.model, num_classes=CLASSES, stem=config.stem)  # not in torchvision
    model = getattr(torchvision.models, config.model)(num_classes=CLASSES)
    if config.stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def torch_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The config's optimizer family, built the plain way: every parameter in one group (two for Muon)."""
    c, params = config, list(model.parameters())
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay)
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
    if c.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
    filters = [p for p in params if p.ndim == 4]
    others = [p for p in params if p.ndim != 4]
    return Muon([{"params": filters, "orthogonalize": True, "lr": c.muon_lr, "momentum": c.muon_momentum},
                 {"params": others, "weight_decay": c.weight_decay}], lr=c.lr, momentum=c.momentum, nesterov=c.nesterov)


def ours(run: Run) -> Round:
    """Round r trains the r-th whole-image epoch of the run with its engine."""
    first = run.config.early_crop_epochs

    def round_(r: int) -> int:
        totals = EpochTotals.zeros(run.world.device)
        run.engine.train_epoch(run.train_batches(first + r), totals, should_stop=lambda: False,
                               on_check=lambda *_: None)
        return totals.count

    return round_


def baseline(config: TrainConfig, split: Split, mean: tuple[float, ...], std: tuple[float, ...],
             device: torch.device) -> Round:
    """The same rounds as the tutorial's loop: DataLoader, eager fp32 model, loss.item() every step."""
    model = torchvision_model(config).to(device)
    transform = reference_transform(config.image_size, mean, std, crop_padding=config.crop_padding,
                                    padding_mode=config.padding_mode, flip=config.flip != "none",
                                    input_size=config.input_size)
    data = reference_loader(split, transform, config.batch_size)
    optimizer = torch_optimizer(model, config)

    def round_(_r: int) -> int:
        model.train()
        running_loss, count = 0.0, 0
        for x, y in data:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            count += len(y)
        return count

    return round_


def timed(round_: Round, r: int, device: torch.device) -> tuple[int, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    count = round_(r)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count, time.perf_counter() - start


def random_dataset(images: int) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, CLASSES, (images,), generator=generator)
    mean = tuple((pixels.float() / 255).mean(dim=(0, 2, 3)).tolist())
    std = tuple((pixels.float() / 255).std(dim=(0, 2, 3)).tolist())
    return Dataset("random", [str(c) for c in range(CLASSES)], train=Split(pixels, labels), mean=mean, std=std)


def compare(config: TrainConfig, args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """Images per second of ours and of the baseline for one config, over the timed rounds."""
    dataset = random_dataset(args.steps * config.batch_size)
    run = build_run(config, World(device=device), dataset)
    torch.set_num_threads(args.threads)  # after build_run, which gives PyTorch every core
    runners = {"ours": ours(run),
               "base": baseline(config, dataset.train, run.preprocessing.mean, run.preprocessing.std, device)}
    counts = {key: 0 for key in runners}
    seconds = {key: 0.0 for key in runners}
    for runner in runners.values():
        timed(runner, 0, device)  # warm-up: allocator, cuDNN autotuning, compilation, worker start
    for r in range(1, args.rounds + 1):
        for key, runner in runners.items():
            count, elapsed = timed(runner, r, device)
            counts[key] += count
            seconds[key] += elapsed
    return counts["ours"] / seconds["ours"], counts["base"] / seconds["base"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", help="the recipe whose run is measured (default: paper)")
    parser.add_argument("--models", nargs="+", help="networks to measure it with (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, help="default: the recipe's")
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each, alternating")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"),
                        help="ours only (default: the recipe's, auto: bf16 on CUDA, off on the CPU)")
    parser.add_argument("--compile", action="store_true", help="ours only: torch.compile the model")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads of the training process (default 1: "
                        "on a shared machine PyTorch's threads wait for each other whenever another process takes a "
                        "core)")
    args = parser.parse_args()
    device = resolve_device(args.device)

    flags = {key: value for key, value in (("batch_size", args.batch_size), ("amp", args.amp)) if value is not None}
    if args.compile:
        flags["compile"] = True
    recipe = recipe_settings(args.preset)
    models = args.models or [resolve(recipe, {}, flags).model]
    results: dict[str, float] = {}
    for name in models:
        config = resolve(recipe, {}, {**flags, "model": name, "device": str(device)})
        results[f"{name}_ours"], results[f"{name}_base"] = compare(config, args, device)
        print(f"{name:<12} ours {results[f'{name}_ours']:9.1f} images/s   baseline {results[f'{name}_base']:9.1f} "
              f"images/s   ratio {results[f'{name}_ours'] / results[f'{name}_base']:.2f}", flush=True)
    geomean = statistics.geometric_mean(results[f"{name}_ours"] / results[f"{name}_base"] for name in models)
    details = " ".join(f"{key}={value:.1f}" for key, value in results.items())
    print(f"RESULT ratio={geomean:.3f} {details} preset={args.preset} device={device.type} "
          f"batch_size={config.batch_size} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
