"""Seed groups: the same settings trained once per seed, one run folder each, and the group's mean ± std.

    resnet-cifar train --preset fast --seeds 0 1 2 --output DIR

trains DIR/seed-0, DIR/seed-1, DIR/seed-2 one after the other (resnet_cifar.runs
names them) and rewrites DIR/group.json after each, so the group's summary is
always that of the seeds finished so far. DIR/config.yaml holds the group's
settings (each seed folder's own config.yaml differs only in `seed`). A group
stopped part-way continues with `--resume DIR`: finished seeds are kept, an
interrupted one resumes from its last checkpoint, the rest start.
"""
from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_cifar.config import TrainConfig, read_yaml, resolve, write_yaml
from resnet_cifar.errors import UserError
from resnet_cifar.runs import GROUP_FILE, SEED_FOLDER, group_seeds, seed_run_dir, write_group_summary
from resnet_cifar.train.run_folder import check_not_in_use, prepare_new
from resnet_cifar.train.trainer import train
from resnet_cifar.world import World

GROUP_CONFIG = "config.yaml"

# How to continue a seed's run from its folder with the command's flags: (config, (checkpoint path, state)).
Resumer = Callable[[Path], tuple[TrainConfig, tuple[Path, dict[str, Any]]]]


def prepare_group(group: Path, config: TrainConfig, seeds: list[int], overwrite: bool) -> None:
    """Make `group` ready for a new group: refuse to replace one unless told to, never one still training."""
    if group.exists() and not group.is_dir():
        raise UserError(f"--output {group} is a file; pass a folder for the seed group.")
    existing = [p for p in group.glob(SEED_FOLDER.format(seed="*")) if p.is_dir()] if group.is_dir() else []
    for folder in existing:
        check_not_in_use(folder)
    if (existing or (group / GROUP_FILE).exists()) and not overwrite:
        raise UserError(f"{group} already holds a seed group; pass another --output, --resume {group} to continue "
                        "it, or --overwrite to replace it.")
    prepare_new(group, overwrite)  # a single run's files in the folder count as a run to replace too
    for folder in existing:
        shutil.rmtree(folder)
    (group / GROUP_FILE).unlink(missing_ok=True)
    group.mkdir(parents=True, exist_ok=True)
    write_yaml(dataclasses.replace(config, seed=seeds[0]), group / GROUP_CONFIG)
    write_group_summary(group, seeds)


def group_config(group: Path, flags: dict[str, Any]) -> tuple[TrainConfig, list[int]]:
    """The settings and seeds of the group in `group`, with the flags a resumed run may change."""
    if not (group / GROUP_CONFIG).is_file():
        raise UserError(f"{group} holds no {GROUP_CONFIG}; pass a seed group written by `resnet-cifar train --seeds`.")
    return resolve({}, read_yaml(group / GROUP_CONFIG), flags), group_seeds(group)


def train_group(config: TrainConfig, group: Path, seeds: list[int], world: World, resumed: Resumer) -> int:
    """Train every seed of the group that is not finished; returns the exit code (non-zero when stopped)."""
    for seed in seeds:
        run_dir = seed_run_dir(group, seed)
        summary = run_dir / "summary.json"
        extending = summary.is_file() and read_yaml(run_dir / "config.yaml")["epochs"] < config.epochs
        if summary.is_file() and not extending:
            continue
        if (run_dir / "checkpoints" / "last.pt").is_file():
            seed_config, resume = resumed(run_dir)
        else:  # not started, or stopped before its first checkpoint (which leaves nothing behind)
            seed_config, resume = dataclasses.replace(config, seed=seed), None
            if world.is_main:
                prepare_new(run_dir, overwrite=False)
            world.barrier()
        code = train(seed_config, run_dir, world, resume=resume)
        if world.is_main:
            write_group_summary(group, seeds)
        if code != 0:
            if world.is_main:
                print(f"Seed group stopped at seed {seed}; resume the whole group with: "
                      f"resnet-cifar train --resume {group}", flush=True)
            return code
    if world.is_main:
        print(_group_line(write_group_summary(group, seeds), group), flush=True)
    return 0


def _group_line(summary: dict[str, Any], group: Path) -> str:
    best, final, seconds = summary["best_val_acc"], summary["final_val_acc"], summary["train_seconds"]
    if not best["n"]:
        return f"Seed group {group}: no run has a validation figure; see {group / GROUP_FILE}."
    std = f" ± {best['std']:.2%}" if best["std"] is not None else ""
    final_std = f" ± {final['std']:.2%}" if final["std"] is not None else ""
    return (f"Seed group of {best['n']} runs: best validation accuracy {best['mean']:.2%}{std} "
            f"(min {best['min']:.2%}, max {best['max']:.2%}), final {final['mean']:.2%}{final_std}, "
            f"{seconds['mean']:.0f} s of training per run. Summary: {group / GROUP_FILE}")
