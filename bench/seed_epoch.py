"""One epoch of the `seed` recipe (the tutorial this project replaces) through our trainer, against the tutorial's own loop.

Both train torchvision's ResNet-50 layout (ImageNet stem) on CIFAR-10 images
blown up to 224x224, Adam at 1e-3, batch 64, normalised with (0.5, 0.5, 0.5).
The tutorial's loop: a torchvision DataLoader (2 workers) applying Resize(224),
ToTensor and Normalize to one PIL image at a time, an eager fp32 model, and
`loss.item()` every step for its running loss. Ours: `resnet-cifar train
--preset seed --epochs 1` (the split on the device, batched resizing, bf16 and
channels_last on a GPU). Both use the same --images training images; the
tutorial's time is one epoch's loop, ours the trainer's training seconds
(validation excluded on both sides).

    python bench/seed_epoch.py [--data-dir /tmp/cifar-jpeg] [--images 45000] [--device auto]

The last line is `RESULT ratio=... ours_img_s=... tutorial_img_s=...`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

from resnet_cifar.cli import main as cli
from resnet_cifar.data import load_dataset
from resnet_cifar.train.hardware import configure, resolve_device
from baseline import PillowImages


def tutorial_epoch(images: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    """Images per second of the tutorial's training loop over one epoch."""
    transform = transforms.Compose([transforms.Resize(224), transforms.ToTensor(),
                                    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    data = DataLoader(PillowImages(images, labels, transform), batch_size=64, shuffle=True, num_workers=2)
    model = torchvision.models.resnet50(num_classes=10).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    running_loss, count = 0.0, 0
    for x, y in data:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        count += len(y)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/cifar-jpeg"))
    parser.add_argument("--images", type=int, default=45_000, help="training images (the rest is held out)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=Path("/tmp/seed-epoch"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    configure(device, seed=0, deterministic=False)

    total = len(load_dataset("cifar10", args.data_dir, splits=("train",), val_split=0).train)
    val_split = total - args.images
    code = cli(["train", "--preset", "seed", "--epochs", "1", "--data-dir", str(args.data_dir),
                "--val-split", str(val_split), "--device", args.device, "--output", str(args.output), "--overwrite"])
    if code != 0:
        raise SystemExit(f"our trainer failed with exit code {code}")
    summary = json.loads((args.output / "summary.json").read_text())
    ours = summary["images_per_second"]

    train = load_dataset("cifar10", args.data_dir, splits=("train", "val"), val_split=val_split, seed=0).train
    images = train.images.permute(0, 2, 3, 1).contiguous().numpy()
    tutorial = tutorial_epoch(images, train.labels.numpy(), device)
    print(f"seed recipe, one epoch of {len(images):,} images: ours {ours:,.0f} images/s, tutorial {tutorial:,.0f} images/s")
    print(f"RESULT ratio={ours / tutorial:.3f} ours_img_s={ours:.1f} tutorial_img_s={tutorial:.1f} "
          f"images={len(images)} device={device.type}")


if __name__ == "__main__":
    main()
