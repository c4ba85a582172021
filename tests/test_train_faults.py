"""Faults: a NaN loss stops the run and keeps the last good checkpoint; a checkpoint of another model is refused."""
from __future__ import annotations

import csv

import pytest
import torch

from conftest import write_cifar10
from resnet_cifar.cli import main
from resnet_cifar.data import Loader
from resnet_cifar.models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "paper", "--val-split", "50", "--batch-size", "50", "--input-size", "16"]


@pytest.fixture
def run_of_one_epoch(tmp_path):
    write_cifar10(tmp_path / "data", n_train=200, n_test=20)
    run = tmp_path / "run"
    assert main(["train", *TINY, "--data-dir", str(tmp_path / "data"), "--epochs", "1", "--output", str(run)]) == 0
    return run


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(run_of_one_epoch, monkeypatch, capsys):
    original = Loader.epoch

    def poisoned(self, epoch, start_batch=0, crop_size=None):
        for x, y in original(self, epoch, start_batch, crop_size):
            yield (x * float("nan") if self.train else x), y

    good = torch.load(run_of_one_epoch / "checkpoints" / "last.pt", weights_only=True)
    monkeypatch.setattr(Loader, "epoch", poisoned)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_of_one_epoch), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "the training loss is nan" in err and "last good checkpoint" in err and "epoch 2" in err
    kept = torch.load(run_of_one_epoch / "checkpoints" / "last.pt", weights_only=True)
    assert kept["epoch"] == 1
    assert all(torch.equal(value, kept["model"][key]) for key, value in good["model"].items())
    with open(run_of_one_epoch / "metrics.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]


def test_checkpoint_of_another_model_is_a_clear_error(run_of_one_epoch, capsys):
    last = run_of_one_epoch / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["model"] = create_model("resnet32").state_dict()
    torch.save(state, last)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_of_one_epoch), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit this model" in err and str(last) in err and len(err.splitlines()) == 1


def test_checkpoint_of_another_class_count_is_a_clear_error(run_of_one_epoch, capsys):
    last = run_of_one_epoch / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["classes"] = state["classes"][:5]
    torch.save(state, last)
    capsys.readouterr()
    assert main(["train", "--resume", str(last), "--epochs", "2"]) == 2
    assert "was trained on 5 classes" in capsys.readouterr().err


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing_that_blocks_the_next(tmp_path, monkeypatch,
                                                                                            capsys):
    write_cifar10(tmp_path / "data", n_train=200, n_test=20)
    original = Loader.epoch

    def poisoned(self, epoch, start_batch=0, crop_size=None):
        for x, y in original(self, epoch, start_batch, crop_size):
            yield (x * float("nan") if self.train else x), y

    args = ["train", *TINY, "--data-dir", str(tmp_path / "data"), "--epochs", "1", "--output", str(tmp_path / "run")]
    monkeypatch.setattr(Loader, "epoch", poisoned)
    assert main(args) == 2
    assert "no checkpoint was written" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(args) == 0  # no --overwrite or --resume needed


def test_a_missing_test_split_is_said_before_training(tmp_path, capsys):
    write_cifar10(tmp_path / "data", n_train=200, n_test=20)
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").unlink()
    assert main(["train", *TINY, "--data-dir", str(tmp_path / "data"), "--epochs", "1", "--evaluate-test",
                 "--output", str(tmp_path / "run")]) == 2
    assert "test_batch is missing" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, message", [
    (["--model", "fastresnet8", "--stem", "imagenet"], "--model fastresnet8 has only the cifar stem"),
    (["--model", "fastresnet8", "--zero-init-residual"], "--model fastresnet8 has no --zero-init-residual option"),
    (["--model", "resnet18", "--init-from", "weights.pt"], "need the ImageNet stem they were trained with (--stem imagenet"),
    (["--init-from", "weights.pt"], "fit only resnet18, resnet34, resnet50, resnet101, resnet152, but the model is"),
    (["--model", "resnet7"], "Unknown model 'resnet7'"),
])
def test_model_settings_are_checked_before_the_data_is_read(tmp_path, capsys, flags, message):
    """The data folder does not even exist: the model settings are refused first."""
    assert main(["train", *TINY, "--data-dir", str(tmp_path / "nowhere"), *flags,
                 "--output", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--model", "fastresnet8", "--input-size", "4"], "fastresnet8 cannot take 4x4 images"),
    (["--preset", "fast", "--early-crop-size", "6"], "pass a larger --early-crop-size"),
])
def test_sides_a_network_cannot_take_are_refused_before_any_work(tmp_path, capsys, flags, message):
    assert main(["train", *flags, "--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_a_full_disk_while_training_says_the_last_good_checkpoint_is_intact(run_of_one_epoch, monkeypatch, capsys):
    import errno

    from resnet_cifar import checkpoint

    good = (run_of_one_epoch / "checkpoints" / "last.pt").read_bytes()
    real_save = torch.save

    def disk_full(obj, file, *args, **kwargs):
        file.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_of_one_epoch), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the disk is full" in err and "still holds the last good checkpoint" in err
    monkeypatch.setattr(torch, "save", real_save)
    assert (run_of_one_epoch / "checkpoints" / "last.pt").read_bytes() == good
    assert checkpoint.read_checkpoint(run_of_one_epoch / "checkpoints" / "last.pt")["epoch"] == 1
    assert not [p for p in (run_of_one_epoch / "checkpoints").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("where", ["resnet_cifar.data.dataset.read_cifar", "resnet_cifar.train.build.create_model"])
def test_ctrl_c_while_a_run_starts_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, where):
    write_cifar10(tmp_path / "data", n_train=200, n_test=20)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--data-dir", str(tmp_path / "data"), "--epochs", "1"]) == 130
    assert capsys.readouterr().err.strip() == "resnet-cifar train: interrupted"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
