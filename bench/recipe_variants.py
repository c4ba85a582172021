"""Final validation accuracy of variants of a recipe, compared seed by seed with the recipe itself.

Each seed draws its own 5,000-image validation split, and the spread between
splits (about 0.4 points for `fast`) is larger than most recipe changes. A
variant is therefore trained on the same seeds as the recipe and judged by its
paired differences: on the same seed both validate on the same images, and the
standard error of the mean difference is often a third of the spread of either.
A recipe change moves the benchmark only when its mean difference stands well
clear of that error; confirm it with `bench/time_to_accuracy.py` afterwards.

Every run goes through `resnet-cifar train --preset NAME` (default `fast`) in this
one process, seed by seed in the outer loop, so a run stopped early still holds
whole seeds of every variant. A GPU makes this cheap: `fast` trains in about 2 s
on an H200 (docs/benchmarks.md). Each --variant is NAME=FLAGS, the flags of
`resnet-cifar train` that it changes; the recipe itself is always trained, under
its own name. --epochs sets every run's length; the default, one seed of one epoch
and no variant, is a quick check (in so short a run the recipe's epoch-counted
phases, such as fast's five cropped epochs, fill it). A measurement passes the
recipe's own length:

    python bench/recipe_variants.py --preset fast --epochs 12 --seeds 0 1 2 3 4 5 --data-dir DIR --device cuda \\
        --variant mm0.7="--muon-momentum 0.7" --variant e14="--epochs 14 --early-crop-epochs 6"

The last line is `RESULT <variant>_diff=... <variant>_se=... ... <recipe>_mean=... seeds=N`, the mean
paired difference in accuracy (a fraction) against the recipe and its standard error.
"""
from __future__ import annotations

import argparse
import shlex
import statistics
from pathlib import Path

from resnet_cifar.cli import main as cli
from resnet_cifar.runs.layout import RunPaths
from resnet_cifar.runs.reader import read_json


def variant(text: str) -> tuple[str, list[str]]:
    name, _, flags = text.partition("=")
    if not name or not flags:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: write NAME=\"FLAGS\", a name and the flags it changes")
    return name, shlex.split(flags)


def final_accuracy(run_dir: Path) -> float:
    return read_json(RunPaths(run_dir).summary)["final_val_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast", help="the recipe the variants change (default: fast)")
    parser.add_argument("--variant", type=variant, action="append", default=[], dest="variants",
                        help='NAME="FLAGS": a variant and the train flags it changes (repeatable)')
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=1, help="every run's length (default 1, a quick check; pass "
                        "the recipe's own to measure)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--val-split", type=int, default=5000)
    parser.add_argument("--output", type=Path, default=Path("runs/bench-recipe-variants"),
                        help="where each run's folder goes (OUTPUT/NAME_seedN)")
    args = parser.parse_args()

    recipe = args.preset
    if recipe in dict(args.variants):
        parser.error(f"--variant {recipe}=...: that name is the recipe's own; give the variant another")
    variants = {recipe: [], **dict(args.variants)}
    accuracy: dict[str, dict[int, float]] = {name: {} for name in variants}
    for seed in args.seeds:
        for name, flags in variants.items():
            run_dir = args.output / f"{name}_seed{seed}"
            code = cli(["train", "--preset", recipe, "--epochs", str(args.epochs), "--data-dir", str(args.data_dir),
                        "--val-split", str(args.val_split), "--seed", str(seed), "--device", args.device,
                        "--output", str(run_dir), "--overwrite", *flags])
            if code != 0:  # also a run stopped by a signal, which the trainer ends cleanly
                raise SystemExit(f"{name}, seed {seed}: training ended with exit code {code}")
            accuracy[name][seed] = final_accuracy(run_dir)
            print(f"VARIANT {name} seed={seed} val_acc={accuracy[name][seed]:.4f}", flush=True)

    print(f"\n{'variant':<12} {'mean':>7} {'spread':>7} {'paired diff':>12} {'its error':>10}")
    result = []
    for name, by_seed in accuracy.items():
        values = list(by_seed.values())
        diffs = [by_seed[seed] - accuracy[recipe][seed] for seed in args.seeds]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        error = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
        print(f"{name:<12} {statistics.mean(values):>7.2%} {spread:>7.2%} {statistics.mean(diffs):>+12.2%} "
              f"{error:>10.2%}")
        if name != recipe:
            result.append(f"{name}_diff={statistics.mean(diffs):+.4f} {name}_se={error:.4f}")
    result.append(f"{recipe}_mean={statistics.mean(accuracy[recipe].values()):.4f}")
    print(f"RESULT {' '.join(result)} seeds={len(args.seeds)} epochs={args.epochs}")


if __name__ == "__main__":
    main()
