"""`load_dataset`: read a source, carve the validation split, measure the normalisation statistics.

The validation split is held out of the training files whenever `val_split > 0`
(unless an image folder brings its own val/), whether or not it is requested,
so the training images of a run never depend on which splits were asked for.
The test split is read only when requested: model selection must never see it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from resnet_cifar.choices import DATASETS, SPLITS
from resnet_cifar.data.splits import Dataset, Split
from resnet_cifar.data.cifar import read_cifar
from resnet_cifar.data.folder import has_split, read_folder
from resnet_cifar.errors import UserError



def load_dataset(name: str, data_dir: str | Path, *, splits: tuple[str, ...] = ("train", "val"), val_split: int = 5000,
                 seed: int = 0, download: bool = False, image_size: int = 32, labels: str = "fine") -> Dataset:
    """The requested splits of dataset `name` (cifar10, cifar100 or folder) as uint8 tensors in memory."""
    if name not in DATASETS:
        raise UserError(f"Unknown dataset {name!r}; --dataset must be one of {', '.join(DATASETS)}.")
    unknown = [split for split in splits if split not in SPLITS]
    if unknown:
        raise UserError(f"Unknown split {unknown[0]!r}; choose from {', '.join(SPLITS)}.")
    if val_split < 0:
        raise UserError(f"--val-split must be 0 or more images, not {val_split}.")
    own_val = name == "folder" and has_split(Path(data_dir), "val")
    carve = val_split > 0 and not own_val
    files = {split for split in splits if split != "val" or own_val}
    if "val" in splits and carve:
        files.add("train")

    if name == "folder":
        if labels != "fine":
            raise UserError(f"labels={labels!r} is only for cifar100; image folders have one label per class folder.")
        classes, read = read_folder(data_dir, files, image_size)
    else:
        if image_size != 32:
            raise UserError(f"CIFAR images are 32x32; image_size={image_size} applies only to --dataset folder "
                            "(use input_size in the loader to feed the model larger images).")
        classes, read = read_cifar(name, data_dir, files, download_missing=download, labels=labels)

    train, val = read.get("train"), read.get("val")
    if train is not None and carve:
        train, val = split_off_validation(train, val_split, seed)
    mean, std = channel_stats(train.images) if train is not None else (None, None)
    return Dataset(
        name=name, classes=classes,
        train=train if "train" in splits else None,
        val=val if "val" in splits else None,
        test=read.get("test"),
        mean=mean, std=std,
    )


def split_off_validation(train: Split, size: int, seed: int) -> tuple[Split, Split]:
    """(rest, validation): `size` images, each class in proportion to its share of `train`, chosen by `seed`."""
    if size >= len(train):
        raise UserError(f"--val-split {size} leaves no training images (the training split has {len(train)}); "
                        "choose a smaller --val-split (or, resuming a run, pass the --data-dir it was trained on).")
    labels = train.labels.numpy()
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder rounding: each class gets floor(its exact share), and the
    # images still missing go to the classes with the largest fractional parts.
    exact = counts * size / len(labels)
    quota = np.floor(exact).astype(np.int64)
    shortfall = size - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:shortfall]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    is_val = np.zeros(len(labels), dtype=bool)
    is_val[np.concatenate(chosen)] = True
    keep, held = torch.from_numpy(np.flatnonzero(~is_val)), torch.from_numpy(np.flatnonzero(is_val))
    return Split(train.images[keep], train.labels[keep]), Split(train.images[held], train.labels[held])


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of uint8 images [N, 3, H, W] on the 0-1 scale, exactly.

    A histogram of the 256 possible values per channel gives exact sums without
    a float copy of the whole split.
    """
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for channel in range(3):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean) ** 2).sum() / total
        means.append(float(mean / 255))
        stds.append(float(var.sqrt() / 255))
    return (means[0], means[1], means[2]), (stds[0], stds[1], stds[2])
