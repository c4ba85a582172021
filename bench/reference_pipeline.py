"""The per-image torchvision pipeline this project's loader replaces, kept as the benchmarks' baseline.

Most CIFAR code serves each training image as a PIL image from a map-style
dataset and lets a DataLoader's worker processes transform it one image at a
time: RandomCrop, RandomHorizontalFlip, perhaps a policy such as
TrivialAugmentWide, Resize for ImageNet-sized networks, ToTensor, Normalize,
perhaps RandomErasing.
`reference_transform` builds that chain from the settings our loader takes and
`reference_loader` serves it, so that `bench/loader.py` and `bench/throughput.py`
time our batched loader against the same work done the usual way. It lives
beside the benchmarks, outside the package: training never uses it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from resnet_cifar.data.splits import Split

# torchvision's own policy for each name of resnet_cifar.choices.AUGMENT_POLICIES but "none".
POLICIES: dict[str, Callable[[], Callable[[Image.Image], Image.Image]]] = {
    "autoaugment": lambda: transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10),
    "randaugment": transforms.RandAugment,  # 2 ops at magnitude 9, as our defaults
    "trivialaugment": transforms.TrivialAugmentWide,
}
# Our padding modes in torchvision's words.
PADDING_MODES = {"reflect": "reflect", "zeros": "constant"}


def reference_transform(image_size: int, mean: Sequence[float], std: Sequence[float], *, crop_padding: int = 0,
                        padding_mode: str = "reflect", flip: bool = False, policy: str = "none",
                        input_size: int | None = None, random_erasing: float = 0.0) -> transforms.Compose:
    """A PIL image to a normalised float tensor [3, side, side], as a torchvision tutorial writes it.

    Crop and flip come first, then the policy, the resize to `input_size`, ToTensor, Normalize
    (mean and std on the 0-1 scale) and random erasing with probability `random_erasing`: the
    order our loader applies the same steps in.
    """
    steps: list[Callable] = []
    if crop_padding:
        steps.append(transforms.RandomCrop(image_size, padding=crop_padding, padding_mode=PADDING_MODES[padding_mode]))
    if flip:
        steps.append(transforms.RandomHorizontalFlip())
    if policy != "none":
        steps.append(POLICIES[policy]())
    if input_size is not None and input_size != image_size:
        steps.append(transforms.Resize(input_size))
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    if random_erasing:
        steps.append(transforms.RandomErasing(random_erasing))
    return transforms.Compose(steps)


class PillowImages(torch.utils.data.Dataset):
    """A split's uint8 images served one at a time as PIL images through `transform`."""

    def __init__(self, split: Split, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.images: np.ndarray = split.images.permute(0, 2, 3, 1).contiguous().numpy()  # HWC, as PIL wants
        self.labels: np.ndarray = split.labels.numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_loader(split: Split, transform: Callable[[Image.Image], torch.Tensor], batch_size: int,
                     workers: int = 2) -> DataLoader:
    """Shuffled full batches of `split`, transformed by `workers` processes that live as long as the loader."""
    return DataLoader(PillowImages(split, transform), batch_size=batch_size, shuffle=True, drop_last=True,
                      num_workers=workers, persistent_workers=workers > 0)
