"""Downloading and unpacking release archives: md5 checks, unsafe members, damaged archives."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from conftest import write_cifar10
from resnet_cifar.data import load_dataset
from resnet_cifar.data.archive import file_md5
from resnet_cifar.data.cifar import read_cifar
from resnet_cifar.errors import UserError


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
