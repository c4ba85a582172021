"""Time, epochs and training FLOPs a recipe needs to reach 80/85/88/90/91% validation accuracy.

Trains `resnet-cifar train --preset NAME` (default `fast`) on CIFAR-10's training
split, 45,000 images to train and 5,000 held out (the validation split; no test
images are involved), once per seed, and reads each run's metrics.csv. For every
threshold it reports the first epoch whose validation accuracy reaches it, the
training seconds up to the end of that epoch (the figure speed records quote),
the wall time including the per-epoch validations (what a user waits for), and
the training FLOPs spent by then.

FLOPs are counted by torch's FlopCounterMode on the engine's real training step
of the run as build_run builds it (forward, backward and the optimizer's step;
resnet_cifar.train.flops) and multiplied by the images trained, epoch by epoch
as the crops and the frozen stem bias change the cost; the per-epoch validation
(with the recipe's test-time views) is counted separately, as it only serves the
measurement. A multiply-add counts 2 FLOPs.

--data-dir holds CIFAR-10 as `resnet-cifar train --data-dir` takes it (here: the
JPEG copy of the CIFAR-10 training split, converted to the python layout).
--epochs N trains a shorter or longer run of the same schedule: warmup, the stem
bias's epochs and the early crops keep their share of the run (an early-crop
phase lasts at least one epoch). The default, one seed of one epoch, is a quick
check; a measurement passes the recipe's length and three seeds, e.g. for `fast`:

    python bench/time_to_accuracy.py --preset fast --seeds 0 1 2 --epochs 12 --data-dir DIR [--device cpu] [--reuse]

--reuse reads seeds that finished in --output earlier rather than training them
again, and resumes a seed whose run was interrupted, so the seeds of a slow
machine can be run one session at a time; a seed trained with other settings
than this run's is refused. Without --reuse a seed's folder is started afresh.

The last line is `RESULT final_acc_mean=... final_acc_std=... t91_train_s_mean=... ...`; a
threshold not reached by every seed is reported as `reached=k/n` and `nan`.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from resnet_cifar.cli import main as cli
from resnet_cifar.config import TrainConfig, read_yaml, resolve
from resnet_cifar.evaluation import views_per_image
from resnet_cifar.models import create_model
from resnet_cifar.recipes import recipe_settings
from resnet_cifar.runs.layout import GroupPaths, RunPaths
from resnet_cifar.runs.reader import read_metrics
from resnet_cifar.train.flops import TRAIN_IMAGES, epoch_flops_per_image

THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.91)
VAL_IMAGES = 5000
# Settings a reused seed may have had otherwise: the run's own.
OUTSIDE_THE_RECIPE = ("preset", "seed", "data_dir", "download", "device", "evaluate_test", "compile")
# Settings counted in epochs, which --epochs scales with the run's length; early crops last whole epochs.
EPOCH_COUNTED = {"warmup_epochs": float, "stem_bias_epochs": float, "early_crop_epochs": int}


def forward_flops_per_image(config: TrainConfig) -> float:
    """FLOPs of one forward pass of the run's network on one image at the side it sees at validation."""
    model = create_model(config.model, stem=config.stem).eval()
    side = config.input_size or config.image_size
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(2, 3, side, side))
    return counter.get_total_flops() / 2


def run_seed(seed: int, args: argparse.Namespace, out: Path) -> list[dict]:
    """Train one run (or, with --reuse, take or finish the one in `out`) and return its metrics rows
    with cumulative seconds."""
    paths = GroupPaths(out).seed(seed)
    run_dir = paths.root
    if args.reuse and paths.config.is_file():
        trained = dataclasses.asdict(TrainConfig(**read_yaml(paths.config)))  # defaults for newer settings
        different = {key for key, value in settings(args).items() if trained[key] != value}
        if different:
            raise SystemExit(f"{run_dir} was trained with other {', '.join(sorted(different))} than the "
                             f"{args.preset} recipe now has; point --output at a new folder.")
        if paths.summary.is_file():
            print(f"Reusing the finished run {run_dir}", flush=True)
            return read_rows(run_dir)
        if paths.last.is_file():
            print(f"Finishing the interrupted run {run_dir}", flush=True)
            return train_seed(["train", "--resume", str(run_dir), "--data-dir", str(args.data_dir),
                               "--device", args.device], seed, run_dir)
    flags = ["train", "--preset", args.preset, "--data-dir", str(args.data_dir), "--val-split", str(VAL_IMAGES),
             "--seed", str(seed), "--device", args.device, "--output", str(run_dir), "--overwrite"]
    for key, value in rescaled(args.preset, args.epochs).items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    if args.compile:
        flags.append("--compile")
    return train_seed(flags, seed, run_dir)


def train_seed(flags: list[str], seed: int, run_dir: Path) -> list[dict]:
    code = cli(flags)
    if code != 0:
        raise SystemExit(f"training seed {seed} failed with exit code {code}")
    return read_rows(run_dir)


