"""`train --seeds`: one run folder per seed, the group's summary after each, and `--resume` of a stopped group."""
from __future__ import annotations

import json
import os
import signal
import statistics

import pytest

from conftest import write_cifar10
from resnet_cifar.cli import main
from resnet_cifar.data import Loader

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "paper", "--val-split", "40", "--batch-size", "40", "--epochs", "1", "--input-size", "16",
        "--device", "cpu"]


@pytest.fixture
def data(tmp_path):
    write_cifar10(tmp_path / "data", n_train=160, n_test=20)
    return ["--data-dir", str(tmp_path / "data")]


def test_a_group_trains_each_seed_and_summarises_them(tmp_path, data, capsys):
    group = tmp_path / "group"
    assert main(["train", *TINY, *data, "--seeds", "3", "5", "--output", str(group)]) == 0
    assert "Seed group of 2 runs: best validation accuracy" in capsys.readouterr().out
    runs = {seed: json.loads((group / f"seed-{seed}" / "summary.json").read_text()) for seed in (3, 5)}
    configs = {seed: (group / f"seed-{seed}" / "config.yaml").read_text() for seed in (3, 5)}
    assert "seed: 3" in configs[3] and "seed: 5" in configs[5]
    summary = json.loads((group / "group.json").read_text())
    assert summary["seeds"] == [3, 5] and summary["finished"] == [3, 5]
    best = [runs[seed]["best_val_acc"] for seed in (3, 5)]
    assert summary["best_val_acc"]["mean"] == pytest.approx(statistics.mean(best))
    assert summary["best_val_acc"]["std"] == pytest.approx(statistics.stdev(best))
    assert main(["compare", str(group)]) == 0
    assert "±" in capsys.readouterr().out


def test_a_stopped_group_resumes_where_it_stopped(tmp_path, data, monkeypatch, capsys):
    group = tmp_path / "group"
    original = Loader.epoch

    def stop_in_the_second_seed(self, e, start_batch=0, crop_size=None):
        for index, item in enumerate(original(self, e, start_batch, crop_size), start_batch):
            if self.train and self.seed == 1 and index == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            yield item

    monkeypatch.setattr(Loader, "epoch", stop_in_the_second_seed)
    assert main(["train", *TINY, *data, "--seeds", "0", "1", "2", "--output", str(group)]) == 128 + signal.SIGTERM
    assert f"resume the whole group with: resnet-cifar train --resume {group}" in capsys.readouterr().out
    summary = json.loads((group / "group.json").read_text())
    assert summary["seeds"] == [0, 1, 2] and summary["finished"] == [0]
    first = (group / "seed-0" / "checkpoints" / "last.pt").stat().st_mtime_ns
    monkeypatch.undo()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    assert main(["train", "--resume", str(group)]) == 0
    summary = json.loads((group / "group.json").read_text())
    assert summary["finished"] == [0, 1, 2] and summary["best_val_acc"]["n"] == 3
    assert (group / "seed-0" / "checkpoints" / "last.pt").stat().st_mtime_ns == first  # the finished seed is kept


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "0", "0"], "--seeds takes different seeds"),
    (["--seeds", "0", "1", "--seed", "4"], "--seed cannot be given with it"),
])
def test_bad_seed_lists_are_one_sentence(tmp_path, data, capsys, flags, message):
    assert main(["train", *TINY, *data, *flags, "--output", str(tmp_path / "group")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "group").exists()


def test_an_existing_group_is_not_replaced_silently(tmp_path, data, capsys):
    group = tmp_path / "group"
    assert main(["train", *TINY, *data, "--seeds", "0", "--output", str(group)]) == 0
    assert main(["train", *TINY, *data, "--seeds", "0", "--output", str(group)]) == 2
    assert "already holds a seed group" in capsys.readouterr().err
    assert main(["train", *TINY, *data, "--seeds", "1", "--output", str(group), "--overwrite"]) == 0
    assert sorted(p.name for p in group.iterdir() if p.is_dir()) == ["seed-1"]
