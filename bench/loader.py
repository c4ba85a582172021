"""Images per second of our batched loader against torchvision's per-image DataLoader, on the CPU.

Both produce the classic CIFAR training batch: random 32x32 crop with 4 pixels of
padding, random horizontal flip, normalisation; ours adds an 8-pixel cutout on
top. The baseline is what most CIFAR repositories do: a DataLoader with 2
worker processes applying RandomCrop, RandomHorizontalFlip, ToTensor and
Normalize to one PIL image at a time. Both read the same images (random pixels:
the content does not change the cost) and each is timed over whole epochs
after a warm-up epoch. Ours runs in the main process with one thread by
default (--threads), the baseline in two worker processes: on a shared machine
a single thread is also the steadiest measure, because PyTorch's threads wait
for each other whenever another process takes a core.

    python bench/loader.py [--images 10000] [--batch-size 512] [--epochs 2] [--threads 1]

The last line is `RESULT loader_img_s=... baseline_img_s=... ratio=...`.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision import transforms

from resnet_cifar.data import Loader, Split
from baseline import PillowImages

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def images_per_second(epochs, count_epoch) -> float:
    """Run one warm-up epoch, then time `epochs` more."""
    count_epoch(0)
    start = time.perf_counter()
    seen = sum(count_epoch(e) for e in range(1, epochs + 1))
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    parser.add_argument("--workers", type=int, default=2, help="baseline DataLoader worker processes")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads for our loader")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    images_hwc = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.images)
    split = Split(torch.from_numpy(images_hwc.transpose(0, 3, 1, 2).copy()), torch.from_numpy(labels))

    ours = Loader(split, batch_size=args.batch_size, device="cpu", mean=MEAN, std=STD, train=True,
                  crop_padding=4, flip="random", cutout=8)
    ours_rate = images_per_second(args.epochs, lambda e: sum(len(x) for x, _ in ours.epoch(e)))
    print(f"ours: {ours_rate:,.0f} images/s (torch threads: {torch.get_num_threads()})")

    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(MEAN, STD),
    ])
    baseline = DataLoader(PillowImages(images_hwc, labels, transform), batch_size=args.batch_size, shuffle=True,
                          drop_last=True, num_workers=args.workers, persistent_workers=args.workers > 0)
    baseline_rate = images_per_second(args.epochs, lambda e: sum(len(x) for x, _ in baseline))
    print(f"torchvision DataLoader ({args.workers} workers): {baseline_rate:,.0f} images/s")
    print(f"RESULT loader_img_s={ours_rate:.0f} baseline_img_s={baseline_rate:.0f} ratio={ours_rate / baseline_rate:.1f}")


if __name__ == "__main__":
    main()
