"""Writing a run folder (resnet_cifar.runs.layout): the only place training writes, and only from the main process.

The lock keeps a second process (a repeated command, a benchmark pointed at
the same folder) from overwriting or resuming a run that is still training: it
would otherwise replace the files under the live run's feet. A lock left by a
process that no longer exists (or whose pid now names another process, after a
reboot say) is taken over.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_cifar import checkpoint
from resnet_cifar.config import TrainConfig, write_yaml
from resnet_cifar.errors import UserError
from resnet_cifar.files import (cannot_write, check_writable, make_folder, process_exists, remove_stale_temporaries,
                               write_atomically)
from resnet_cifar.pictures import plot_curves
from resnet_cifar.runs.layout import METRIC_COLUMNS, RunPaths
from resnet_cifar.runs.reader import read_metrics


def prepare_new(path: Path, overwrite: bool) -> None:
    """Make sure `path` can take a new run: refuse to replace an existing one unless told to,
    and never one that is still training.

    With overwrite only this tool's files are removed, never anything else in the folder.
    """
    if path.exists() and not path.is_dir():
        raise UserError(f"--output {path} is a file; pass a folder for the run.")
    check_writable(RunPaths(path).config)  # a read-only folder, /proc, a full disk: said now, before any work
    check_not_in_use(path)
    ours = [item for item in RunPaths(path).ours if item.exists()]
    if ours and not overwrite:
        raise UserError(
            f"{path} already holds a run; pass another --output, --resume {path} to continue it, "
            "or --overwrite to replace it."
        )
    for item in ours:
        shutil.rmtree(item) if item.is_dir() else item.unlink()


def check_not_in_use(path: Path) -> None:
    """Raise a UserError when a live process is training in `path`."""
    lock = RunPaths(path).lock
    holder = _lock_holder(lock)
    if holder is not None:
        raise UserError(f"{path} is in use by a training process that is still running ({holder}); wait for it to "
                        "finish, stop it (Ctrl-C saves a checkpoint to resume from) or pass another --output; "
                        f"if that process is not training there, delete {lock} to take the folder over.")


def _lock_holder(lock: Path) -> str | None:
    """Who holds `lock`, or None when nobody does (no lock, or its process has gone).

    A pid alone can name another process after a reboot or once the pid is
    reused, so the lock also records when its process started (_process_start),
    where the system says.
    """
    try:
        host, text, *started = lock.read_text().split()
        pid = int(text)
    except (OSError, ValueError):  # none, or not one of ours
        return None
    if host != socket.gethostname():  # cannot tell whether it still runs: assume it does
        return f"process {pid} on {host}"
    if pid == os.getpid() or not process_exists(pid):  # ours, left by an earlier run in this process; or gone
        return None
    if started and _process_start(pid) not in (None, started[0]):  # the pid now names another process
        return None
    return f"process {pid}"


def _process_start(pid: int) -> str | None:
    """When process `pid` started, as BOOT_ID/TICKS (the boot, then clock ticks since it); None where /proc
    cannot say. With the pid it names one process across reboots and pid reuse."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces) start at field 3; field 22 is the start time.
    return f"{boot}/{stat.rsplit(')', 1)[1].split()[19]}"


class RunFolder:
    """A run folder being written: every method does nothing unless `enabled` (the main process)."""

    def __init__(self, path: Path, *, enabled: bool):
        self.path = path
        self.paths = RunPaths(path)
        self.enabled = enabled
        self.last, self.best = self.paths.last, self.paths.best
        self._tensorboard = None
        if enabled:
            make_folder(path)
            self._take_lock()
            for folder in (path, self.paths.checkpoints):  # left by a training killed while saving
                remove_stale_temporaries(folder)
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                pass
            else:
                self._tensorboard = SummaryWriter(str(self.paths.tensorboard))

    def write_config(self, config: TrainConfig) -> None:
        if self.enabled:
            self._written(self.paths.config, lambda file: write_yaml(config, file))

    def read_metrics(self, up_to_epoch: int) -> list[dict[str, Any]]:
        """The rows of metrics.csv for epochs 1..up_to_epoch (a resumed run drops the later ones)."""
        if not self.paths.metrics.is_file():
            return []
        return [row for row in read_metrics(self.paths.metrics) if row["epoch"] <= up_to_epoch]

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite metrics.csv and curves.png, and log the newest row to TensorBoard."""
        if not self.enabled:
            return
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows({key: "" if row.get(key) is None else row[key] for key in METRIC_COLUMNS} for row in rows)
        self._written(self.paths.metrics, lambda file: write_atomically(file, table.getvalue().encode()))
        self._written(self.paths.curves, lambda file: plot_curves(rows, file))
        if self._tensorboard is not None and rows:
            row = rows[-1]
            for key in METRIC_COLUMNS[1:]:
                if row.get(key) is not None:  # a run resumed from an older version may lack a column
                    self._tensorboard.add_scalar(key, row[key], row["epoch"])
            self._tensorboard.flush()

    def save(self, state: dict[str, Any], *, best: bool) -> None:
        if self.enabled:
            self._written(self.last, lambda file: checkpoint.save_checkpoint(state, file))
            if best:
                self._written(self.best, lambda file: checkpoint.save_checkpoint(state, file))

    def _written(self, file: Path, write: Callable[[Path], None]) -> None:
        """`write(file)`; a file that cannot be written (a full disk) says in its sentence what is still intact,
        as every file here is replaced whole or not at all."""
        try:
            write(file)
        except OSError as error:
            raise cannot_write(file, error) from None
        except UserError as error:
            kept = f"; {self.last} still holds the last good checkpoint" if self.last.is_file() else ""
            raise UserError(f"{str(error).rstrip('.')}{kept}.") from None

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.enabled:
            text = json.dumps(summary, indent=2) + "\n"
            self._written(self.paths.summary, lambda file: write_atomically(file, text.encode()))

    def _take_lock(self) -> None:
        """Write our host and process id to the lock, which must be free or stale; creating it
        exclusively means two processes starting together cannot both succeed."""
        check_not_in_use(self.path)
        self.paths.lock.unlink(missing_ok=True)  # stale
        try:
            with open(self.paths.lock, "x") as f:
                f.write(f"{socket.gethostname()} {os.getpid()} {_process_start(os.getpid()) or ''}".rstrip() + "\n")
        except FileExistsError:
            raise UserError(f"{self.path} was just taken by another training process; pass another --output.") from None

    def close(self, *, failed: bool = False) -> None:
        """Release the folder. After a run that `failed` before its first checkpoint, remove what it wrote
        (and the folder, if it is left empty), so that the next attempt needs neither --overwrite nor --resume."""
        if self._tensorboard is not None:
            self._tensorboard.close()
        if not self.enabled:
            return
        if failed and not self.last.is_file():
            for item in self.paths.ours:
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink(missing_ok=True)
        self.paths.lock.unlink(missing_ok=True)
        if failed and not any(self.path.iterdir()):
            self.path.rmdir()
