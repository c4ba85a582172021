"""The run folder: metrics reach TensorBoard when it is installed, and a run still training is protected."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SGD_RECIPE, write_cifar10
from resnet_cifar.cli import main
from resnet_cifar.errors import UserError
from resnet_cifar.runs.layout import METRIC_COLUMNS
from resnet_cifar.runs.writer import RunFolder, _process_start, check_not_in_use


def test_metrics_are_logged_as_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = RunFolder(tmp_path / "run", enabled=True)
    rows = []
    for epoch, val_acc in ((1, 0.25), (2, 0.5)):
        rows.append({key: 0.1 * epoch for key in METRIC_COLUMNS} | {"epoch": epoch, "val_acc": val_acc})
        folder.write_metrics(rows)
    folder.close()

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(METRIC_COLUMNS[1:])
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
    args = ["train", *SGD_RECIPE, "--data-dir", str(tmp_path / "data"), "--val-split", "8", "--batch-size", "16",
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
    host, pid, *started = (tmp_path / "run" / ".lock").read_text().split()
    assert [host, pid] == [socket.gethostname(), str(os.getpid())]
    assert started == ([_process_start(os.getpid())] if _process_start(os.getpid()) else [])
    folder.close()
    assert not (tmp_path / "run" / ".lock").exists()


def test_a_lock_from_another_machine_names_the_file_to_delete(tmp_path):
    (tmp_path / ".lock").write_text("elsewhere 123\n")
    with pytest.raises(UserError, match=r"process 123 on elsewhere\); .* delete .*\.lock to take the folder over"):
        check_not_in_use(tmp_path)


def test_a_lock_that_is_not_ours_does_not_block_the_folder(tmp_path):
    (tmp_path / ".lock").write_text("not a host and pid\n")
    check_not_in_use(tmp_path)
    (tmp_path / ".lock").write_text("host pid\n")
    check_not_in_use(tmp_path)


proc_only = pytest.mark.skipif(_process_start(os.getpid()) is None,
                               reason="needs Linux's /proc to tell processes apart")


@proc_only
def test_a_lock_naming_a_live_process_with_its_start_time_blocks_the_folder(tmp_path, live_process):
    (tmp_path / ".lock").write_text(f"{socket.gethostname()} {live_process.pid} {_process_start(live_process.pid)}\n")
    with pytest.raises(UserError, match=f"process {live_process.pid}\\); .* delete .*\\.lock to take the folder over"):
        check_not_in_use(tmp_path)


@proc_only
@pytest.mark.parametrize("started", ["another-boot/1", "{boot}/1"], ids=["before-a-reboot", "pid-reused"])
def test_a_lock_whose_pid_now_names_another_process_does_not_block(tmp_path, live_process, started):
    """After a reboot, or once the pid is reused, the lock's pid is alive but is not the training that wrote it."""
    boot = _process_start(live_process.pid).split("/")[0]
    (tmp_path / ".lock").write_text(f"{socket.gethostname()} {live_process.pid} {started.format(boot=boot)}\n")
    check_not_in_use(tmp_path)


def test_temporaries_of_killed_saves_are_removed_when_the_folder_opens(tmp_path, live_process):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    stale = [checkpoints / f".last.pt.tmp{dead_pid}", tmp_path / "run" / f".curves.png.tmp{dead_pid}"]
    live = checkpoints / f".best.pt.tmp{live_process.pid}"  # still being written by a live process
    for path in (*stale, live):
        path.write_bytes(b"half a file")
    RunFolder(tmp_path / "run", enabled=True).close()
    assert not any(path.exists() for path in stale)
    assert live.exists()
