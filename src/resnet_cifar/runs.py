"""Reading run folders and seed groups back: what `compare` shows and `train --seeds` summarises.

A run folder is what `resnet-cifar train` writes (resnet_cifar.train.run_folder):
config.yaml from the start, one metrics.csv row per finished epoch, summary.json
at the very end. A folder with metrics but no summary is therefore a run still
training (or one that was stopped): it is read with the epochs it has and counts
as unfinished.

A seed group is a folder holding one run folder per seed, named by seed_run_dir:

    DIR/seed-0/   DIR/seed-1/   ...   DIR/group.json

group.json (write_group_summary) records the seeds, which runs have finished, each
run's figures, and the mean, sample standard deviation, min and max of every figure
in GROUP_FIGURES over the finished runs. It is rewritten from the run folders each
time, so it is correct to write after every seed, whether or not the others have run.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import re
import statistics
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resnet_cifar.errors import UserError

SEED_FOLDER = "seed-{seed}"
GROUP_FILE = "group.json"
# The figures of a finished run (keys of its summary.json) that a group summarises.
GROUP_FIGURES = ("best_val_acc", "final_val_acc", "train_seconds", "images_per_second")

_SEED_FOLDER = re.compile(r"seed-(\d+)")


@dataclass
class Run:
    """One run folder as it is now: its settings, its epochs so far and, once finished, its summary."""

    path: Path
    config: dict[str, Any]
    rows: list[dict[str, float | None]]  # metrics.csv, one dict per epoch, at least one
    summary: dict[str, Any] | None  # summary.json; None while unfinished

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def epochs_done(self) -> int:
        return int(self.rows[-1]["epoch"])

    def figure(self, key: str) -> float | None:
        """A figure of GROUP_FIGURES: summary.json's once finished, else what the epochs so far say.

        An unfinished run has no images/s: the number of images trained comes with the summary.
        """
        if self.summary is not None:
            return self.summary.get(key)
        val = [row["val_acc"] for row in self.rows if row.get("val_acc") is not None]
        seconds = [row.get("train_seconds") for row in self.rows]
        return {
            "best_val_acc": max(val) if val else None,
            "final_val_acc": self.rows[-1].get("val_acc"),
            "train_seconds": sum(seconds) if None not in seconds else None,  # older runs lack the column
            "images_per_second": None,
        }[key]


def read_run(path: Path) -> Run:
    """The run in folder `path`; a UserError in one sentence when it is not one or has no epoch yet."""
    if not path.exists():
        raise UserError(f"{path} does not exist; check the path.")
    if not path.is_dir():
        raise UserError(f"{path} is a file; pass a run folder written by `resnet-cifar train`.")
    if not (path / "config.yaml").is_file() and not (path / "metrics.csv").is_file():
        raise UserError(f"{path} is not a run folder (no config.yaml or metrics.csv) nor a seed group "
                        f"(no {SEED_FOLDER.format(seed='N')} folders); pass a folder written by `resnet-cifar train`.")
    if not (path / "metrics.csv").is_file():
        raise UserError(f"{path} has no metrics.csv: its training has not finished an epoch yet; "
                        "compare it once it has.")
    config = _read_yaml(path / "config.yaml") if (path / "config.yaml").is_file() else {}
    rows = _read_metrics(path / "metrics.csv")
    summary = _read_json(path / "summary.json") if (path / "summary.json").is_file() else None
    if summary is not None and summary.get("epochs") != config.get("epochs", summary.get("epochs")):
        summary = None  # being extended by `train --resume --epochs N`: the summary is of the earlier end
    return Run(path, config, rows, summary)


def run_classes(path: Path) -> list[str] | None:
    """The class names a run trains on, from its checkpoint; None when it has no readable one.

    mmap keeps this cheap for large checkpoints: only the small non-tensor parts are read.
    """
    import torch  # here, not at the top: of all that reads runs, only this looks into a checkpoint

    for name in ("last.pt", "best.pt"):
        file = path / "checkpoints" / name
        if file.is_file():
            try:
                return list(torch.load(file, map_location="cpu", weights_only=True, mmap=True)["classes"])
            except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
                    KeyError, TypeError):  # corrupt, or not one of ours: try the other one
                continue
    return None


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{file} is not valid YAML ({error.__class__.__name__}); restore it from the run.") from None
    if not isinstance(values, dict):
        raise UserError(f"{file} does not hold settings; restore it from the run.")
    return values


def _read_json(file: Path) -> dict[str, Any]:
    try:
        values = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{file} is not valid JSON ({error.msg}); restore or delete it.") from None
    if not isinstance(values, dict):
        raise UserError(f"{file} does not hold a summary; restore or delete it.")
    return values


def _read_metrics(file: Path) -> list[dict[str, float | None]]:
    """metrics.csv as numbers (an empty cell, such as val_acc without a validation split, is None)."""
    with open(file, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "epoch" not in reader.fieldnames:
            raise UserError(f"{file} has no epoch column; it is not a metrics.csv written by `resnet-cifar train`.")
        try:
            rows = [{key: float(value) if value else None for key, value in row.items()} for row in reader]
        except (TypeError, ValueError):
            raise UserError(f"{file} holds a value that is not a number; restore it from the run.") from None
    if not rows:
        raise UserError(f"{file} has no epochs yet; compare the run once it has finished one.")
    return rows


# Seed groups


def seed_run_dir(group: Path, seed: int) -> Path:
    """The run folder of `seed` inside seed group `group`."""
    return group / SEED_FOLDER.format(seed=seed)


def group_seeds(group: Path) -> list[int]:
    """The seeds of group `group`: those group.json names (planned ones too) and those with a folder."""
    found = {int(m.group(1)) for p in group.iterdir() if p.is_dir() and (m := _SEED_FOLDER.fullmatch(p.name))}
    if (group / GROUP_FILE).is_file():
        found.update(int(seed) for seed in _read_json(group / GROUP_FILE).get("seeds", []))
    return sorted(found)


def is_seed_group(path: Path) -> bool:
    return path.is_dir() and any(seed_run_dir(path, seed).is_dir() for seed in group_seeds(path))


def read_group_runs(group: Path, seeds: list[int] | None = None) -> dict[int, Run | None]:
    """Each seed's run, or None for a seed that has no epoch yet (not started, or still in its first)."""
    seeds = sorted(set(seeds or []) | set(group_seeds(group)))
    return {seed: read_run(seed_run_dir(group, seed)) if (seed_run_dir(group, seed) / "metrics.csv").is_file()
            else None for seed in seeds}