def rescaled(preset: str, epochs: int) -> dict:
    """The settings --epochs changes: the length, and each setting counted in epochs at the same
    share of the run (whole epochs at least one, for the early crops), so a short run keeps the recipe's shape."""
    recipe = resolve(recipe_settings(preset), {}, {})
    changed: dict = {"epochs": epochs}
    for key, kind in EPOCH_COUNTED.items():
        value = getattr(recipe, key)
        if value:
            share = value / recipe.epochs * epochs
            changed[key] = max(1, round(share)) if kind is int else round(share, 4)
    return changed


def recipe_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe as this benchmark trains it."""
    return resolve(recipe_settings(args.preset), {}, rescaled(args.preset, args.epochs))


def settings(args: argparse.Namespace) -> dict:
    """Every setting that shapes the trained network, as this run trains it (what a reused seed must
    have been trained with); where the data lives, the device and the seed may differ."""
    config = recipe_config(args)
    return {key: value for key, value in dataclasses.asdict(config).items() if key not in OUTSIDE_THE_RECIPE}


def read_rows(run_dir: Path) -> list[dict]:
    """The run's metrics rows, each with the cumulative training and wall seconds up to its end."""
    rows = read_metrics(RunPaths(run_dir).metrics)
    trained = elapsed = 0.0
    for row in rows:
        trained += row["train_seconds"]
        elapsed += row["seconds"]
        row["trained"], row["elapsed"] = trained, elapsed
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast", help="the recipe to train (default: fast)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=1, help="the run's length, its schedule scaled to it (default 1, "
                        "a quick check; pass the recipe's own for a measurement)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--output", type=Path, default=Path("runs/bench-time-to-accuracy"),
                        help="where each seed's run folder goes (OUTPUT/seedN)")
    parser.add_argument("--reuse", action="store_true",
                        help="take seeds already finished in --output from there instead of training them again")
    args = parser.parse_args()

    config = recipe_config(args)
    train_images = TRAIN_IMAGES // config.batch_size * config.batch_size  # full batches only
    epoch_flops = [flops * train_images for flops in epoch_flops_per_image(config)]
    val_flops = forward_flops_per_image(config) * views_per_image(config.tta, config.tta_fraction) * VAL_IMAGES
    started = time.time()
    runs = [run_seed(seed, args, args.output) for seed in args.seeds]

    print(f"\n{args.preset} recipe, seeds {args.seeds}: {sum(epoch_flops) / 1e15:.4f} PFLOPs of training in "
          f"{config.epochs} epochs ({epoch_flops[0] / 1e15:.4f} in the first, "
          f"{epoch_flops[-1] / 1e15:.4f} in the last), "
          f"{val_flops / 1e15:.4f} per validation")
    print(f"{'target':>7} {'reached':>8} {'epochs':>7} {'training seconds':>17} {'with validation':>16} {'PFLOPs':>7}")
    result = {}
    for threshold in THRESHOLDS:
        hits = [next((row for row in rows if float(row["val_acc"]) >= threshold), None) for rows in runs]
        reached = [row for row in hits if row is not None]
        key = f"t{round(threshold * 100)}"
        result[f"{key}_reached"] = f"{len(reached)}/{len(runs)}"
        if len(reached) == len(runs):
            epochs = [int(row["epoch"]) for row in reached]
            seconds = [row["trained"] for row in reached]
            result[f"{key}_epochs_mean"] = statistics.mean(epochs)
            result[f"{key}_train_s_mean"] = statistics.mean(seconds)
            result[f"{key}_train_s_std"] = statistics.stdev(seconds) if len(seconds) > 1 else 0.0
            result[f"{key}_wall_s_mean"] = statistics.mean(row["elapsed"] for row in reached)
            result[f"{key}_pflops"] = statistics.mean(sum(epoch_flops[:epoch]) for epoch in epochs) / 1e15
            print(f"{threshold:>7.0%} {len(reached)}/{len(runs):<6} {statistics.mean(epochs):>7.1f} "
                  f"{result[f'{key}_train_s_mean']:>9.0f} +- {result[f'{key}_train_s_std']:<5.0f} "
                  f"{result[f'{key}_wall_s_mean']:>16.0f} {result[f'{key}_pflops']:>7.3f}")
        else:
            result[f"{key}_train_s_mean"] = math.nan
            print(f"{threshold:>7.0%} {len(reached)}/{len(runs):<6} {'-':>7} {'-':>17} {'-':>16} {'-':>7}")
    finals = [float(rows[-1]["val_acc"]) for rows in runs]
    train_seconds = [rows[-1]["trained"] for rows in runs]
    epochs_run = int(runs[0][-1]["epoch"])
    print(f"final validation accuracy per seed: {', '.join(f'{a:.2%}' for a in finals)}; "
          f"training seconds per run (without validation): {', '.join(f'{s:.0f}' for s in train_seconds)}; "
          f"wall time of the whole benchmark {time.time() - started:.0f} s")
    details = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())
    print(f"RESULT final_acc_mean={statistics.mean(finals):.4f} "
          f"final_acc_std={statistics.stdev(finals) if len(finals) > 1 else 0.0:.4f} epochs={epochs_run} "
          f"train_s_mean={statistics.mean(train_seconds):.1f} "
          f"train_pflops={sum(epoch_flops[:epochs_run]) / 1e15:.4f} {details} seeds={len(runs)} preset={args.preset}")


if __name__ == "__main__":
    main()
