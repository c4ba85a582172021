"""CIFAR-10 and CIFAR-100 from the official python release, as torchvision lays it out.

`--data-dir` may hold the archive (cifar-10-python.tar.gz) or its extracted folder
(cifar-10-batches-py/), or be either of them itself. An archive is unpacked once,
beside itself. Only the files of the requested splits are opened, so evaluating
on the test split never reads the training batches and a training run never
needs test_batch (a copy of the training split alone has none).

Files whose md5 differs from the release still load, with one warning: JPEG
re-encoded and converted copies of CIFAR exist and are legitimate to use.
"""
from __future__ import annotations

import dataclasses
import logging
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnet_cifar.choices import LABELS
from resnet_cifar.data.splits import Split
from resnet_cifar.data.archive import extract, file_md5, find_release
from resnet_cifar.data.safe_pickle import RefusedPickle, load_data_pickle
from resnet_cifar.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    """Where one CIFAR release lives and what its files are called."""

    name: str
    folder: str
    archive: str
    url: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    fine_key: str  # the label and class-name keys for labels="fine"
    fine_names: str
    coarse_key: str | None
    coarse_names: str | None
    num_fine: int
    num_coarse: int | None
    file_md5: dict[str, str]  # md5 of each file of the official release


RELEASES = {
    "cifar10": Release(
        name="cifar10", folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
        meta_file="batches.meta", fine_key="labels", fine_names="label_names", coarse_key=None, coarse_names=None,
        num_fine=10, num_coarse=None,
        file_md5={
            "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        },
    ),
    "cifar100": Release(
        name="cifar100", folder="cifar-100-python", archive="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_files=("train",), test_files=("test",), meta_file="meta",
        fine_key="fine_labels", fine_names="fine_label_names", coarse_key="coarse_labels",
        coarse_names="coarse_label_names", num_fine=100, num_coarse=20,
        file_md5={
            "train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
            "meta": "7973b15100ade9c7d40fb424638fde48",
        },
    ),
}

IMAGE_SIDE = 32
# The class names of each release's meta file, for the sets that reuse its labels without one (data/shifted.py).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)


def read_cifar(name: str, data_dir: str | Path, splits: set[str], *, download_missing: bool = False,
               labels: str = "fine", url: str | None = None, md5: str | None = None) -> tuple[list[str], dict[str, Split]]:
    """Class names and the requested file splits ("train", "test") of a CIFAR release.

    `url` and `md5` replace the official ones (tests serve a synthetic archive).
    """
    release = RELEASES[name]
    release = dataclasses.replace(release, url=url or release.url, md5=md5 or release.md5)
    if labels not in LABELS or (labels == "coarse" and release.coarse_key is None):
        raise UserError(f"labels={labels!r} is not available for {name}; use 'fine'"
                        + (" or 'coarse'." if release.coarse_key else "."))
    folder = locate(release, Path(data_dir), download_missing)
    label_key, names_key, num_classes = (
        (release.fine_key, release.fine_names, release.num_fine) if labels == "fine"
        else (release.coarse_key, release.coarse_names, release.num_coarse))
    classes = _read_class_names(folder / release.meta_file, names_key, num_classes)
    files_of = {"train": release.train_files, "test": release.test_files}
    wanted = [file for split in ("train", "test") if split in splits for file in files_of[split]]
    _warn_if_unofficial(release, folder, [release.meta_file, *wanted])
    result = {}
    for split in ("train", "test"):
        if split in splits:
            parts = [_read_batch(folder / file, label_key, num_classes) for file in files_of[split]]
            images = np.concatenate([p[0] for p in parts])
            targets = np.concatenate([p[1] for p in parts])
            result[split] = Split(torch.from_numpy(images), torch.from_numpy(targets))
    return classes, result


def locate(release: Release, data_dir: Path, download_missing: bool) -> Path:
    """The extracted release folder, unpacking or downloading the archive when that is all there is."""
    if data_dir.is_file():
        if data_dir.name != release.archive and not tarfile.is_tarfile(data_dir):
            raise UserError(f"--data-dir {data_dir} is a file, not a folder or a {release.name} archive; pass the "
                            f"folder that holds {release.archive} or {release.folder}/, or the archive itself.")
        return _extracted(data_dir, release)
    if not data_dir.exists() and not download_missing:
        raise UserError(f"--data-dir {data_dir} does not exist; pass the folder that holds {release.archive} or "
                        f"{release.folder}/, or add --download to fetch {release.name} into it.")
    return find_release(data_dir, name=release.name, marker=release.meta_file, folder=release.folder,
                        archive=release.archive, url=release.url, checksum=release.md5, download_missing=download_missing)


def _extracted(archive: Path, release: Release) -> Path:
    folder = archive.parent / release.folder
    return folder if folder.is_dir() else extract(archive, release.folder)


def _warn_if_unofficial(release: Release, folder: Path, files: list[str]) -> None:
    differing = [file for file in files if (folder / file).is_file() and file_md5(folder / file) != release.file_md5[file]]
    if differing:
        log.warning("%s: %s differ%s from the official %s release (md5); loading them anyway.",
                    folder, ", ".join(differing), "s" if len(differing) == 1 else "", release.name)


def _load(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing; the {path.parent.name} folder is incomplete, "
                        "so unpack or download the release again.")
    try:
        content = load_data_pickle(path)
    except RefusedPickle as error:
        raise UserError(f"{path} was not loaded because {error}; use the official release files.") from None
    # A damaged pickle fails in many ways; a corrupt length field can even ask for terabytes (MemoryError).
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            OverflowError, MemoryError) as error:
        raise UserError(f"{path} is truncated or damaged ({error or type(error).__name__}); "
                        "replace it with a fresh copy.") from None
    if not isinstance(content, dict):
        raise UserError(f"{path} does not hold a CIFAR batch (a dict); replace it with a fresh copy.")
    return content


def _read_class_names(path: Path, key: str, num_classes: int) -> list[str]:
    names = _load(path).get(key)
    if not (isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names)):
        raise UserError(f"{path} should list {num_classes} class names under {key!r}; replace it with a fresh copy.")
    return names


def _read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, 3, 32, 32] and int64 labels [n] from one batch file."""
    batch = _load(path)
    data, labels = batch.get("data"), batch.get(label_key)
    side = IMAGE_SIDE
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * side * side):
        shape = getattr(data, "shape", None)
        raise UserError(f"{path} should hold 'data' as uint8 rows of {3 * side * side} values, "
                        f"not {shape if shape is not None else type(data).__name__}; replace it with a fresh copy.")
    targets = _integers(labels)
    if targets is None or targets.shape != (len(data),):
        raise UserError(f"{path} should hold {len(data)} integer labels under {label_key!r}; "
                        "replace it with a fresh copy.")
    if len(targets) and (targets.min() < 0 or targets.max() >= num_classes):
        raise UserError(f"{path} has labels outside 0..{num_classes - 1}; replace it with a fresh copy.")
    # Each row is 1024 red, then 1024 green, then 1024 blue values, rows first: that is [3, 32, 32].
    return data.reshape(len(data), 3, side, side), targets


def _integers(values: object) -> np.ndarray | None:
    """`values` as int64 when it is a list or array of integers, else None."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    if isinstance(values, list) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            return None
    return None
