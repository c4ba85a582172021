"""The run folder: metrics reach TensorBoard when it is installed, and a run still training is protected."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_cifar10
from resnet_cifar.cli import main
from resnet_cifar.errors import UserError
from resnet_cifar.train.run_folder import METRICS, RunFolder, check_not_in_use


def test_metrics_are_logged_as_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = RunFolder(tmp_path / "run", enabled=True)
    rows = []
    for epoch, val_acc in ((1, 0.25), (2, 0.5)):
        rows.append({key: 0.1 * epoch for key in METRICS} | {"epoch": epoch, "val_acc": val_acc})
        folder.write_metrics(rows)
    folder.close()

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(METRICS[1:])
    assert [(s.step, s.value) for s in events.Scalars("val_acc")] == [(1, 0.25), (2, 0.5)]


@pytest.fixture
def live_process():
    """A process that is still running, as another training would be."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def hold(run: Path, process) -> None:
    (run / ".lock").write_text(f"{socket.gethostname()} {process.pid}\n")


def test_a_run_still_training_is_neither_overwritten_nor_resumed(tmp_path, live_process, capsys):
    write_cifar10(tmp_path / "data", n_train=40, n_test=10)
    run = tmp_path / "run"
    args = ["train", "--preset", "cpu", "--data-dir", str(tmp_path / "data"), "--val-split", "8", "--batch-size", "16",
            "--input-size", "16", "--epochs", "1", "--device", "cpu", "--output", str(run)]
    assert main(args) == 0
    assert not (run / ".lock").exists()  # a finished run leaves its folder free
    before = (run / "checkpoints" / "last.pt").read_bytes()
    hold(run, live_process)
    assert main(args + ["--overwrite"]) == 2
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert "in use by a training process that is still running" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt").read_bytes() == before

    live_process.kill()
    live_process.wait()  # the lock is now stale: the run may be resumed
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0


def test_the_folder_is_locked_while_training(tmp_path):
    folder = RunFolder(tmp_path / "run", enabled=True)
    assert (tmp_path / "run" / ".lock").read_text().split() == [socket.gethostname(), str(os.getpid())]
    folder.close()
    assert not (tmp_path / "run" / ".lock").exists()


def test_a_lock_from_another_machine_names_the_file_to_delete(tmp_path):
    (tmp_path / ".lock").write_text("elsewhere 123\n")
    with pytest.raises(UserError, match=r"process 123 on elsewhere; if it has stopped, delete .*\.lock"):
        check_not_in_use(tmp_path)


def test_a_lock_that_is_not_ours_does_not_block_the_folder(tmp_path):
    (tmp_path / ".lock").write_text("not a host and pid\n")
    check_not_in_use(tmp_path)
    (tmp_path / ".lock").write_text("host pid\n")
    check_not_in_use(tmp_path)
