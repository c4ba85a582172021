"""Shared test fixtures: tiny synthetic CIFAR releases written in the official format.

The images are learnable on purpose (each class has its own colour and a
class-dependent stripe, plus noise), so a few training steps on them must beat
chance; that lets end-to-end tests check that training really learns.
"""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic_images(labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """uint8 [N, 32, 32, 3] images whose colour and stripe position depend on the label."""
    rng = np.random.default_rng(seed)
    hues = np.random.default_rng(1234).integers(30, 226, size=(num_classes, 3))
    images = rng.normal(0, 20, size=(len(labels), 32, 32, 3)) + hues[labels][:, None, None, :]
    for i, label in enumerate(labels):
        row = (label * 3) % 30
        images[i, row : row + 2, :, :] = 255 - hues[label]
    return np.clip(images, 0, 255).astype(np.uint8)


def _batch(images: np.ndarray, labels: np.ndarray, label_key: str, extra: dict | None = None) -> dict:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # rows of 1024 R, 1024 G, 1024 B
    batch = {"batch_label": "synthetic", label_key: labels.tolist(), "data": data,
             "filenames": [f"{i}.png" for i in range(len(labels))]}
    batch.update(extra or {})
    return batch


def _dump(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, n_train: int = 500, n_test: int = 100, seed: int = 0, archive: bool = False) -> Path:
    """Write `root/cifar-10-batches-py` (or `root/cifar-10-python.tar.gz`); return what was written."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_labels = rng.integers(0, 10, n_train)
    train_images = synthetic_images(train_labels, 10, seed)
    for index, part in enumerate(np.array_split(np.arange(n_train), 5)):
        _dump(_batch(train_images[part], train_labels[part], "labels"), folder / f"data_batch_{index + 1}")
    test_labels = rng.integers(0, 10, n_test)
    _dump(_batch(synthetic_images(test_labels, 10, seed + 1), test_labels, "labels"), folder / "test_batch")
    _dump({"label_names": CIFAR10_CLASSES, "num_cases_per_batch": n_train // 5, "num_vis": 3072}, folder / "batches.meta")
    return _archive(folder, Path(root) / "cifar-10-python.tar.gz") if archive else folder


def write_cifar100(root: Path, n_train: int = 500, n_test: int = 100, seed: int = 0, archive: bool = False) -> Path:
    """Write `root/cifar-100-python` (train, test, meta) or its .tar.gz; fine label = 5 * coarse + k."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, count in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, 100, count)
        images = synthetic_images(fine, 100, seed + len(name))
        _dump(_batch(images, fine, "fine_labels", {"coarse_labels": (fine // 5).tolist()}), folder / name)
    _dump({"fine_label_names": [f"fine{i}" for i in range(100)],
           "coarse_label_names": [f"coarse{i}" for i in range(20)]}, folder / "meta")
    return _archive(folder, Path(root) / "cifar-100-python.tar.gz") if archive else folder


def _archive(folder: Path, target: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    target.write_bytes(buffer.getvalue())
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    return target


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    """A data dir holding an extracted synthetic CIFAR-10 (500 train, 100 test images)."""
    write_cifar10(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Path:
    write_cifar100(tmp_path / "data100")
    return tmp_path / "data100"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (the real CIFAR-10 JPEG archive); tests using it skip where it is absent."""
    archive = SHARED_DATA / "cifar10-train-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 images not found at {archive}")
    return SHARED_DATA
