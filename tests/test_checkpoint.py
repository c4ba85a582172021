"""Checkpoint files: a bad or hostile file is refused in one sentence, nothing in it runs."""
from __future__ import annotations

import builtins

import pytest
import torch

from checkpoints import checkpoint_dict, write_checkpoint
from resnet_cifar import UserError, load_checkpoint
from resnet_cifar.checkpoint import FORMAT_VERSION, read_checkpoint, save_checkpoint


class CreatesFile:
    """Unpickling this calls open(path, "w"): the file appearing proves code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


def test_round_trip_gives_an_inference_model(tmp_path):
    path = write_checkpoint(tmp_path / "model.pt")
    model = load_checkpoint(path)
    assert not model.training
    assert model.classes[3] == "cat"
    assert model.preprocessing.model_input_size == 32
    assert model.uses_ema is False
    expected = checkpoint_dict()["model"]
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())


def test_ema_weights_are_preferred_and_can_be_declined(tmp_path):
    state = checkpoint_dict(ema=True)
    save_checkpoint(state, tmp_path / "model.pt")
    ema_model = load_checkpoint(tmp_path / "model.pt")
    raw_model = load_checkpoint(tmp_path / "model.pt", use_ema=False)
    assert ema_model.uses_ema and not raw_model.uses_ema
    assert torch.equal(ema_model.conv1.weight, state["ema"]["conv1.weight"])
    assert torch.equal(raw_model.conv1.weight, state["model"]["conv1.weight"])


def test_wrapper_prefixes_are_removed(tmp_path):
    state = checkpoint_dict()
    plain = state["model"]
    state["model"] = {f"module._orig_mod.{key}": value for key, value in plain.items()}
    save_checkpoint(state, tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path / "model.pt").state_dict()
    assert loaded.keys() == plain.keys()
    assert all(torch.equal(loaded[key], plain[key]) for key in plain)


def test_code_in_a_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format_version": FORMAT_VERSION, "model": CreatesFile(marker)}, path)
    with pytest.raises(UserError, match="could run code") as error:
        read_checkpoint(path)
    assert not marker.exists()
    assert "\n" not in str(error.value)
    # The payload is real: an unsafe load would have created the file.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_truncated_file(tmp_path):
    path = write_checkpoint(tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        read_checkpoint(path)


def test_checkpoint_of_a_different_model(tmp_path):
    state = checkpoint_dict("resnet20")
    state["model"] = checkpoint_dict("resnet32")["model"]
    save_checkpoint(state, tmp_path / "model.pt")
    with pytest.raises(UserError, match="does not fit this model"):
        load_checkpoint(tmp_path / "model.pt")


def test_wrong_class_count(tmp_path):
    state = checkpoint_dict(classes=["a", "b", "c"])
    state["model_kwargs"]["num_classes"] = 10
    save_checkpoint(state, tmp_path / "model.pt")
    with pytest.raises(UserError, match=r"fc.weight has shape \(3, 64\), expected \(10, 64\)"):
        load_checkpoint(tmp_path / "model.pt")


def test_not_a_checkpoint(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(UserError, match="not a resnet-cifar checkpoint"):
        read_checkpoint(tmp_path / "tensor.pt")
    state = checkpoint_dict()
    del state["classes"]
    save_checkpoint(state, tmp_path / "partial.pt")
    with pytest.raises(UserError, match="missing classes"):
        read_checkpoint(tmp_path / "partial.pt")


def test_missing_file_folder_and_newer_format(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(UserError, match="is a folder"):
        read_checkpoint(tmp_path)
    state = checkpoint_dict()
    state["format_version"] = FORMAT_VERSION + 1
    save_checkpoint(state, tmp_path / "future.pt")
    with pytest.raises(UserError, match="newer resnet-cifar"):
        read_checkpoint(tmp_path / "future.pt")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = write_checkpoint(tmp_path / "model.pt")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(UserError, match="Cannot write .*model.pt: disk full"):
        save_checkpoint(checkpoint_dict(seed=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
