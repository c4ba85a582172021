"""`resnet-cifar compare RUN...`: runs and seed groups side by side, as a table and as overlaid curves.

Each RUN is a run folder or a seed group (resnet_cifar.runs). A group is one row,
its figures the mean ± sample std over its finished seeds, its curves the mean
over its seeds with a band of one std. A run still training is shown with the
epochs it has and marked unfinished. Besides the figures, the table shows every
setting whose value is not the same for all rows: what the comparison is about.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from resnet_cifar.choices import GENERATED_CORRUPTIONS
from resnet_cifar.errors import UserError
from resnet_cifar.pictures import Curve, plot_runs
from resnet_cifar.runs.layout import GroupPaths
from resnet_cifar.runs.reader import (GROUP_FIGURES, RunRecord, corruption_accuracy, is_seed_group, read_group_runs,
                                      read_run, run_classes, summarise)

HELP = "compare runs or seed groups: a table of their figures and settings, and their curves overlaid"

CURVES = ("train_loss", "val_loss", "train_acc", "val_acc")  # metrics.csv columns drawn
SHOWN = ("preset", "model", "epochs")  # settings with their own column
HEADERS = {"best_val_acc": "best val", "final_val_acc": "final val", "train_seconds": "train time",
           "images_per_second": "images/s"}


@dataclass
class Entry:
    """One row: a run, or a seed group (`group` is then its summary, as group.json holds it)."""

    name: str
    runs: list[RunRecord]  # a group's seeds that have at least one epoch
    group: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        if self.group is None:
            return "finished" if self.runs[0].finished else "unfinished"
        return f"{len(self.group['finished'])} of {len(self.group['seeds'])} seeds finished"

    @property
    def settings(self) -> dict[str, Any]:
        """The run's settings; for a group those its seeds share, "(varies)" for any other, and its seeds."""
        if self.group is None:
            return self.runs[0].config
        keys = dict.fromkeys(key for run in self.runs for key in run.config)
        shared = {}
        for key in keys:
            values = [run.config.get(key) for run in self.runs]
            shared[key] = values[0] if all(value == values[0] for value in values) else "(varies)"
        shared["seed"] = " ".join(map(str, self.group["seeds"]))
        return shared

    def figure(self, key: str) -> tuple[float | None, float | None]:
        """(value, std): a group's mean and sample std over its finished seeds; a run's value and None."""
        if self.group is None:
            return self.runs[0].figure(key), None
        return self.group[key]["mean"], self.group[key]["std"]

    def curves(self) -> dict[str, Curve]:
        """Each metrics.csv column in CURVES as (epoch, mean, std) over the runs that have reached that epoch."""
        curves = {}
        for column in CURVES:
            by_epoch: dict[int, list[float]] = {}
            for run in self.runs:
                for row in run.rows:
                    if row.get(column) is not None:
                        by_epoch.setdefault(int(row["epoch"]), []).append(row[column])
            curves[column] = [(epoch, statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None)
                              for epoch, values in sorted(by_epoch.items())]
        return curves

    @cached_property
    def classes(self) -> list[str] | None:
        """The class names, from the first of its runs with a checkpoint; None when none has one."""
        for run in self.runs:
            classes = run_classes(run.path)
            if classes is not None:
                return classes
        return None

    @cached_property
    def corruption(self) -> tuple[float | None, float | None, str | None]:
        """(mean, std, source) of the mean corruption accuracy over its runs that were evaluated under corruption
        (std None for fewer than two); (None, None, None) when none was."""
        found = [figure for run in self.runs if (figure := corruption_accuracy(run.path)) is not None]
        if not found:
            return None, None, None
        values, sources = [value for value, _ in found], {source for _, source in found}
        std = statistics.stdev(values) if self.group is not None and len(values) > 1 else None
        return statistics.fmean(values), std, sources.pop() if len(sources) == 1 else "mixed sources"

    @property
    def label(self) -> str:
        """The name in the picture's legend, marking what is not a plain finished run."""
        if self.group is not None:
            return f"{self.name} (mean ± std, {self.status})"
        only = self.runs[0]
        if only.finished:
            return self.name
        return f"{self.name} (unfinished: {only.epochs_done} of {only.config.get('epochs', '?')} epochs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="run folders written by `resnet-cifar train`, or seed groups (folders of "
                             f"{GroupPaths.seed_folder('N')} runs)")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="write compare.csv, compare.json and compare.png (the curves) into DIR")


