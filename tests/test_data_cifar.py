"""CIFAR sources: the release layouts, download, the restricted unpickler and bad files."""
from __future__ import annotations

import http.server
import io
import logging
import pickle
import subprocess
import sys
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, write_cifar10, write_cifar10_arrays, write_cifar100
from resnet_cifar.data import load_dataset
from resnet_cifar.data.archive import file_md5
from resnet_cifar.data.cifar import read_cifar
from resnet_cifar.data.safe_pickle import RefusedPickle, load_data_pickle
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


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/served over http://127.0.0.1:PORT/ from a thread."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_keeps_a_file_whose_md5_matches(http_server, tmp_path):
    served, url = http_server
    archive = write_cifar10(served, n_train=50, n_test=10, archive=True)
    data_dir = tmp_path / "data"
    classes, splits = read_cifar("cifar10", data_dir, {"train"}, download_missing=True,
                                 url=f"{url}/{archive.name}", md5=file_md5(archive))
    assert len(classes) == 10 and len(splits["train"]) == 50
    assert file_md5(data_dir / "cifar-10-python.tar.gz") == file_md5(archive)


def test_download_with_wrong_md5_keeps_nothing(http_server, tmp_path):
    served, url = http_server
    archive = write_cifar10(served, n_train=50, n_test=10, archive=True)
    data_dir = tmp_path / "data"
    with pytest.raises(UserError, match="md5"):
        read_cifar("cifar10", data_dir, {"train"}, download_missing=True, url=f"{url}/{archive.name}", md5="0" * 32)
    assert list(data_dir.iterdir()) == []  # no archive and no temporary file


def test_unreachable_download_points_at_a_local_copy(tmp_path):
    with pytest.raises(UserError, match="Could not download .*--data-dir"):
        read_cifar("cifar10", tmp_path, {"train"}, download_missing=True, url="http://127.0.0.1:9/cifar.tar.gz")
    assert list(tmp_path.iterdir()) == []


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


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_reads_plain_data_of_any_protocol(tmp_path, protocol):
    value = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "floats": np.linspace(0, 1, 5),
             "labels": [1, 2, 3], "scalar": np.int64(7), b"raw": b"\x00\xff", "text": "t", "nested": (1.5, None)}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = load_data_pickle(path)
    assert np.array_equal(loaded["data"], value["data"]) and loaded["data"].dtype == np.uint8
    assert np.array_equal(loaded["floats"], value["floats"])
    assert loaded["labels"] == [1, 2, 3] and loaded["scalar"] == 7 and loaded["raw"] == b"\x00\xff"
    assert loaded["nested"] == (1.5, None)


def test_restricted_unpickler_refuses_object_arrays(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": np.array([None, 1], dtype=object)}, protocol=2))
    with pytest.raises(RefusedPickle, match="not a number type"):
        load_data_pickle(path)


def _tar_with(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info, None


@pytest.mark.parametrize("bad", [
    _file("cifar-10-batches-py/../../escaped"),
    _file("../escaped"),
    _file("/tmp/escaped-absolute-resnet-cifar-test"),
    _link("cifar-10-batches-py/data_batch_1", "/etc/passwd", tarfile.SYMTYPE),
    _link("cifar-10-batches-py/data_batch_1", "../../escaped", tarfile.LNKTYPE),
    _device("cifar-10-batches-py/data_batch_1"),
], ids=["dotdot-inside", "dotdot", "absolute", "symlink", "hardlink", "device"])
def test_archive_members_that_could_escape_are_refused(tmp_path, bad):
    data_dir = tmp_path / "deep" / "data"
    data_dir.mkdir(parents=True)
    _tar_with(data_dir / "cifar-10-python.tar.gz",
              [_file("cifar-10-batches-py/batches.meta"), bad, _file("cifar-10-batches-py/data_batch_2")])
    with pytest.raises(UserError, match="refusing to unpack"):
        load_dataset("cifar10", data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-python.tar.gz"]
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "deep" / "escaped").exists()
    assert not Path("/tmp/escaped-absolute-resnet-cifar-test").exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_archive_is_named_and_leaves_nothing(tmp_path, damage):
    archive = write_cifar10(tmp_path, n_train=200, n_test=10, archive=True)
    data = bytearray(archive.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2:]
    else:
        data[len(data) // 2] ^= 0xFF  # caught by the gzip checksum at the end of the stream
    archive.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"cifar-10-python.tar.gz is truncated or damaged"):
        load_dataset("cifar10", tmp_path, val_split=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


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
