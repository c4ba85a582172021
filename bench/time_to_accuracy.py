"""Time, epochs and training FLOPs the `fast` recipe needs to reach 80/85/88/90/91% validation accuracy.

Trains `resnet-cifar train --preset fast` on CIFAR-10's training split, 45,000
images to train and 5,000 held out (the validation split; no test images are
involved), once per seed, and reads each run's metrics.csv. For every
threshold it reports the first epoch whose validation accuracy reaches it, the
training seconds up to the end of that epoch (the figure speed records quote),
the wall time including the per-epoch validations (what a user waits for), and
the training FLOPs spent by then.

FLOPs are counted by torch's FlopCounterMode on one real training step (forward,
backward and the optimizer's step; resnet_cifar.train.flops) and multiplied by
the images trained, epoch by epoch as the stem's bias freezes; the per-epoch validation
(4 test-time views of 5,000 images) is counted separately, as it only serves
the measurement. A multiply-add counts 2 FLOPs.

Data: --data-dir holds cifar-10-batches-py/; when it does not, it is made from
--archive (../shared/data's JPEG re-encoding of the training split) with the
converter next to it. --epochs N trains a longer or shorter run of the same
schedule: warmup, the stem bias's epochs and the early crops keep their
fraction of the run.
--reuse reads seeds that finished in --output earlier rather than training them
again, and resumes a seed whose run was interrupted, so the seeds of a slow
machine can be run one session at a time; a seed trained with other settings
than this run's is refused. Without --reuse a seed's folder is started afresh.

    python bench/time_to_accuracy.py [--seeds 0 1 2] [--epochs 10] [--device auto] [--data-dir /tmp/cifar-jpeg]

The last line is `RESULT final_acc_mean=... final_acc_std=... t91_train_s_mean=... ...`; a
threshold not reached by every seed is reported as `reached=k/n` and `nan`.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from resnet_cifar.cli import main as cli
from resnet_cifar.config import TrainConfig, read_yaml, resolve
from resnet_cifar.models import create_model
from resnet_cifar.recipes import recipe_settings
from resnet_cifar.train.flops import epoch_flops_per_image

THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.91)
ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-train-jpeg.tar.gz"
# Settings a reused seed may have had otherwise: the run's own.
OUTSIDE_THE_RECIPE = ("preset", "seed", "data_dir", "download", "device", "evaluate_test", "compile")
# Settings counted in epochs, which --epochs scales with the run's length; early crops last whole epochs.
EPOCH_COUNTED = {"warmup_epochs": float, "stem_bias_epochs": float, "early_crop_epochs": int}
TTA_VIEWS = 4  # flip-translate: the image, its mirror and two shifted views


def forward_flops_per_image(model_name: str) -> float:
    model = create_model(model_name).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    return counter.get_total_flops() / 2


def ensure_data(data_dir: Path, archive: Path) -> None:
    if (data_dir / "cifar-10-batches-py").is_dir():
        return
    converter = archive.parent / "cifar10_jpeg_to_batches.py"
    print(f"Converting {archive} into {data_dir} ...", flush=True)
    subprocess.run([sys.executable, str(converter), str(archive), str(data_dir)], check=True)


def run_seed(seed: int, args: argparse.Namespace, out: Path) -> list[dict]:
    """Train one run (or, with --reuse, take or finish the one in `out`) and return its metrics rows
    with cumulative seconds."""
    run_dir = out / f"seed{seed}"
    if args.reuse and (run_dir / "config.yaml").is_file():
        trained = dataclasses.asdict(TrainConfig(**read_yaml(run_dir / "config.yaml")))  # defaults for newer settings
        different = {key for key, value in settings(args).items() if trained[key] != value}
        if different:
            raise SystemExit(f"{run_dir} was trained with other {', '.join(sorted(different))} than the fast recipe "
                             f"now has; point --output at a new folder.")
        if (run_dir / "summary.json").is_file():
            print(f"Reusing the finished run {run_dir}", flush=True)
            return read_rows(run_dir)
        if (run_dir / "checkpoints" / "last.pt").is_file():
            print(f"Finishing the interrupted run {run_dir}", flush=True)
            return train_seed(["train", "--resume", str(run_dir), "--data-dir", str(args.data_dir),
                               "--device", args.device], seed, run_dir)
    flags = ["train", "--preset", "fast", "--data-dir", str(args.data_dir), "--val-split", "5000",
             "--seed", str(seed), "--device", args.device, "--output", str(run_dir), "--overwrite"]
    for key, value in rescaled(args.epochs).items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    if args.compile:
        flags.append("--compile")
    return train_seed(flags, seed, run_dir)


def train_seed(flags: list[str], seed: int, run_dir: Path) -> list[dict]:
    code = cli(flags)
    if code != 0:
        raise SystemExit(f"training seed {seed} failed with exit code {code}")
    return read_rows(run_dir)


def rescaled(epochs: int | None) -> dict:
    """The settings --epochs changes: the length, and each setting counted in epochs at the same
    fraction of the run, so that a quick check keeps the recipe's shape."""
    if epochs is None:
        return {}
    recipe = resolve(recipe_settings("fast"), {}, {})
    changed: dict = {"epochs": epochs}
    for key, kind in EPOCH_COUNTED.items():
        value = getattr(recipe, key)
        if value:
            share = value / recipe.epochs * epochs
            changed[key] = round(share) if kind is int else round(share, 4)
    return changed


def recipe_config(args: argparse.Namespace) -> TrainConfig:
    """The fast recipe as this benchmark trains it."""
    return resolve(recipe_settings("fast"), {}, rescaled(args.epochs))


def settings(args: argparse.Namespace) -> dict:
    """Every setting that shapes the trained network, as this run trains it (what a reused seed must
    have been trained with); where the data lives, the device and the seed may differ."""
    config = recipe_config(args)
    return {key: value for key, value in dataclasses.asdict(config).items() if key not in OUTSIDE_THE_RECIPE}


def read_rows(run_dir: Path) -> list[dict]:
    """The run's metrics.csv rows, each with the cumulative training and wall seconds up to its end."""
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    trained = elapsed = 0.0
    for row in rows:
        trained += float(row["train_seconds"])
        elapsed += float(row["seconds"])
        row["trained"], row["elapsed"] = trained, elapsed
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="a longer or shorter run of the same schedule (default: the recipe's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/cifar-jpeg"))
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--output", type=Path, default=Path("/tmp/time-to-accuracy"))
    parser.add_argument("--reuse", action="store_true",
                        help="take seeds already finished in --output from there instead of training them again")
    args = parser.parse_args()
    ensure_data(args.data_dir, args.archive)

    config = recipe_config(args)
    train_images = 45_000 // config.batch_size * config.batch_size  # full batches only
    epoch_flops = [flops * train_images for flops in epoch_flops_per_image(config)]
    val_flops = forward_flops_per_image(config.model) * TTA_VIEWS * 5000
    started = time.time()
    runs = [run_seed(seed, args, args.output) for seed in args.seeds]

    print(f"\nfast recipe, seeds {args.seeds}: {sum(epoch_flops) / 1e15:.4f} PFLOPs of training in "
          f"{config.epochs} epochs ({epoch_flops[0] / 1e15:.4f} in the first, {epoch_flops[-1] / 1e15:.4f} in the last), "
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
          f"train_pflops={sum(epoch_flops[:epochs_run]) / 1e15:.4f} {details} seeds={len(runs)}")


if __name__ == "__main__":
    main()
