"""Augmented images per second of each policy on the CPU, on CIFAR-shaped uint8 batches [512, 3, 32, 32].

Every variant runs the same loop over the same images: fetch the batch's images
by index (as the loader's gather does), then augment them with the batch's
columns of a plan drawn up front for the epoch. `none` is that loop without
augmentation: the baseline in the same run. Also timed:

- `trivialaugment_grouped`: the alternative to our batched code. torchvision's v2
  ops draw once per call, so keeping draws per image with them means grouping the
  batch's images by draw (op and magnitude) on the host and calling the op once
  per group (through torchvision's own policy code, v2.functional underneath). It
  is checked to give the same pixels as ours before it is timed. On a GPU it would
  also copy each group's index to the device, per batch, which our loader avoids;
- `random_erasing`: RandomErasing(0.5) on the batch as normalised floats (the
  conversion is in its loop, not in the others').

Variants take turns epoch by epoch (one warm-up epoch each first), and each
figure is the median over its epochs, so load from other processes on a shared
machine falls on all alike. Like training, the process keeps freed memory
(keep_freed_memory) and runs PyTorch with --threads threads (default 1).
Images come from --data-dir (a folder holding cifar-10-batches-py/) or, without
it, are random pixels (the cost barely depends on the content; Equalize's does a little).

    python bench/augment_policies.py [--data-dir DIR] [--images 10240] [--batch-size 512] [--epochs 3]

The last line is `RESULT none_img_s=... autoaugment_img_s=... randaugment_img_s=...
trivialaugment_img_s=... trivialaugment_grouped_img_s=... random_erasing_img_s=...`.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torchvision.transforms import v2

from resnet_cifar.data import load_dataset
from resnet_cifar.data.augment import POLICIES, AugmentPolicy, RandomErasing
from resnet_cifar.train.hardware import keep_freed_memory

BatchFn = Callable[[torch.Tensor, slice], torch.Tensor]  # (batch images, its columns of the plan) -> augmented


def grouped(policy: AugmentPolicy, plan: np.ndarray) -> BatchFn:
    """The policy as torchvision applies it: one call per distinct (op, magnitude) in the batch."""
    transform = v2.TrivialAugmentWide()  # its (private) method applying one draw serves all three policies

    def torchvision_op(images: torch.Tensor, op: str, magnitude: float) -> torch.Tensor:
        return transform._apply_image_or_video_transform(images, op, magnitude, interpolation=transform.interpolation,
                                                         fill=transform._fill)

    def run(images: torch.Tensor, columns: slice) -> torch.Tensor:
        out = images.clone()
        height, width = images.shape[-2:]
        for op, magnitude_bin, sign in plan[:, columns].reshape(policy.steps, 3, -1):
            draws = {}
            for position, key in enumerate(zip(op, magnitude_bin, sign)):
                name = policy.op_names[key[0]]
                draws.setdefault((name, policy.magnitude_of(name, key[1], key[2], height, width)), []).append(position)
            for (name, magnitude), positions in draws.items():
                index = torch.tensor(positions)
                out[index] = torchvision_op(out[index], name, magnitude)
        return out
    return run


def epoch_rate(images: torch.Tensor, batch_size: int, augment: BatchFn, epoch: int) -> float:
    """Images per second over one epoch: fetch each batch by index, then augment it."""
    order = torch.from_numpy(np.random.default_rng([0, epoch]).permutation(len(images)))
    batches = len(images) // batch_size
    start = time.perf_counter()
    for k in range(batches):
        columns = slice(k * batch_size, (k + 1) * batch_size)
        augment(images[order[columns]], columns)
    return batches * batch_size / (time.perf_counter() - start)


def read_images(data_dir: str | None, count: int) -> torch.Tensor:
    if data_dir is None:
        print(f"images: {count} random uint8 images (no --data-dir given)")
        return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = load_dataset("cifar10", data_dir, splits=("train",), val_split=0).train.images[:count]
    print(f"images: the first {len(images)} CIFAR-10 training images from {data_dir}")
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder holding cifar-10-batches-py/ (default: random images)")
    parser.add_argument("--images", type=int, default=10240)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant, after one warm-up epoch")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    images = read_images(args.data_dir, args.images)
    n = len(images) - len(images) % args.batch_size

    variants: dict[str, BatchFn] = {}
    for name in POLICIES:
        policy = AugmentPolicy(name)
        plan = policy.plan(np.random.default_rng(1), n)
        plan_tensor = torch.from_numpy(plan)
        variants[name] = lambda batch, columns, policy=policy, plan=plan_tensor: policy.apply(batch, plan[:, columns])
        if name == "trivialaugment":
            variants["trivialaugment_grouped"] = grouped(policy, plan)
            head = slice(0, args.batch_size)
            ours, grouped_pixels = (variants[key](images[head], head) for key in (name, "trivialaugment_grouped"))
            assert torch.equal(ours, grouped_pixels), "grouping by draw must give the same pixels"
    erasing = RandomErasing(0.5)
    erasing_plan = torch.from_numpy(erasing.plan(np.random.default_rng(1), n))
    variants["random_erasing"] = lambda batch, columns: erasing.apply(batch.float(), erasing_plan[:, columns])

    rates: dict[str, list[float]] = {name: [] for name in variants}
    for epoch in range(args.epochs + 1):
        for name, augment in variants.items():
            rate = epoch_rate(images[:n], args.batch_size, augment, epoch)
            if epoch > 0:  # epoch 0 warms up (tables, allocator)
                rates[name].append(rate)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"batch {args.batch_size}, {n} images per epoch, median of {args.epochs} epochs, "
          f"torch threads: {torch.get_num_threads()}")
    for name, rate in medians.items():
        extra = 1e6 / rate - 1e6 / medians["none"]
        print(f"  {name:24s} {rate:>12,.0f} images/s   {extra:8.1f} us per image over none")
    print("RESULT " + " ".join(f"{name}_img_s={rate:.0f}" for name, rate in medians.items()))


if __name__ == "__main__":
    main()
