"""Continuing a run: from its folder (or a checkpoint in it) to the settings and state it goes on with.

A run continues with the settings it was trained with, those stored in its
checkpoint; only RESUMABLE ones may change (to extend it, say), and a
config.yaml edited since is said, not silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_cifar.checkpoint import read_checkpoint
from resnet_cifar.config import RESUMABLE, TrainConfig, check_values, read_yaml, validate
from resnet_cifar.errors import UserError
from resnet_cifar.runs.layout import RunPaths
from resnet_cifar.runs.writer import check_not_in_use


@dataclass(frozen=True)
class Resumption:
    """What a run trains with next: its settings, its folder, and the checkpoint (path, state) it continues
    from; None for a run that starts afresh."""

    config: TrainConfig
    run_dir: Path
    checkpoint: tuple[Path, dict[str, Any]] | None


def resumption(given: Path, flags: dict[str, Any]) -> Resumption:
    """The run at `given` (a run folder or a checkpoint in one) with the resumable `flags`, in one sentence
    when it cannot continue: in use, no training state, an edited config.yaml, nothing left to train."""
    path, run_dir = _checkpoint_and_run_dir(given)
    check_not_in_use(run_dir)
    state = read_checkpoint(path)
    if "optimizer" not in state or "config" not in state:
        raise UserError(f"{path} holds weights but no training state; resume from a checkpoint written by this "
                        "version's train.")
    _refuse_edited_config(RunPaths(run_dir).config, state["config"])
    config = validate(TrainConfig(**{**check_values(state["config"], str(path)), **flags}))
    done = state["epoch"]
    if config.epochs <= done:
        raise UserError(f"The run in {run_dir} has already trained {done} of {state['config']['epochs']} epochs; "
                        f"pass --epochs N with N above {done} to extend it.")
    return Resumption(config, run_dir, (path, state))


def _refuse_edited_config(file: Path, trained: dict[str, Any]) -> None:
    if not file.is_file():
        return
    written = read_yaml(file)
    changed = [key for key, value in written.items() if key not in RESUMABLE and trained.get(key, value) != value]
    if changed:
        key = changed[0]
        raise UserError(f"{file} says {key}: {written[key]!r}, but the run was trained with {trained[key]!r} "
                        f"({len(changed)} setting(s) differ); --resume continues with the run's own settings, so "
                        f"undo the edit, or start a new run with --config {file} --output NEW_DIR.")


def _checkpoint_and_run_dir(path: Path) -> tuple[Path, Path]:
    """A run folder means its last checkpoint; a checkpoint file must sit in a run folder's checkpoints folder."""
    if not path.exists():
        raise UserError(f"--resume {path} does not exist; pass a run folder written by `resnet-cifar train`.")
    if path.is_dir():
        paths = RunPaths(path)
        if not paths.last.is_file():
            raise UserError(f"{path} holds no {paths.relative(paths.last)}; pass a run folder written by "
                            "`resnet-cifar train`.")
        return paths.last, path
    run_dir = path.parent.parent
    if path.parent != RunPaths(run_dir).checkpoints:
        raise UserError(f"--resume {path}: the checkpoint must be inside a run folder's "
                        f"{RunPaths(run_dir).checkpoints.name}/ to continue that run.")
    return path, run_dir
