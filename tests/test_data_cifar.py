"""CIFAR sources: the release layouts, which files are read, and bad batch files."""
from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, write_cifar10, write_cifar10_arrays
from resnet_cifar.data import load_dataset
from resnet_cifar.data.safe_pickle import load_data_pickle
from resnet_cifar.errors import UserError

def known_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 [n, 32, 32, 3] images, the first pure red, and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    images[0] = (255, 0, 0)
    return images, rng.integers(0, 10, n)


@pytest.mark.parametrize("archive", [False, True], ids=["folder", "archive"])
@pytest.mark.parametrize("python2", [False, True], ids=["py3-pickle", "py2-pickle"])
def test_pixels_and_labels_round_trip_exactly(tmp_path, archive, python2):
    train, train_labels = known_images(50, 1)
    test, test_labels = known_images(20, 2)
    write_cifar10_arrays(tmp_path, train, train_labels, test, test_labels, archive=archive, python2=python2)

    ds = load_dataset("cifar10", tmp_path, splits=("train", "test"), val_split=0)

    assert ds.classes[0] == "airplane" and ds.num_classes == 10
    assert np.array_equal(ds.train.images.numpy(), train.transpose(0, 3, 1, 2))
    assert np.array_equal(ds.train.labels.numpy(), train_labels)
    assert np.array_equal(ds.test.images.numpy(), test.transpose(0, 3, 1, 2))
    red = ds.train.images[0]
    assert (red[0] == 255).all() and (red[1:] == 0).all()  # channel order: R, G, B


def test_data_dir_may_be_the_archive_or_the_extracted_folder(tmp_path):
    archive = write_cifar10(tmp_path / "a", n_train=50, n_test=10, archive=True)
    folder = write_cifar10(tmp_path / "b", n_train=50, n_test=10)
    from_archive = load_dataset("cifar10", archive, val_split=0)
    from_folder = load_dataset("cifar10", folder, val_split=0)
    assert np.array_equal(from_archive.train.images.numpy(), from_folder.train.images.numpy())
    assert (archive.parent / "cifar-10-batches-py" / "data_batch_1").is_file()  # unpacked once, beside the archive


def test_cifar100_has_fine_labels_and_coarse_on_request(cifar100_dir):
    fine = load_dataset("cifar100", cifar100_dir, splits=("train",), val_split=0)
    coarse = load_dataset("cifar100", cifar100_dir, splits=("train",), val_split=0, labels="coarse")
    assert fine.num_classes == 100 and coarse.num_classes == 20
    assert fine.classes[7] == "fine7" and coarse.classes[3] == "coarse3"
    assert np.array_equal(coarse.train.labels.numpy(), fine.train.labels.numpy() // 5)


def test_coarse_labels_are_refused_for_cifar10(cifar10_dir):
    with pytest.raises(UserError, match="coarse"):
        load_dataset("cifar10", cifar10_dir, labels="coarse", val_split=10)


def test_only_requested_splits_are_read(cifar10_dir):
    folder = cifar10_dir / "cifar-10-batches-py"
    (folder / "test_batch").unlink()  # as ../shared/data's converter writes it: training batches only
    ds = load_dataset("cifar10", cifar10_dir, val_split=50)
    assert len(ds.train) == 450 and ds.test is None
    with pytest.raises(UserError, match="test_batch is missing"):
        load_dataset("cifar10", cifar10_dir, splits=("test",))

    write_cifar10(cifar10_dir)
    (folder / "data_batch_3").unlink()
    assert len(load_dataset("cifar10", cifar10_dir, splits=("test",)).test) == 100


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match="--download"):
        load_dataset("cifar10", tmp_path)


def test_unofficial_files_load_with_one_warning(cifar10_dir, caplog):
    with caplog.at_level(logging.WARNING):
        load_dataset("cifar10", cifar10_dir, val_split=10)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "differ from the official cifar10 release" in warnings[0].getMessage()


class _CreatesAFile:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(cifar10_dir, tmp_path):
    marker = tmp_path / "pwned"
    batch = cifar10_dir / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps({"data": _CreatesAFile(marker), "labels": [0]}))
    with pytest.raises(UserError, match="data_batch_2 was not loaded because it asks to run io.open"):
        load_dataset("cifar10", cifar10_dir, val_split=10)
    assert not marker.exists()


def _rewrite_batch(folder: Path, name: str, **changes) -> None:
    batch = load_data_pickle(folder / name)
    batch.update(changes)
    (folder / name).write_bytes(pickle.dumps(batch, protocol=4))


@pytest.mark.parametrize("change, message", [
    ({"data": np.zeros((100, 1024), dtype=np.uint8)}, "should hold 'data' as uint8 rows of 3072"),
    ({"data": np.zeros((100, 3072), dtype=np.float32)}, "should hold 'data' as uint8"),
    ({"labels": [0] * 99}, "should hold 100 integer labels"),
    ({"labels": ["cat"] * 100}, "should hold 100 integer labels"),
    ({"labels": [10] * 100}, "has labels outside 0..9"),
])
def test_malformed_batches_are_named(cifar10_dir, change, message):
    _rewrite_batch(cifar10_dir / "cifar-10-batches-py", "data_batch_4", **change)
    with pytest.raises(UserError, match=f"data_batch_4 {message}"):
        load_dataset("cifar10", cifar10_dir, val_split=10)


def test_truncated_batch_file_is_named(cifar10_dir):
    batch = cifar10_dir / "cifar-10-batches-py" / "data_batch_5"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(UserError, match="data_batch_5 is truncated or damaged"):
        load_dataset("cifar10", cifar10_dir, val_split=10)


def test_shared_jpeg_images_convert_to_batches_that_load_as_cifar10(shared_jpeg_folder, tmp_path):
    """The documented route for real images: ../shared/data's converter, then --dataset cifar10."""
    archive = tmp_path / "subset.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(shared_jpeg_folder / "train", arcname="train")
    subprocess.run([sys.executable, str(SHARED_DATA / "cifar10_jpeg_to_batches.py"), str(archive), str(tmp_path)],
                   check=True, capture_output=True)
    ds = load_dataset("cifar10", tmp_path, val_split=50)
    assert len(ds.train) == 250 and len(ds.val) == 50
    assert sorted(set(ds.train.labels.tolist())) == sorted(
        ds.classes.index(folder.name) for folder in (shared_jpeg_folder / "train").iterdir())
    assert 0.3 < ds.mean[0] < 0.7  # real photographs, not blank or saturated images
