"""One training run, from a config (or a checkpoint to resume) to a finished run folder: build -> state -> loop;
and a seed group, one such run per seed.

`build_run` makes every part from the settings, `TrainingState` starts afresh or
restores a checkpoint into those parts, and `run_epochs` trains the epochs left.
This module only strings them together and writes the summary. The test split is
loaded with the others when asked (so a missing one fails before training) but
scored only once, at the very end, so it can never steer a choice made during
training.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from resnet_cifar.checkpoint import build_model, read_checkpoint
from resnet_cifar.config import TrainConfig
from resnet_cifar.evaluation import evaluate
from resnet_cifar.models import count_parameters
from resnet_cifar.recipes import default_preset
from resnet_cifar.runs.group import group_line, seed_start, write_group_summary
from resnet_cifar.runs.writer import RunFolder, prepare_new
from resnet_cifar.train.build import Run, build_run, memory_format
from resnet_cifar.train.interrupt import StopRequest
from resnet_cifar.train.loop import run_epochs
from resnet_cifar.train.progress import Progress
from resnet_cifar.train.state import TrainingState
from resnet_cifar.world import World


def train(config: TrainConfig, run_dir: Path, world: World, *, resume: tuple[Path, dict[str, Any]] | None = None) -> int:
    """Train as `config` says in this process of `world`, writing `run_dir`; returns the exit code
    (non-zero when interrupted)."""
    run = build_run(config, world, init_weights=resume is None)
    state = TrainingState.restore(run, *resume) if resume is not None else TrainingState.start(run)
    folder = RunFolder(run_dir, enabled=world.is_main)
    failed = True
    try:
        folder.write_config(config)
        rows = folder.read_metrics(state.epoch) if resume is not None else []
        progress = Progress(config.epochs, len(run.train_loader), run.engine.step, enabled=world.is_main,
                            step_cost=run.step_cost)
        progress.message(_start_line(run, run_dir))
        with StopRequest() as stop:
            if not run_epochs(run, state, rows, folder, progress, stop):
                failed = False  # stopped on request, with a checkpoint to resume from
                return stop.exit_code
        summary = _summary(run, state, rows)
        if config.evaluate_test:
            summary.update(_test_figures(run, folder))
        folder.write_summary(summary)
        failed = False
    finally:
        folder.close(failed=failed)
    if world.is_main:
        print(_final_line(summary, run_dir), file=sys.stdout, flush=True)
        print(_next_commands(folder, validated=run.val_loader is not None), file=sys.stdout, flush=True)
    return 0


def train_group(config: TrainConfig, group: Path, seeds: list[int], world: World, flags: dict[str, Any]) -> int:
    """Train every seed of the group that is not finished, rewriting its summary after each; returns the exit
    code (non-zero when stopped). A seed stopped part-way continues with the resumable `flags`."""
    for seed in seeds:
        start = seed_start(group, seed, config, flags)
        if start is None:
            continue
        if start.checkpoint is None:
            if world.is_main:
                prepare_new(start.run_dir, overwrite=False)
            world.barrier()
        code = train(start.config, start.run_dir, world, resume=start.checkpoint)
        if world.is_main:
            write_group_summary(group, seeds)
        if code != 0:
            if world.is_main:
                print(f"Seed group stopped at seed {seed}; resume the whole group with: "
                      f"resnet-cifar train --resume {group}", flush=True)
            return code
    if world.is_main:
        print(group_line(write_group_summary(group, seeds), group), flush=True)
    return 0


def _start_line(run: Run, run_dir: Path) -> str:
    c, dataset, dtype = run.config, run.dataset, run.engine.amp_dtype
    preset = f"with preset {c.preset!r} " if c.preset else ""
    if c.preset and c.preset == default_preset(c.model, run.world.device.type):
        preset += f"(the default for {c.model} {'with CUDA' if run.world.device.type == 'cuda' else 'on a CPU'}) "
    precision = "" if dtype is None else f" ({amp_name(dtype)})"
    return (f"Training {c.model} ({count_parameters(run.model):,} parameters) on {c.dataset} "
            f"({len(dataset.train):,} train, {len(dataset.val) if dataset.val is not None else 0:,} val images) "
            f"{preset}on {run.world.device}{precision}; run folder {run_dir}")


def amp_name(dtype: torch.dtype | None) -> str:
    """The autocast precision as the start line and summary.json say it: bfloat16, float16, or off."""
    return "off" if dtype is None else str(dtype).removeprefix("torch.")


def _test_figures(run: Run, folder: RunFolder) -> dict[str, Any]:
    """The test split scored once, with the best weights by validation (the last ones without a validation split)."""
    run.world.barrier()  # every rank reads best.pt, which rank 0 may just have written
    model = build_model(read_checkpoint(folder.best)) if folder.best.is_file() else run.eval_model
    model.to(run.world.device, memory_format=memory_format(run.config))
    loader = run.eval_loader(run.dataset.test)
    metrics = evaluate(model, lambda: loader.epoch(0), run.dataset.num_classes, tta=run.config.tta,
                       tta_fraction=run.config.tta_fraction, amp_dtype=run.engine.amp_dtype, world=run.world)
    return {"test_acc": metrics.accuracy, "test_loss": metrics.loss, "test_images": metrics.count}


def _summary(run: Run, state: TrainingState, rows: list[dict]) -> dict[str, Any]:
    c, tally, dtype, last = run.config, state.tally, run.engine.amp_dtype, rows[-1] if rows else {}
    return {
        "preset": c.preset,
        "model": c.model,
        "parameters": count_parameters(run.model),
        "dataset": c.dataset,
        "device": str(run.world.device),
        "amp": amp_name(dtype),
        "epochs": c.epochs,
        "steps": run.engine.step,
        "best_val_acc": tally.best_val_acc if tally.best_epoch else None,
        "best_epoch": tally.best_epoch or None,
        "final_val_acc": last.get("val_acc"),
        "final_train_acc": last.get("train_acc"),
        "train_seconds": tally.train_seconds,
        "images_per_second": tally.train_images / max(tally.train_seconds, 1e-9),
    }


def _next_commands(folder: RunFolder, *, validated: bool) -> str:
    """What a user does with a finished run, ready to paste."""
    weights, paths = folder.best if folder.best.is_file() else folder.last, folder.paths
    split = "val" if validated else "test"
    return "\n".join([
        "Next:",
        f"  resnet-cifar evaluate {weights} --split {split} --output {paths.evaluation}",
        f"  resnet-cifar predict {weights} IMAGE_OR_FOLDER --explain {paths.explained}",
        f"  resnet-cifar export {weights} --format onnx --output {paths.onnx}",
    ])


def _final_line(summary: dict[str, Any], run_dir: Path) -> str:
    parts = []
    if summary["best_val_acc"] is not None:
        parts.append(f"best validation accuracy {summary['best_val_acc']:.2%} (epoch {summary['best_epoch']})")
    if "test_acc" in summary:
        parts.append(f"test accuracy {summary['test_acc']:.2%}")
    parts.append(f"{summary['train_seconds']:.0f} s of training at {summary['images_per_second']:,.0f} images/s")
    return f"Done: {', '.join(parts)}. Run folder: {run_dir}"
