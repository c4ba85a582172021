"""Seed groups: the same settings trained once per seed, one run folder each, and the group's mean ± std.

    resnet-cifar train --preset fast --seeds 0 1 2 --output DIR

trains DIR/seed-0, DIR/seed-1, DIR/seed-2 one after the other and rewrites
DIR/group.json after each (resnet_cifar.runs.layout), so the group's summary is
always that of the seeds finished so far. A group stopped part-way continues
with `--resume DIR`: finished seeds are kept, an interrupted one resumes from
its last checkpoint, the rest start (seed_start says which).

group.json (resnet_cifar.runs.reader.summarise) is rewritten from the run
folders each time, so it is correct to write after every seed, whether or not
the others have run.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from resnet_cifar.config import TrainConfig, read_yaml, resolve, write_yaml
from resnet_cifar.errors import UserError
from resnet_cifar.files import write_atomically
from resnet_cifar.runs.layout import GroupPaths
from resnet_cifar.runs.reader import group_seeds, read_group_runs, summarise
from resnet_cifar.runs.resume import Resumption, resumption
from resnet_cifar.runs.writer import check_not_in_use, prepare_new


def prepare_group(group: Path, config: TrainConfig, seeds: list[int], overwrite: bool) -> None:
    """Make `group` ready for a new group: refuse to replace one unless told to, never one still training."""
    paths = GroupPaths(group)
    if group.exists() and not group.is_dir():
        raise UserError(f"--output {group} is a file; pass a folder for the seed group.")
    existing = list(paths.seed_folders().values())
    for folder in existing:
        check_not_in_use(folder)
    if (existing or paths.summary.exists()) and not overwrite:
        raise UserError(f"{group} already holds a seed group; pass another --output, --resume {group} to continue "
                        "it, or --overwrite to replace it.")
    prepare_new(group, overwrite)  # a single run's files in the folder count as a run to replace too
    for folder in existing:
        shutil.rmtree(folder)
    paths.summary.unlink(missing_ok=True)
    group.mkdir(parents=True, exist_ok=True)
    write_yaml(dataclasses.replace(config, seed=seeds[0]), paths.config)
    write_group_summary(group, seeds)


def is_group(path: Path) -> bool:
    """Whether `path` holds a seed group that `--resume` continues as a whole."""
    return GroupPaths(path).summary.is_file()


def group_config(group: Path, flags: dict[str, Any]) -> tuple[TrainConfig, list[int]]:
    """The settings and seeds of the group in `group`, with the flags a resumed run may change."""
    paths = GroupPaths(group)
    if not paths.config.is_file():
        raise UserError(f"{group} holds no {paths.config.name}; pass a seed group written by "
                        "`resnet-cifar train --seeds`.")
    return resolve({}, read_yaml(paths.config), flags), group_seeds(group)


def seed_start(group: Path, seed: int, config: TrainConfig, flags: dict[str, Any]) -> Resumption | None:
    """How seed `seed` of the group trains next: a Resumption (a fresh start has no checkpoint), or None when
    it has finished all of `config.epochs`."""
    paths = GroupPaths(group).seed(seed)
    if paths.summary.is_file() and read_yaml(paths.config)["epochs"] >= config.epochs:
        return None
    if paths.last.is_file():
        return resumption(paths.root, flags)
    # Not started, or stopped before its first checkpoint (which leaves nothing behind).
    return Resumption(dataclasses.replace(config, seed=seed), paths.root, None)


def write_group_summary(group: Path, seeds: list[int] | None = None) -> dict[str, Any]:
    """Write `group`/group.json (in one step) from the seed folders as they are now, and return it.

    Safe at any point of a group's training: unfinished or missing seeds are listed as
    such and left out of the statistics. Pass `seeds` (the seeds asked for) so the
    summary also names those not started yet.
    """
    summary = summarise(read_group_runs(group, seeds))
    write_atomically(GroupPaths(group).summary, (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def group_line(summary: dict[str, Any], group: Path) -> str:
    """The line a finished group ends with."""
    best, final, seconds = summary["best_val_acc"], summary["final_val_acc"], summary["train_seconds"]
    file = GroupPaths(group).summary
    if not best["n"]:
        return f"Seed group {group}: no run has a validation figure; see {file}."
    std = f" ± {best['std']:.2%}" if best["std"] is not None else ""
    final_std = f" ± {final['std']:.2%}" if final["std"] is not None else ""
    return (f"Seed group of {best['n']} runs: best validation accuracy {best['mean']:.2%}{std} "
            f"(min {best['min']:.2%}, max {best['max']:.2%}), final {final['mean']:.2%}{final_std}, "
            f"{seconds['mean']:.0f} s of training per run. Summary: {file}")
