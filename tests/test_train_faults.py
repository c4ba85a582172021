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
