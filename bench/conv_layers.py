"""Speed of fastresnet8's convolutions on this machine, channels_last against NCHW.

First profiles two training steps of the whole network (`torch.profiler`) and
prints the share of the step time each operator takes. Then times forward and
backward of each 3x3 convolution of the `fast` network at its
real shape (batch 250 by default), in both memory layouts, alternating, and
reports GFLOP/s per layer. It says how close the CPU engine runs to the
machine's matrix-multiply speed, which is also timed (`torch.mm`, 4096^3), and
so how much an engine change could still gain.

    OMP_NUM_THREADS=2 python bench/conv_layers.py [--batch 250] [--repeats 3] [--threads 2]

The last line is `RESULT ratio=... cl_gflops=... nchw_gflops=... mm_gflops=...`: ratio is
the geometric mean over layers of channels_last's speed over NCHW's.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from resnet_cifar.models import create_model


def conv_shapes() -> list[tuple[str, int, int, int]]:
    """(name, in channels, out channels, input side) of each 3x3 convolution of fastresnet8 on 32x32 images."""
    model = create_model("fastresnet8")
    convs = {name: module for name, module in model.named_modules()
             if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3)}
    sides: dict[nn.Module, int] = {}

    def record(module: nn.Module, inputs: tuple[torch.Tensor], _out: torch.Tensor) -> None:
        sides[module] = inputs[0].shape[-1]

    hooks = [module.register_forward_hook(record) for module in convs.values()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    return [(name, conv.in_channels, conv.out_channels, sides[conv]) for name, conv in convs.items()]


def seconds(step, repeats: int) -> float:
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def conv_step(c_in: int, c_out: int, side: int, batch: int, layout: torch.memory_format):
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False).to(memory_format=layout)
    x = torch.randn(batch, c_in, side, side).contiguous(memory_format=layout).requires_grad_()

    def step() -> None:
        out = conv(x)
        out.backward(torch.ones_like(out))
    return step


def profile_step(batch: int) -> None:
    """Print the operators that take the most of a fastresnet8 training step (forward and backward)."""
    model = create_model("fastresnet8").to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        F.cross_entropy(model(x), y).backward()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print("share of a training step's time, by operator:")
    for event in events[:8]:
        print(f"  {event.key:<42} {event.self_cpu_time_total / total:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile_step(args.batch)

    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    mm = 2 * 4096**3 / seconds(lambda: a @ b, args.repeats) / 1e9
    print(f"torch.mm 4096^3: {mm:.0f} GFLOP/s")
    print(f"{'layer':<14} {'shape':<18} {'channels_last':>14} {'NCHW':>8}  (GFLOP/s, forward and backward)")
    speeds = {"cl": [], "nchw": []}
    for name, c_in, c_out, side in conv_shapes():
        flops = 3 * 2 * c_in * c_out * 9 * side * side * args.batch  # forward, input and weight gradients
        row = {}
        for key, layout in (("cl", torch.channels_last), ("nchw", torch.contiguous_format)):
            row[key] = flops / seconds(conv_step(c_in, c_out, side, args.batch, layout), args.repeats) / 1e9
            speeds[key].append(row[key])
        print(f"{name:<14} {f'{c_in}->{c_out} @{side}x{side}':<18} {row['cl']:>14.0f} {row['nchw']:>8.0f}")
    ratio = statistics.geometric_mean(c / n for c, n in zip(speeds["cl"], speeds["nchw"]))
    print(f"RESULT ratio={ratio:.3f} cl_gflops={min(speeds['cl']):.0f}-{max(speeds['cl']):.0f} "
          f"nchw_gflops={min(speeds['nchw']):.0f}-{max(speeds['nchw']):.0f} mm_gflops={mm:.0f}")


if __name__ == "__main__":
    main()
