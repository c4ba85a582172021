"""Test sets from beyond the CIFAR test split, for evaluation only: CIFAR-10.1, CIFAR-10-C and CIFAR-100-C.

A network's test accuracy says how it does on images drawn exactly as its training
images were. These sets ask whether that holds a little further away:
- CIFAR-10.1 (Recht et al. 2019): about 2,000 new images collected the way CIFAR-10's
  were; models lose several points on it. Files `cifar10.1_<version>_data.npy`
  (uint8 [N, 32, 32, 3]) and `cifar10.1_<version>_labels.npy` in `--data-dir`.
- CIFAR-10-C and CIFAR-100-C (Hendrycks & Dietterich 2019): the test split under 15
  corruptions at 5 severities. A folder `CIFAR-10-C/` (or `CIFAR-100-C/`) holding one
  `<corruption>.npy` per corruption, uint8 [5 N, 32, 32, 3] with severities 1 to 5
  in blocks of N, and `labels.npy` (the N labels, repeated for each block).

The files are read with numpy's loader with pickles refused, so a file cannot run
code; a corruption file is memory-mapped, so asking for one severity reads one block.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnet_cifar.choices import CIFAR101_VERSIONS, SEVERITIES
from resnet_cifar.data.archive import download, find_release
from resnet_cifar.data.cifar import CIFAR10_CLASSES, CIFAR100_CLASSES
from resnet_cifar.data.splits import Split
from resnet_cifar.errors import UserError

SIDE = 32


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    sha256: str


_CIFAR101_URL = "https://github.com/modestyachts/CIFAR-10.1/raw/master/datasets/"
# The checksums TensorFlow Datasets publishes for these files (url_checksums/cifar10_1.txt); the repository has none.
CIFAR101_FILES = {
    "v6": (RemoteFile("cifar10.1_v6_data.npy", _CIFAR101_URL + "cifar10.1_v6_data.npy",
                      "2997188e5816f5bd545dc77771b6227828c28146049fcecf3fa10775474cacc6"),
           RemoteFile("cifar10.1_v6_labels.npy", _CIFAR101_URL + "cifar10.1_v6_labels.npy",
                      "ae40beda001693674edc94d925ee8268cfe68905f8f9aff800c8dcdfcd6c9448")),
    "v4": (RemoteFile("cifar10.1_v4_data.npy", _CIFAR101_URL + "cifar10.1_v4_data.npy",
                      "5aaedc268df8f4cffca2ac0cf9e608ae1897a8cddb630c7a850a2ea8f6558e75"),
           RemoteFile("cifar10.1_v4_labels.npy", _CIFAR101_URL + "cifar10.1_v4_labels.npy",
                      "1f9544300ded199539b6662364ce7fe6c2e1ea9f87408f06db4b1a6184cffb18")),
}


@dataclass(frozen=True)
class CorruptedRelease:
    folder: str
    archive: str
    url: str
    md5: str  # as Zenodo lists it
    classes: tuple[str, ...]


CORRUPTED = {
    "cifar10-c": CorruptedRelease("CIFAR-10-C", "CIFAR-10-C.tar", "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
                                  "56bf5dcef84df0e2308c6dcbcbbd8499", CIFAR10_CLASSES),
    "cifar100-c": CorruptedRelease("CIFAR-100-C", "CIFAR-100-C.tar",
                                   "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar",
                                   "11f0ed0f1191edbf9fa23466ae6021d3", CIFAR100_CLASSES),
}
def classes_of(name: str) -> tuple[str, ...]:
    """The class names an evaluation-only set's labels index."""
    return CIFAR10_CLASSES if name == "cifar10.1" else CORRUPTED[name].classes