def run(args: argparse.Namespace) -> int:
    entries = [read_entry(path) for path in args.runs]
    check_same_classes(entries)
    differing = differing_settings(entries)
    rows = [table_row(entry, differing) for entry in entries]
    print_table(entries, differing)
    if args.output:
        if args.output.exists() and not args.output.is_dir():
            raise UserError(f"--output {args.output} is a file; pass a folder for the comparison.")
        args.output.mkdir(parents=True, exist_ok=True)
        write_csv(rows, args.output / "compare.csv")
        report = {"runs": rows, "differing_settings": differing,
                  "groups": {entry.name: entry.group for entry in entries if entry.group is not None}}
        (args.output / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
        plot_runs([(entry.label, entry.curves()) for entry in entries], args.output / "compare.png")
        print(f"\nWrote compare.csv, compare.json and compare.png to {args.output}")
    return 0


def read_entry(path: Path) -> Entry:
    if not is_seed_group(path):
        return Entry(str(path), [read_run(path)])
    by_seed = read_group_runs(path)
    runs = [run for run in by_seed.values() if run is not None]
    if not runs:
        raise UserError(f"{path} is a seed group none of whose runs has finished an epoch yet; "
                        "compare it once one has.")
    return Entry(str(path), runs, summarise(by_seed))


def check_same_classes(entries: list[Entry]) -> None:
    """Refuse to set side by side accuracies over different classes (CIFAR-10 against CIFAR-100, say)."""
    known = [(entry.name, entry.classes) for entry in entries if entry.classes is not None]
    for name, classes in known[1:]:
        first, first_classes = known[0]
        if classes != first_classes:
            raise UserError(f"{first} was trained on {len(first_classes)} classes "
                            f"({', '.join(first_classes[:3])}, ...) but {name} on {len(classes)} "
                            f"({', '.join(classes[:3])}, ...); compare runs of the same classes.")


def differing_settings(entries: list[Entry]) -> list[str]:
    """Settings (beyond those with their own column) whose values are not all the same."""
    keys = dict.fromkeys(key for entry in entries for key in entry.settings if key not in SHOWN)
    return [key for key in keys if len({json.dumps(entry.settings.get(key)) for entry in entries}) > 1]


def table_row(entry: Entry, differing: list[str]) -> dict[str, Any]:
    """The row of compare.csv and compare.json: plain numbers, a std beside each figure (None for a run)."""
    settings = entry.settings
    row: dict[str, Any] = {
        "run": entry.name,
        "kind": "run" if entry.group is None else "seed group",
        "status": entry.status,
        **{key: settings.get(key) for key in SHOWN},
        "epochs_done": entry.runs[0].epochs_done if entry.group is None else None,
    }
    for key in GROUP_FIGURES:
        row[key], row[f"{key}_std"] = entry.figure(key)
    row["corruption_acc"], row["corruption_acc_std"], row["corruption_source"] = entry.corruption
    row.update({key: settings.get(key) for key in differing})
    return row


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else _text(value) for key, value in row.items()})


def print_table(entries: list[Entry], differing: list[str]) -> None:
    corrupted = any(entry.corruption[0] is not None for entry in entries)
    header = ["run", "status", *SHOWN, *(HEADERS[key] for key in GROUP_FIGURES),
              *(["corruption acc"] if corrupted else []), *differing]
    lines = [header] + [cells(entry, differing, corrupted) for entry in entries]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    if corrupted:
        sources = sorted({entry.corruption[2] for entry in entries if entry.corruption[2] is not None})
        print(f"corruption acc: the mean over corruptions and severities of each run's evaluation report, from "
              f"{'; '.join(sources)}; generated figures compare only with generated ones.")


def cells(entry: Entry, differing: list[str], corrupted: bool) -> list[str]:
    settings = dict(entry.settings)
    if entry.group is None and not entry.runs[0].finished:
        settings["epochs"] = f"{entry.runs[0].epochs_done}/{settings.get('epochs', '?')}"
    figures = [_format(key, *entry.figure(key)) for key in GROUP_FIGURES]
    if corrupted:
        mean, std, source = entry.corruption
        figures.append("-" if mean is None else f"{_format('corruption_acc', mean, std)} "
                       f"({'generated' if source == GENERATED_CORRUPTIONS else source})")
    return [entry.name, entry.status, *(_text(settings.get(key)) for key in SHOWN), *figures,
            *(_text(settings.get(key)) for key in differing)]


def _format(key: str, value: float | None, std: float | None) -> str:
    if value is None:
        return "-"
    if key.endswith("_acc"):
        return f"{value:.2%}" if std is None else f"{100 * value:.2f} ± {100 * std:.2f}%"
    unit = " s" if key == "train_seconds" else ""
    return f"{value:,.1f}{unit}" if std is None else f"{value:,.1f} ± {std:,.1f}{unit}"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)
