"""Interrupted mid-epoch by SIGTERM and resumed, a deterministic CPU run ends exactly where an uninterrupted one does."""
from __future__ import annotations

import csv
import os
import signal

import pytest
import torch

from conftest import SGD_RECIPE, write_cifar10
from resnet_cifar.cli import main
from resnet_cifar.data import Loader

pytestmark = pytest.mark.usefixtures("one_thread")

# Many moving parts at once: Nesterov SGD, warmup then linear decay, label smoothing, EMA,
# crops and alternating flips; 150 training images in batches of 30 make five steps an epoch.
ARGS = [*SGD_RECIPE, "--device", "cpu", "--deterministic", "--val-split", "50", "--batch-size", "30",
        "--input-size", "16", "--epochs", "2", "--warmup-epochs", "0.5", "--crop-padding", "2"]


def send_sigterm_before(monkeypatch, epoch: int, batch: int) -> None:
    """Make the training loader raise SIGTERM just before it hands out batch `batch` of `epoch`."""
    original = Loader.epoch

    def epoch_with_signal(self, e, start_batch=0, crop_size=None):
        for index, item in enumerate(original(self, e, start_batch, crop_size), start_batch):
            if self.train and (e, index) == (epoch, batch):
                os.kill(os.getpid(), signal.SIGTERM)
            yield item

    monkeypatch.setattr(Loader, "epoch", epoch_with_signal)


def metrics(run):
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in csv.DictReader(f)]


@pytest.mark.parametrize("augmentation", [
    [],
    # A policy, erasing and batch mixing each draw per image or per batch: all must continue exactly.
    ["--augment", "trivialaugment", "--random-erasing", "0.5", "--cutmix", "1.0"],
], ids=["crops-and-flips", "trivialaugment-erasing-cutmix"])
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch, capsys, augmentation):
    write_cifar10(tmp_path / "data", n_train=200, n_test=20)
    data = ["--data-dir", str(tmp_path / "data"), *augmentation]
    assert main(["train", *ARGS, *data, "--output", str(tmp_path / "straight")]) == 0

    send_sigterm_before(monkeypatch, epoch=1, batch=2)
    assert main(["train", *ARGS, *data, "--output", str(tmp_path / "stopped")]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "Stopped by SIGTERM in epoch 2 after batch 3 of 5" in err and f"--resume {tmp_path / 'stopped'}" in err
    saved = torch.load(tmp_path / "stopped" / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], saved["batch"]) == (1, 8, 3)
    monkeypatch.undo()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    assert main(["train", "--resume", str(tmp_path / "stopped")]) == 0
    straight, resumed = (torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True)
                         for run in ("straight", "stopped"))
    assert resumed["step"] == straight["step"] == 10
    for part in ("model", "ema"):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), f"{part} {key}"
    for index, state in straight["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], resumed["optimizer"]["state"][index]["momentum_buffer"])
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "stopped")