def read_cifar101(data_dir: str | Path, version: str = "v6", download_missing: bool = False) -> Split:
    """CIFAR-10.1's images and labels from `data_dir` (fetched into it with `download_missing`)."""
    if version not in CIFAR101_FILES:
        raise UserError(f"Unknown CIFAR-10.1 version {version!r} (--cifar101-version); choose one of "
                        f"{', '.join(CIFAR101_VERSIONS)}.")
    data_dir = Path(data_dir)
    files = CIFAR101_FILES[version]
    for file in files:
        if not (data_dir / file.name).is_file():
            if not download_missing:
                raise UserError(f"{data_dir / file.name} is missing; put CIFAR-10.1's {version} files in --data-dir "
                                f"{data_dir}, or add --download to fetch them.")
            download(file.url, data_dir / file.name, file.sha256, algorithm="sha256")
    images = _as_images(_image_array(data_dir / files[0].name))
    return Split(images, _labels(data_dir / files[1].name, len(images), len(CIFAR10_CLASSES)))


def corrupted_folder(name: str, data_dir: str | Path, download_missing: bool = False) -> Path:
    """The folder of a corrupted release's .npy files: `data_dir` itself, its CIFAR-10-C/ (or CIFAR-100-C/), or
    that folder unpacked from the archive beside it (downloaded first with `download_missing`)."""
    release = CORRUPTED[name]
    return find_release(Path(data_dir), name=release.folder, marker="labels.npy", folder=release.folder,
                        archive=release.archive, url=release.url, checksum=release.md5, download_missing=download_missing,
                        size=" (2.9 GB)")


def read_corrupted(folder: Path, corruption: str, severity: int, num_classes: int) -> Split:
    """The images of one corruption at one severity (1 to 5) and their labels, from a corrupted release's folder."""
    if severity not in SEVERITIES:
        raise UserError(f"Severity {severity} does not exist; the corrupted sets have severities 1 to 5.")
    labels_file, file = folder / "labels.npy", folder / f"{corruption}.npy"
    images = _image_array(file, mmap=True)
    if len(images) % len(SEVERITIES):
        raise UserError(f"{file} holds {len(images)} images, not five equal blocks of severities 1 to 5; replace it "
                        "with a fresh copy.")
    block = len(images) // len(SEVERITIES)
    labels = _labels(labels_file, len(images), num_classes, what=f"the {len(images)} images of {file.name}")
    rows = slice((severity - 1) * block, severity * block)
    return Split(_as_images(images[rows]), labels[rows])


def _load(path: Path, mmap: bool = False) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path} is missing; put the published file there, or pass --download.")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise UserError(f"{path} holds pickled objects, not an array; it was not loaded. Replace it with the "
                            "published file.") from None
        raise UserError(f"{path} is not a readable .npy array ({error}); replace it with the published file.") from None
    except (OSError, EOFError) as error:
        raise UserError(f"{path} is truncated or not a .npy file ({error}); replace it with the published file.") from None


def _image_array(path: Path, mmap: bool = False) -> np.ndarray:
    """The checked uint8 [N, 32, 32, 3] array of an images file (memory-mapped with `mmap`)."""
    array = _load(path, mmap)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != (SIDE, SIDE, 3):
        raise UserError(f"{path} holds {array.dtype} images of shape {array.shape}; the published file holds uint8 "
                        f"images of shape (N, {SIDE}, {SIDE}, 3). Replace it with the published file.")
    return array


def _as_images(array: np.ndarray) -> torch.Tensor:
    """uint8 [N, 3, 32, 32], the layout of every Split, from [N, 32, 32, 3] rows (read now if memory-mapped)."""
    return torch.from_numpy(np.array(array)).permute(0, 3, 1, 2).contiguous()


def _labels(path: Path, count: int, num_classes: int, what: str | None = None) -> torch.Tensor:
    array = _load(path)
    what = what or f"the {count} images beside it"
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise UserError(f"{path} holds {array.dtype} values of shape {array.shape}; it should hold one integer label "
                        f"per image. Replace it with the published file.")
    if len(array) != count:
        raise UserError(f"{path} has {len(array)} labels for {what}; the counts must match. Replace the mismatched "
                        "file with the published one.")
    if len(array) and (array.min() < 0 or array.max() >= num_classes):
        raise UserError(f"{path} has labels outside 0..{num_classes - 1}; replace it with the published file.")
    return torch.from_numpy(array.astype(np.int64))
