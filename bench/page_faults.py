"""Training steps on the CPU with glibc's default malloc against memory kept for reuse (keep_freed_memory).

A step of the `fast` recipe allocates and frees gigabytes of activations. By
default glibc maps each large block fresh and unmaps it when freed, so every
step faults all its pages in again and the kernel zeroes them. Each variant runs
in its own process (mallopt is process-wide): a warm-up step, then timed steps of
fastresnet8 at the recipe's batch size with Muon, reporting wall seconds, user
and system CPU seconds and minor page faults per step.

    python bench/page_faults.py [--batch-size 2000] [--steps 3] [--threads 2]

The last line is `RESULT ratio=<kept images/s over default> ...`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

STEPS = """
import json, resource, sys, time
import torch, torch.nn.functional as F
from resnet_cifar.config import resolve
from resnet_cifar.models import create_model
from resnet_cifar.recipes import recipe_settings
from resnet_cifar.train.hardware import keep_freed_memory
from resnet_cifar.train.optim import build_optimizer

mode, batch, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if mode == "kept":
    keep_freed_memory()
torch.set_num_threads(threads)
torch.manual_seed(0)
config = resolve(recipe_settings("fast"), {}, {})
model = create_model(config.model).to(memory_format=torch.channels_last)
model.conv1.weight.requires_grad_(False)
optimizer = build_optimizer(model, config)
x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
y = torch.randint(0, 10, (batch,))

def step():
    loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

step()
before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    step()
wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"images_per_s": batch * steps / wall, "wall_s": wall / steps,
                  "user_s": (after.ru_utime - before.ru_utime) / steps, "sys_s": (after.ru_stime - before.ru_stime) / steps,
                  "faults": (after.ru_minflt - before.ru_minflt) / steps}))
"""


def measure(mode: str, args: argparse.Namespace) -> dict:
    done = subprocess.run([sys.executable, "-c", STEPS, mode, str(args.batch_size), str(args.steps), str(args.threads)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    results = {mode: measure(mode, args) for mode in ("default", "kept")}
    print(f"{'malloc':>8} {'images/s':>9} {'s/step':>7} {'user s':>7} {'sys s':>6} {'page faults/step':>17}")
    for mode, r in results.items():
        print(f"{mode:>8} {r['images_per_s']:>9.1f} {r['wall_s']:>7.2f} {r['user_s']:>7.2f} {r['sys_s']:>6.2f} {r['faults']:>17,.0f}")
    default, kept = results["default"], results["kept"]
    print(f"RESULT ratio={kept['images_per_s'] / default['images_per_s']:.3f} kept_img_s={kept['images_per_s']:.1f} "
          f"default_img_s={default['images_per_s']:.1f} default_sys_s={default['sys_s']:.2f} kept_sys_s={kept['sys_s']:.2f} "
          f"default_faults={default['faults']:.0f} kept_faults={kept['faults']:.0f} batch={args.batch_size} threads={args.threads}")


if __name__ == "__main__":
    main()
