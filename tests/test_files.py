"""resnet_cifar.files: a file is written whole or not at all, and a refusal is one sentence."""
from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch

import resnet_cifar.files as files
from resnet_cifar.errors import UserError

DEV_FULL = Path("/dev/full")  # every write to it fails with "No space left on device"


@pytest.fixture
def full_disk(monkeypatch):
    """Every file resnet_cifar.files opens for writing is /dev/full."""
    if not DEV_FULL.exists():
        pytest.skip("needs /dev/full (Linux)")
    monkeypatch.setattr(files, "open", lambda path, mode: builtins.open(DEV_FULL, mode), raising=False)


@pytest.mark.parametrize("write", [
    lambda path: files.write_atomically(path, b"new content" * 100_000),
    lambda path: files.save_atomically({"weights": torch.zeros(100_000)}, path),  # torch.save says RuntimeError
], ids=["bytes", "torch.save"])
def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, full_disk, write):
    path = tmp_path / "model.pt"
    path.write_bytes(b"the last good one")
    with pytest.raises(UserError, match=f"Cannot write {path}: the disk is full; free some space"):
        write(path)
    assert path.read_bytes() == b"the last good one"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_check_writable_leaves_nothing_behind(tmp_path):
    files.check_writable(tmp_path / "new" / "folders" / "model.onnx")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(UserError, match=r"notes.txt is a file, not a folder"):
        files.check_writable(tmp_path / "notes.txt" / "sub" / "model.onnx")
