"""Which test-time views help: finished runs' final weights scored under several TTA schemes.

Each view (the validation image shifted by -1, 0 or +1 pixel in each direction,
reflect-padded, with and without its mirror image) is run once per checkpoint;
the schemes are weighted averages of those logits, so eight schemes cost the
18 forward passes of 5,000 images once per run. The training is untouched: a
better scheme would raise a recipe's accuracy at no training time at all.

    OMP_NUM_THREADS=2 python bench/tta_variants.py /tmp/crop/seed0 /tmp/crop/seed1 /tmp/crop/seed2

Each run folder's checkpoints/last.pt is scored on the validation split it
held out (same seed, same val_split). The last line is
`RESULT best=<scheme> gain=<its mean minus the current flip-translate's, points> current=... runs=N`.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from resnet_cifar.checkpoint import build_model, read_checkpoint
from resnet_cifar.data import Loader, load_dataset

SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
# A view is ((dy, dx), mirrored); a scheme maps views to weights.
CENTRE = {((0, 0), False): 0.5, ((0, 0), True): 0.5}
SCHEMES: dict[str, dict] = {
    "none": {((0, 0), False): 1.0},
    "flip": CENTRE,
    "flip-translate (current, 4 views)": {((0, 0), False): 0.25, ((0, 0), True): 0.25,
                                          ((-1, -1), False): 0.25, ((1, 1), True): 0.25},
    "airbench's 6 views": {**{v: 0.25 for v in CENTRE},
                           **{((s, s), m): 0.125 for s in (-1, 1) for m in (False, True)}},
    "both diagonals, 10 views": {**{v: 0.25 for v in CENTRE},
                                 **{((a, b), m): 0.0625 for a in (-1, 1) for b in (-1, 1) for m in (False, True)}},
    "four neighbours, 10 views": {**{v: 0.25 for v in CENTRE},
                                  **{(s, m): 0.0625 for s in ((0, 1), (0, -1), (1, 0), (-1, 0)) for m in (False, True)}},
    "all 18 views, equal": {(s, m): 1 / 18 for s in SHIFTS for m in (False, True)},
    "all 18 views, centre pair half": {**{v: 0.25 for v in CENTRE},
                                       **{(s, m): 0.5 / 16 for s in SHIFTS if s != (0, 0) for m in (False, True)}},
}
CURRENT = "flip-translate (current, 4 views)"


@torch.no_grad()
def view_logits(run: Path) -> tuple[dict, torch.Tensor]:
    """Logits of every view of the run's validation images, and their labels."""
    checkpoint = read_checkpoint(run / "checkpoints" / "last.pt")
    config = checkpoint["config"]
    model = build_model(checkpoint).eval().to(memory_format=torch.channels_last)
    pre = model.preprocessing
    data = load_dataset(config["dataset"], config["data_dir"], splits=("val",), val_split=config["val_split"],
                        seed=config["seed"], image_size=pre["image_size"], labels=config["labels"])
    loader = Loader(data.val, batch_size=500, device="cpu", mean=pre["mean"], std=pre["std"], train=False)
    logits: dict = {(s, m): [] for s in SHIFTS for m in (False, True)}
    labels = []
    for x, y in loader.epoch(0):
        labels.append(y)
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        height, width = x.shape[-2:]
        for dy, dx in SHIFTS:
            view = padded[:, :, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width].contiguous(memory_format=torch.channels_last)
            logits[((dy, dx), False)].append(model(view))
            logits[((dy, dx), True)].append(model(view.flip(3)))
    return {k: torch.cat(v) for k, v in logits.items()}, torch.cat(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished training run folders")
    args = parser.parse_args()
    scored = [view_logits(run) for run in args.runs]
    means = {}
    print(f"{'scheme':36s} " + " ".join(f"{run.name:>8s}" for run in args.runs) + "     mean")
    for name, weights in SCHEMES.items():
        accs = [100 * float((sum(w * logits[v] for v, w in weights.items()).argmax(1) == y).float().mean())
                for logits, y in scored]
        means[name] = statistics.mean(accs)
        print(f"{name:36s} " + " ".join(f"{a:7.2f}%" for a in accs) + f" {means[name]:7.3f}%")
    best = max(means, key=means.get)
    print(f"RESULT best={best.split(' (')[0].replace(' ', '_').replace(',', '')} gain={means[best] - means[CURRENT]:+.3f} "
          f"current={means[CURRENT]:.3f} runs={len(scored)}")


if __name__ == "__main__":
    main()
