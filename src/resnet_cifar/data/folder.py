"""Datasets from folders of images: DIR/train/<class>/<image>, plus optional val/ and test/.

Any format Pillow reads is accepted; every image is converted to 8-bit RGB (see
pixels.image_array for how each mode is) and resized to image_size x image_size once
(aspect ratio not kept, as CIFAR images are square). Decoding tens of thousands
of files takes a while, so each split is cached as a tensor file in
DIR/.resnet-cifar-cache/, named after a fingerprint of the folder (file names,
sizes, modification times) and the image size: any change to the images makes a
new cache, and a second run starts in seconds.
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from resnet_cifar.data.pixels import image_array, load_image_array
from resnet_cifar.data.splits import Split
from resnet_cifar.errors import UserError
from resnet_cifar.files import make_folder, remove_stale_temporaries, save_atomically

log = logging.getLogger(__name__)

CACHE_FOLDER = ".resnet-cifar-cache"
_CACHE_VERSION = 2  # part of the fingerprint: bump it when the way images are decoded changes


def load_image(path: str | Path, image_size: int) -> torch.Tensor:
    """One image file as uint8 [3, image_size, image_size] RGB, exactly as the folder datasets store it
    (pixels.load_image_array as a tensor). Inference uses this too, so a model sees files the way it saw its
    training images."""
    return torch.from_numpy(load_image_array(path, image_size))


def image_pixels(image: Image.Image, image_size: int, source: str) -> torch.Tensor:
    """uint8 [3, image_size, image_size] RGB: `image` as a model sees it, whatever its mode (pixels.image_array,
    the one conversion for folder datasets and predict, as a tensor)."""
    return torch.from_numpy(image_array(image, image_size, source))


def has_split(root: Path, split: str) -> bool:
    return (root / split).is_dir()


def read_folder(root: str | Path, splits: set[str], image_size: int = 32) -> tuple[list[str], dict[str, Split]]:
    """Class names (the sub-folders of train/) and the requested splits, each of which must be a folder."""
    root = Path(root)
    if image_size < 1:
        raise UserError(f"image_size must be a positive number of pixels, not {image_size}.")
    if root.is_file():
        raise UserError(f"--data-dir {root} is a file, not a folder; pass the folder holding train/<class>/<image>.")
    if not root.is_dir():
        raise UserError(f"The image folder {root} does not exist; pass --data-dir holding train/<class>/<image>.")
    # Class names come from train/; a folder without one (only test/, say) names them by its own sub-folders.
    present = [split for split in ("train", "val", "test") if split in splits and has_split(root, split)]
    classes = _class_names(root / "train" if has_split(root, "train") or not present else root / present[0])
    result = {}
    for split in ("train", "val", "test"):
        if split in splits:
            if not has_split(root, split):
                raise UserError(f"{root} has no {split}/ folder; expected {root / split}/<class>/<image>.")
            result[split] = _read_split(root, split, classes, image_size)
    return classes, result


def _class_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise UserError(f"{folder} does not exist; an image folder dataset needs train/<class>/<image>.")
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise UserError(f"{folder} has no class sub-folders; put each class's images in {folder}/<class>/.")
    if len(names) == 1:  # a classifier of one class is always right, so its 100% would mean nothing
        raise UserError(f"{folder} has one class sub-folder ({names[0]}), and a classifier needs at least two; "
                        f"put each class's images in {folder}/<class>/.")
    return names


def _list_images(folder: Path, classes: list[str]) -> list[tuple[Path, int, os.stat_result]]:
    """(file, label, stat) for every image under folder/<class>/, in a fixed order."""
    extensions = {ext for ext, image_format in Image.registered_extensions().items() if image_format in Image.OPEN}
    found = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        if entry.name not in classes:
            raise UserError(f"{entry.path} is a class that train/ does not have; rename or remove it.")
        files = sorted((f for f in os.scandir(entry.path)
                        if f.is_file() and not f.name.startswith(".") and Path(f.name).suffix.lower() in extensions),
                       key=lambda f: f.name)
        if not files:
            raise UserError(f"{entry.path} holds no images; add some or remove the folder.")
        label = classes.index(entry.name)
        found.extend((Path(f.path), label, f.stat()) for f in files)
    if not found:
        raise UserError(f"{folder} holds no images; expected {folder}/<class>/<image>.")
    return found


def _fingerprint(files: list[tuple[Path, int, os.stat_result]], folder: Path, classes: list[str], image_size: int) -> str:
    digest = hashlib.sha256(f"{_CACHE_VERSION}\n{image_size}\n{classes}\n".encode())
    for path, label, stat in files:
        digest.update(f"{path.relative_to(folder)}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _read_split(root: Path, split: str, classes: list[str], image_size: int) -> Split:
    folder = root / split
    files = _list_images(folder, classes)
    cache = root / CACHE_FOLDER / f"{split}-{image_size}px-{_fingerprint(files, folder, classes, image_size)}.pt"
    cached = _read_cache(cache)
    if cached is not None:
        return cached
    for path, _label, stat in files:
        if stat.st_size == 0:
            raise UserError(f"The image {path} is empty; remove or replace that file.")
    split_data = Split(_decode([path for path, _label, _stat in files], image_size, folder),
                       torch.tensor([label for _path, label, _stat in files], dtype=torch.int64))
    _write_cache(cache, split_data)
    return split_data


def _decode(paths: list[Path], image_size: int, folder: Path) -> torch.Tensor:
    """uint8 [N, 3, S, S]; threads help because Pillow decodes and resizes without holding the GIL."""
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        decoded = pool.map(lambda path: load_image(path, image_size), paths)
        return torch.stack(list(tqdm(decoded, total=len(paths), desc=f"decoding {folder}", unit="img",
                                     disable=None, leave=False)))
    finally:
        pool.shutdown(cancel_futures=True)  # after a broken image, skip decoding the rest


def _read_cache(path: Path) -> Split | None:
    if not path.is_file():
        return None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
        return Split(content["images"], content["labels"])
    except Exception as error:  # a damaged cache is only a missed shortcut: decode the images again
        log.warning("Ignoring the damaged cache %s (%s); decoding the images again.", path, error)
        return None


def _write_cache(path: Path, split: Split) -> None:
    """Write atomically (see resnet_cifar.files) and drop older caches of the same split.

    A cache that cannot be written (read-only folder, full disk) costs only time.
    Temporaries left by runs killed while writing one are removed first: each is as big as a cache.
    """
    try:
        make_folder(path.parent)
        remove_stale_temporaries(path.parent)
        save_atomically({"images": split.images, "labels": split.labels}, path)
    except UserError as error:
        log.warning("%s The next run will decode the images again.", error)
        return
    prefix = path.name.rsplit("-", 1)[0]
    for old in path.parent.glob(f"{prefix}-*.pt"):
        if old != path:
            old.unlink(missing_ok=True)
