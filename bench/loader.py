"""Augmented images per second of our loader, plain and with each policy, against torchvision's DataLoader.

Our batched loader and torchvision's per-image DataLoader do the same work on the
same images, in the same run.

Every row makes the classic CIFAR training batch from the same images: a random
32x32 crop of the image zero-padded by 4 pixels, a random horizontal flip,
normalisation; the policy rows add one of `resnet_cifar.data.augment`'s:

- ours, plain: `resnet_cifar.data.Loader` (the split in memory, one gather per batch);
- ours, with a policy (`autoaugment`, `randaugment`, `trivialaugment`): the loader's
  crop and flip gather on uint8 pixels, then the policy on the whole batch with its
  per-image draws (planned per epoch, as the loader plans its crops), then
  normalisation: the order in which the loader applies them. The uint8 batch is
  taken from a Loader whose normalisation is the identity (pixel values as floats,
  converted back to uint8), a round trip the wired loader will not make; the `none`
  row is that path without a policy, so the policy rows' cost over it is the policies' own;
- ours, `random_erasing`: the plain loader's batches, then RandomErasing(0.5) on them;
- torchvision (the baseline of each row): a DataLoader with 2 worker processes
  applying RandomCrop, RandomHorizontalFlip, torchvision's own policy, ToTensor,
  Normalize and RandomErasing to one PIL image at a time (reference_pipeline.py).

Rows take turns epoch by epoch (one warm-up epoch each first) and each figure is the
median over its timed epochs, so load from other processes on a shared machine
falls on all alike. Ours runs in the main process with --threads PyTorch threads
(default 1: on a shared machine PyTorch's threads wait for each other whenever
another process takes a core). The images are the first --images CIFAR-10
training images of --data-dir (a folder holding cifar-10-batches-py/ or the
release archive), or random pixels when it holds none (the cost barely depends
on the content; Equalize's and AutoContrast's a little).

    python bench/loader.py [--data-dir data] [--images 5120] [--batch-size 512] [--epochs 3] [--device cpu]

The last line is `RESULT loader_img_s=... baseline_img_s=... ratio=... none_img_s=...
<policy>_img_s=... <policy>_baseline_img_s=... <policy>_ratio=... ...`.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch

from resnet_cifar.data import Loader, Split, load_dataset
from resnet_cifar.choices import AUGMENT_POLICIES
from resnet_cifar.data.augment import AugmentPolicy, RandomErasing
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError
from resnet_cifar.train.hardware import keep_freed_memory

from reference_pipeline import reference_loader, reference_transform

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CROP_PADDING = 4
ERASING = 0.5
# Normalisation that leaves the pixel values as they are (0-255 floats): the loader's uint8 batch, as floats.
PIXELS = Preprocessing(32, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))
SEED = 0

Epoch = Callable[[int], int]  # trains nothing: makes every batch of epoch e, returns the images made


def read_images(data_dir: str, count: int) -> tuple[Split, str]:
    try:
        train = load_dataset("cifar10", data_dir, splits=("train",), val_split=0).train
    except UserError as error:
        print(f"images: {count} random uint8 images ({error})")
        generator = torch.Generator().manual_seed(SEED)
        pixels = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
        return Split(pixels, torch.arange(count) % 10), "random"
    print(f"images: the first {min(count, len(train))} CIFAR-10 training images of {data_dir}")
    return Split(train.images[:count], train.labels[:count]), "cifar10"


def loader(split: Split, args: argparse.Namespace, preprocessing: Preprocessing, channels_last: bool) -> Loader:
    return Loader(split, batch_size=args.batch_size, device=args.device, preprocessing=preprocessing, train=True,
                  crop_padding=CROP_PADDING, padding_mode="zeros", flip="random", channels_last=channels_last,
                  seed=SEED)


def count(batches: Iterable[torch.Tensor], device: torch.device) -> int:
    images = sum(len(x) for x in batches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images


def plain(split: Split, args: argparse.Namespace) -> Epoch:
    ours = loader(split, args, Preprocessing(32, MEAN, STD), channels_last=True)
    return lambda e: count((x for x, _ in ours.epoch(e)), ours.device)


def with_policy(split: Split, args: argparse.Namespace, name: str) -> Epoch:
    """Crop and flip on uint8, the policy, normalisation: each batch as the loader will make it."""
    pixels, policy = loader(split, args, PIXELS, channels_last=False), AugmentPolicy(name)
    preprocessing = Preprocessing(32, MEAN, STD)

    def batches(e: int) -> Iterable[torch.Tensor]:
        plan = torch.from_numpy(policy.plan(np.random.default_rng([SEED, e]), pixels.num_samples)).to(pixels.device)
        for k, (x, _) in enumerate(pixels.epoch(e)):
            images = policy.apply(x.to(torch.uint8), plan[:, k * args.batch_size:(k + 1) * args.batch_size])
            yield preprocessing.normalize(images).contiguous(memory_format=torch.channels_last)
    return lambda e: count(batches(e), pixels.device)


def with_erasing(split: Split, args: argparse.Namespace) -> Epoch:
    ours, erasing = loader(split, args, Preprocessing(32, MEAN, STD), channels_last=True), RandomErasing(ERASING)

    def batches(e: int) -> Iterable[torch.Tensor]:
        plan = torch.from_numpy(erasing.plan(np.random.default_rng([SEED, e]), ours.num_samples)).to(ours.device)
        for k, (x, _) in enumerate(ours.epoch(e)):
            yield erasing.apply(x, plan[:, k * args.batch_size:(k + 1) * args.batch_size])
    return lambda e: count(batches(e), ours.device)


def torchvision_baseline(split: Split, args: argparse.Namespace, policy: str = "none", erasing: float = 0.0) -> Epoch:
    transform = reference_transform(32, MEAN, STD, crop_padding=CROP_PADDING, padding_mode="zeros", flip=True,
                                    policy=policy, random_erasing=erasing)
    data = reference_loader(split, transform, args.batch_size, workers=args.workers)
    device = torch.device(args.device)
    return lambda _e: count((x.to(device) for x, _ in data), device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="folder holding CIFAR-10 (default: data; random images "
                        "when it holds none)")
    parser.add_argument("--images", type=int, default=5120)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per row, after one warm-up epoch")
    parser.add_argument("--workers", type=int, default=2, help="the baseline DataLoader's worker processes")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads of our loader")
    parser.add_argument("--device", default="cpu", help="where our loader holds the split and makes the batches")
    args = parser.parse_args()
    keep_freed_memory()  # as training does
    torch.set_num_threads(args.threads)
    split, source = read_images(args.data_dir, args.images)

    rows: dict[str, tuple[Epoch, Epoch | None]] = {"loader": (plain(split, args), torchvision_baseline(split, args))}
    for name in AUGMENT_POLICIES:
        baseline = None if name == "none" else torchvision_baseline(split, args, name)
        rows[name] = (with_policy(split, args, name), baseline)
    rows["random_erasing"] = (with_erasing(split, args), torchvision_baseline(split, args, erasing=ERASING))

    rates: dict[str, list[float]] = {}
    for epoch in range(args.epochs + 1):
        for name, (ours, baseline) in rows.items():
            for key, run in ((name, ours), (f"{name}_baseline", baseline)):
                if run is None:
                    continue
                start = time.perf_counter()
                images = run(epoch)
                if epoch > 0:  # epoch 0 warms up: worker start, the policies' tables, the allocator
                    rates.setdefault(key, []).append(images / (time.perf_counter() - start))
    rate = {key: statistics.median(values) for key, values in rates.items()}

    print(f"batch {args.batch_size}, {len(split) // args.batch_size * args.batch_size} images per epoch, median of "
          f"{args.epochs} epochs; ours: {torch.get_num_threads()} thread(s) on {args.device}, "
          f"torchvision: {args.workers} workers")
    print(f"{'':16} {'ours (images/s)':>16} {'torchvision (images/s)':>23} {'ratio':>6}")
    result = []
    for name in rows:
        ours, baseline = rate[name], rate.get(f"{name}_baseline")
        label = "plain loader" if name == "loader" else name
        if baseline is None:
            print(f"{label:16} {ours:>16,.0f} {'':>23} {'':>6}  (the policy path's round trip, no policy)")
            result.append(f"{name}_img_s={ours:.0f}")
            continue
        print(f"{label:16} {ours:>16,.0f} {baseline:>23,.0f} {ours / baseline:>5.1f}x")
        if name == "loader":
            result.append(f"loader_img_s={ours:.0f} baseline_img_s={baseline:.0f} ratio={ours / baseline:.1f}")
        else:
            result.append(f"{name}_img_s={ours:.0f} {name}_baseline_img_s={baseline:.0f} "
                          f"{name}_ratio={ours / baseline:.1f}")
    print(f"RESULT {' '.join(result)} images={source} threads={torch.get_num_threads()} device={args.device}")


if __name__ == "__main__":
    main()
