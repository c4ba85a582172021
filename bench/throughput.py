"""Training images per second of our engine against a plain eager PyTorch loop, model by model.

Ours: `resnet_cifar.data.Loader` (the split held on the device, augmented in
whole batches) feeding `resnet_cifar.train.engine.Engine` with the model in
channels_last, and on a GPU bf16 autocast and, with --compile, torch.compile.
Baseline: what most CIFAR repositories do: the torchvision-equivalent network
(torchvision's resnet18/resnet50 with the CIFAR stem swapped in; our resnet20,
which torchvision lacks), default memory format, fp32, fed by a torchvision
DataLoader (2 workers, RandomCrop(32, padding=4), RandomHorizontalFlip,
ToTensor, Normalize per PIL image), SGD with momentum.

Both train the same batch size with the same augmentation on the same random
images (content does not change the cost). Rounds alternate between the two
(ours, baseline, ours, ...) after a warm-up round each, so load from other
processes on a shared machine falls on both alike.

    python bench/throughput.py [--models resnet20 resnet18 resnet50] [--batch-size 128]
                               [--steps 10] [--rounds 2] [--device auto] [--compile]

The last line is `RESULT ratio=<geometric mean> <model>_ours=... <model>_base=... ...`.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from resnet_cifar.config import TrainConfig
from resnet_cifar.data import Loader, Split
from resnet_cifar.models import create_model
from resnet_cifar.train.engine import Engine, EpochTotals
from resnet_cifar.train.hardware import amp_dtype, configure, resolve_device
from resnet_cifar.train.optim import build_optimizer, build_schedule
from baseline import PillowImages

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def torchvision_model(name: str) -> nn.Module:
    """The network as a tutorial would build it: torchvision's, with the usual CIFAR stem edit."""
    if name not in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        return create_model(name)  # the paper's CIFAR networks are not in torchvision
    model = getattr(torchvision.models, name)(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def ours(name: str, split: Split, args: argparse.Namespace, device: torch.device) -> Callable[[int], int]:
    """A function that trains one round (epoch `r` of the loader) with our engine; returns images trained."""
    config = TrainConfig(model=name, batch_size=args.batch_size, crop_padding=4, flip="random", amp=args.amp,
                         compile=args.compile, device=str(device))
    model = create_model(name).to(device, memory_format=torch.channels_last)
    loader = Loader(split, batch_size=args.batch_size, device=device, mean=MEAN, std=STD, train=True,
                    crop_padding=4, flip="random", channels_last=True)
    optimizer = build_optimizer(model, config)
    dtype = amp_dtype(args.amp, device)
    engine = Engine(model, torch.compile(model) if args.compile else model, optimizer,
                    build_schedule(config, len(loader)), torch.amp.GradScaler(device.type, enabled=False), dtype)

    def round_(r: int) -> int:
        totals = EpochTotals.zeros(device)
        engine.train_epoch(loader.epoch(r), totals, should_stop=lambda: False, on_check=lambda *_: None)
        return totals.count

    return round_


def baseline(name: str, images: np.ndarray, labels: np.ndarray, args: argparse.Namespace,
             device: torch.device) -> Callable[[int], int]:
    """The same round as a plain eager loop over a torchvision DataLoader."""
    model = torchvision_model(name).to(device)
    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    data = DataLoader(PillowImages(images, labels, transform), batch_size=args.batch_size, shuffle=True,
                      drop_last=True, num_workers=2, persistent_workers=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def round_(_r: int) -> int:
        count = 0
        model.train()
        for x, y in data:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            count += len(y)
        loss.item()
        return count

    return round_


def timed(round_: Callable[[int], int], r: int, device: torch.device) -> tuple[int, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    count = round_(r)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet18", "resnet50"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each, alternating")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"),
                        help="ours only; auto is bf16 on CUDA, off on the CPU")
    parser.add_argument("--compile", action="store_true", help="ours only: torch.compile the model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    configure(device, seed=0, deterministic=False)  # fast kernels (cuDNN autotuning, TF32) for both sides
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    split = Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels))

    results: dict[str, float] = {}
    for name in args.models:
        runners = {"ours": ours(name, split, args, device), "base": baseline(name, images, labels, args, device)}
        counts = {key: 0 for key in runners}
        seconds = {key: 0.0 for key in runners}
        for key, runner in runners.items():
            timed(runner, 0, device)  # warm-up: allocator, cuDNN autotuning, compilation, worker start
        for r in range(1, args.rounds + 1):
            for key, runner in runners.items():
                count, elapsed = timed(runner, r, device)
                counts[key] += count
                seconds[key] += elapsed
        for key in runners:
            results[f"{name}_{key}"] = counts[key] / seconds[key]
        ratio = results[f"{name}_ours"] / results[f"{name}_base"]
        print(f"{name:<10} ours {results[f'{name}_ours']:9.1f} images/s   baseline {results[f'{name}_base']:9.1f} "
              f"images/s   ratio {ratio:.2f}", flush=True)
    ratios = [results[f"{name}_ours"] / results[f"{name}_base"] for name in args.models]
    geomean = statistics.geometric_mean(ratios)
    details = " ".join(f"{key}={value:.1f}" for key, value in results.items())
    print(f"RESULT ratio={geomean:.3f} {details} device={device.type} batch_size={args.batch_size}")


if __name__ == "__main__":
    main()