def spread(values: list[float]) -> dict[str, Any]:
    """n, mean, sample standard deviation (n - 1; None below two values), min and max."""
    if not values:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None, "min": min(values), "max": max(values)}


def group_summary(group: Path, seeds: list[int] | None = None) -> dict[str, Any]:
    """The summary of seed group `group` over its finished runs; `seeds` adds seeds planned but not yet started."""
    return summarise(read_group_runs(group, seeds))


def summarise(runs: dict[int, Run | None]) -> dict[str, Any]:
    """group.json's contents for these runs by seed (see the module docstring)."""
    finished = {seed: run for seed, run in runs.items() if run is not None and run.finished}
    summary: dict[str, Any] = {
        "seeds": list(runs),
        "finished": list(finished),
        "std": "sample standard deviation (n - 1) over the finished runs; null for fewer than two",
        "runs": [
            {"seed": seed, "folder": SEED_FOLDER.format(seed=seed), "finished": run is not None and run.finished,
             "epochs_done": run.epochs_done if run else 0,
             **{key: run.figure(key) if run is not None and run.finished else None for key in GROUP_FIGURES}}
            for seed, run in runs.items()
        ],
    }
    for key in GROUP_FIGURES:
        summary[key] = spread([value for run in finished.values() if (value := run.figure(key)) is not None])
    return summary


def write_group_summary(group: Path, seeds: list[int] | None = None) -> dict[str, Any]:
    """Write `group`/group.json (atomically) from the seed folders as they are now, and return it.

    Safe at any point of a group's training: unfinished or missing seeds are listed as
    such and left out of the statistics. Pass `seeds` (the seeds asked for) so the
    summary also names those not started yet.
    """
    summary = group_summary(group, seeds)
    file = group / GROUP_FILE
    tmp = file.with_name(f".{file.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    return summary
