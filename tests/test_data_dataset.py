"""load_dataset: the validation split, the normalisation statistics and argument checks."""
from __future__ import annotations

import numpy as np
import pytest

from resnet_cifar.data import load_dataset
from resnet_cifar.errors import UserError


def test_validation_split_is_stratified_seeded_and_carved_from_train(cifar10_dir):
    everything = load_dataset("cifar10", cifar10_dir, splits=("train",), val_split=0).train
    ds = load_dataset("cifar10", cifar10_dir, val_split=100, seed=3)

    assert len(ds.train) == 400 and len(ds.val) == 100 and ds.test is None
    per_class_all = np.bincount(everything.labels.numpy(), minlength=10)
    per_class_val = np.bincount(ds.val.labels.numpy(), minlength=10)
    assert np.all(np.abs(per_class_val - per_class_all * 100 / 500) <= 1)
    # Together the two parts are exactly the training files, no image in both.
    parts = np.concatenate([ds.train.images.numpy(), ds.val.images.numpy()]).reshape(500, -1)
    assert np.array_equal(np.unique(parts, axis=0), np.unique(everything.images.numpy().reshape(500, -1), axis=0))

    again = load_dataset("cifar10", cifar10_dir, val_split=100, seed=3)
    other = load_dataset("cifar10", cifar10_dir, val_split=100, seed=4)
    assert np.array_equal(again.val.images.numpy(), ds.val.images.numpy())
    assert not np.array_equal(other.val.images.numpy(), ds.val.images.numpy())


def test_training_images_do_not_depend_on_whether_val_was_requested(cifar10_dir):
    with_val = load_dataset("cifar10", cifar10_dir, splits=("train", "val"), val_split=50)
    without = load_dataset("cifar10", cifar10_dir, splits=("train",), val_split=50)
    assert without.val is None
    assert np.array_equal(with_val.train.images.numpy(), without.train.images.numpy())


def test_val_split_must_leave_training_images(cifar10_dir):
    with pytest.raises(UserError, match="--val-split"):
        load_dataset("cifar10", cifar10_dir, val_split=500)


def test_mean_and_std_come_from_the_training_portion(cifar10_dir):
    ds = load_dataset("cifar10", cifar10_dir, val_split=100)
    pixels = ds.train.images.numpy().astype(np.float64) / 255
    assert ds.mean == pytest.approx(pixels.mean(axis=(0, 2, 3)), abs=1e-9)
    assert ds.std == pytest.approx(pixels.std(axis=(0, 2, 3)), abs=1e-9)
    assert load_dataset("cifar10", cifar10_dir, splits=("test",)).mean is None


@pytest.mark.parametrize("arguments, message", [
    ({"name": "mnist"}, "Unknown dataset 'mnist'"),
    ({"splits": ("train", "valid")}, "Unknown split 'valid'"),
    ({"val_split": -1}, "--val-split must be 0 or more"),
    ({"image_size": 64}, "CIFAR images are 32x32"),
])
def test_bad_arguments_are_named(cifar10_dir, arguments, message):
    with pytest.raises(UserError, match=message):
        load_dataset(**({"name": "cifar10", "data_dir": cifar10_dir} | arguments))
