"""Final validation accuracy of variants of the `fast` recipe, compared seed by seed with the recipe itself.

Each seed draws its own 5,000-image validation split, and the spread between
splits (about 0.4 points) is larger than most recipe changes. A variant is
therefore trained on the same seeds as the recipe and judged by its paired
differences: on the same seed both validate on the same images, and the
standard error of the mean difference is often a third of the spread of either.
A recipe change moves the benchmark only when its mean difference stands well
clear of that error; confirm it with `bench/time_to_accuracy.py` afterwards.

Every run goes through `resnet-cifar train --preset fast` in this one process, seed
by seed in the outer loop, so a run stopped early still holds whole seeds of
every variant. A GPU makes this cheap: one run of `fast` trains in about 2 s on
an H200, 8 s with start-up and validation (docs/benchmarks.md). Each --variant is NAME=FLAGS, the flags of
`resnet-cifar train` that it changes; the recipe itself is always trained, as `fast`.

    python bench/recipe_variants.py --variant mm0.7="--muon-momentum 0.7" \\
        --variant e14="--epochs 14 --early-crop-epochs 6" [--seeds 0 1 2 3 4 5] [--device cuda]

The last line is `RESULT <variant>_diff=... <variant>_se=... ... seeds=N`, the mean
paired difference in accuracy (a fraction) against the recipe and its standard error.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
from pathlib import Path

from resnet_cifar.cli import main as cli

RECIPE = "fast"


def variant(text: str) -> tuple[str, list[str]]:
    name, _, flags = text.partition("=")
    if not name or not flags or name == RECIPE:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: write NAME=\"FLAGS\", a new name and the flags it changes")
    return name, shlex.split(flags)


def final_accuracy(run_dir: Path) -> float:
    return json.loads((run_dir / "summary.json").read_text())["final_val_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", type=variant, action="append", required=True, dest="variants")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/cifar-jpeg"))
    parser.add_argument("--val-split", type=int, default=5000)
    parser.add_argument("--output", type=Path, default=Path("/tmp/recipe-variants"))
    args = parser.parse_args()

    variants = {RECIPE: [], **dict(args.variants)}
    accuracy: dict[str, dict[int, float]] = {name: {} for name in variants}
    for seed in args.seeds:
        for name, flags in variants.items():
            run_dir = args.output / f"{name}_seed{seed}"
            code = cli(["train", "--preset", "fast", "--data-dir", str(args.data_dir), "--val-split", str(args.val_split),
                        "--seed", str(seed), "--device", args.device, "--output", str(run_dir), "--overwrite", *flags])
            if code != 0:  # also a run stopped by a signal, which the trainer ends cleanly
                raise SystemExit(f"{name}, seed {seed}: training ended with exit code {code}")
            accuracy[name][seed] = final_accuracy(run_dir)
            print(f"VARIANT {name} seed={seed} val_acc={accuracy[name][seed]:.4f}", flush=True)

    print(f"\n{'variant':<12} {'mean':>7} {'spread':>7} {'paired diff':>12} {'its error':>10}")
    result = []
    for name, by_seed in accuracy.items():
        values = list(by_seed.values())
        diffs = [by_seed[seed] - accuracy[RECIPE][seed] for seed in args.seeds]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        error = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
        print(f"{name:<12} {statistics.mean(values):>7.2%} {spread:>7.2%} {statistics.mean(diffs):>+12.2%} {error:>10.2%}")
        if name != RECIPE:
            result.append(f"{name}_diff={statistics.mean(diffs):+.4f} {name}_se={error:.4f}")
    print(f"RESULT {' '.join(result)} {RECIPE}_mean={statistics.mean(accuracy[RECIPE].values()):.4f} seeds={len(args.seeds)}")


if __name__ == "__main__":
    main()
