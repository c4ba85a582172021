"""Reading run folders and seed groups back: what `compare` shows, `train --seeds` summarises and the
benchmarks measure.

A run folder gets config.yaml at its start, one metrics.csv row per finished
epoch, and summary.json at the very end (resnet_cifar.runs.layout). A folder
with metrics but no summary is therefore a run still training (or one that was
stopped): it is read with the epochs it has and counts as unfinished.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
import pickle
import statistics
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resnet_cifar.errors import UserError
from resnet_cifar.runs.layout import GroupPaths, RunPaths

# The figures of a finished run (keys of its summary.json) that a group summarises.
GROUP_FIGURES = ("best_val_acc", "final_val_acc", "train_seconds", "images_per_second")


@dataclass
class RunRecord:
    """One run folder as it is now: its settings, its epochs so far and, once finished, its summary."""

    path: Path
    config: dict[str, Any]
    rows: list[dict[str, Any]]  # metrics.csv, one dict per epoch, at least one
    summary: dict[str, Any] | None  # summary.json; None while unfinished

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def epochs_done(self) -> int:
        return self.rows[-1]["epoch"]

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


def read_run(path: Path) -> RunRecord:
    """The run in folder `path`; a UserError in one sentence when it is not one or has no epoch yet."""
    paths = RunPaths(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; check the path.")
    if not path.is_dir():
        raise UserError(f"{path} is a file; pass a run folder written by `resnet-cifar train`.")
    if not paths.config.is_file() and not paths.metrics.is_file():
        raise UserError(f"{path} is not a run folder (no {paths.config.name} or {paths.metrics.name}) nor a seed "
                        f"group (no {GroupPaths.seed_folder('N')} folders); pass a folder written by "
                        "`resnet-cifar train`.")
    if not paths.metrics.is_file():
        raise UserError(f"{path} has no {paths.metrics.name}: its training has not finished an epoch yet; "
                        "compare it once it has.")
    config = read_settings(paths.config) if paths.config.is_file() else {}
    rows = read_metrics(paths.metrics)
    if not rows:
        raise UserError(f"{paths.metrics} has no epochs yet; compare the run once it has finished one.")
    summary = read_json(paths.summary) if paths.summary.is_file() else None
    if summary is not None and summary.get("epochs") != config.get("epochs", summary.get("epochs")):
        summary = None  # being extended by `train --resume --epochs N`: the summary is of the earlier end
    return RunRecord(path, config, rows, summary)


def read_metrics(file: Path) -> list[dict[str, Any]]:
    """metrics.csv as numbers, the epoch an int (an empty cell, such as val_acc without a validation split, is
    None); the one parser of the file, for resuming a run and for reading it back."""
    with open(file, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "epoch" not in reader.fieldnames:
            raise UserError(f"{file} has no epoch column; it is not a {file.name} written by `resnet-cifar train`.")
        try:
            rows = [{key: float(value) if value else None for key, value in row.items()} for row in reader]
            for row in rows:
                row["epoch"] = int(row["epoch"])
        except (TypeError, ValueError):
            raise UserError(f"{file} holds a value that is not a number; restore it from the run.") from None
    return rows


def read_settings(file: Path) -> dict[str, Any]:
    """A run's config.yaml as written, without checking it against this version's settings."""
    return _read_mapping(file, yaml.safe_load, yaml.YAMLError, "YAML", "settings", "restore it from the run")


def read_json(file: Path) -> dict[str, Any]:
    """A summary.json or group.json."""
    return _read_mapping(file, json.loads, json.JSONDecodeError, "JSON", "a summary", "restore or delete it")


def _read_mapping(file: Path, parse: Callable[[str], Any], error_type: type[Exception], language: str, holds: str,
                  fix: str) -> dict[str, Any]:
    try:
        values = parse(file.read_text())
    except error_type as error:
        raise UserError(f"{file} is not valid {language} ({error.__class__.__name__}); {fix}.") from None
    if not isinstance(values, dict):
        raise UserError(f"{file} does not hold {holds}; {fix}.")
    return values


def run_classes(path: Path) -> list[str] | None:
    """The class names a run trains on, from its checkpoint; None when it has no readable one.

    mmap keeps this cheap for large checkpoints: only the small non-tensor parts are read.
    """
    import torch  # here, not at the top: of all that reads runs, only this looks into a checkpoint

    paths = RunPaths(path)
    for file in (paths.last, paths.best):
        if file.is_file():
            try:
                return list(torch.load(file, map_location="cpu", weights_only=True, mmap=True)["classes"])
            except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
                    KeyError, TypeError):  # corrupt, or not one of ours: try the other one
                continue
    return None


def corruption_accuracy(path: Path) -> tuple[float, str] | None:
    """The mean corruption accuracy of the run in `path` and its source ("CIFAR-10-C style (generated)" or a
    published set), when its evaluation report has one; None otherwise."""
    file = RunPaths(path).evaluation_report
    if not file.is_file():
        return None
    table = read_json(file).get("corruptions")
    if not isinstance(table, dict) or not isinstance(table.get("mean_accuracy"), float):
        return None
    return table["mean_accuracy"], str(table.get("source"))


def checkpoint_to_use(text: str | Path) -> Path:
    """What a command given `text` as its checkpoint reads: the file itself, or for a run folder its best
    checkpoint (its last one when it has no validation split)."""
    path = Path(text)
    paths = RunPaths(path)
    if path.is_dir() and (paths.best.is_file() or paths.last.is_file()):
        return paths.best if paths.best.is_file() else paths.last
    return path


# Seed groups


def group_seeds(group: Path) -> list[int]:
    """The seeds of group `group`: those group.json names (planned ones too) and those with a folder."""
    paths = GroupPaths(group)
    found = set(paths.seed_folders())
    if paths.summary.is_file():
        found.update(int(seed) for seed in read_json(paths.summary).get("seeds", []))
    return sorted(found)


def is_seed_group(path: Path) -> bool:
    return path.is_dir() and bool(GroupPaths(path).seed_folders())


def read_group_runs(group: Path, seeds: list[int] | None = None) -> dict[int, RunRecord | None]:
    """Each seed's run, or None for a seed that has no epoch yet (not started, or still in its first)."""
    paths = GroupPaths(group)
    seeds = sorted(set(seeds or []) | set(group_seeds(group)))
    return {seed: read_run(paths.seed(seed).root) if paths.seed(seed).metrics.is_file() else None for seed in seeds}


def spread(values: list[float]) -> dict[str, Any]:
    """n, mean, sample standard deviation (n - 1; None below two values), min and max."""
    if not values:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None, "min": min(values), "max": max(values)}


def summarise(runs: dict[int, RunRecord | None]) -> dict[str, Any]:
    """group.json's contents for these runs by seed: the seeds, which have finished, each run's figures, and
    the mean, sample standard deviation, min and max of every figure in GROUP_FIGURES over the finished runs."""
    finished = {seed: run for seed, run in runs.items() if run is not None and run.finished}
    summary: dict[str, Any] = {
        "seeds": list(runs),
        "finished": list(finished),
        "std": "sample standard deviation (n - 1) over the finished runs; null for fewer than two",
        "runs": [
            {"seed": seed, "folder": GroupPaths.seed_folder(seed), "finished": run is not None and run.finished,
             "epochs_done": run.epochs_done if run else 0,
             **{key: run.figure(key) if run is not None and run.finished else None for key in GROUP_FIGURES}}
            for seed, run in runs.items()
        ],
    }
    for key in GROUP_FIGURES:
        summary[key] = spread([value for run in finished.values() if (value := run.figure(key)) is not None])
    return summary
