"""Machine settings: the device a flag names, the precision, and memory that is reused rather than faulted in."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

import resnet_cifar
from resnet_cifar.train.hardware import amp_dtype, configure
from resnet_cifar.world import resolve_device

# A training step of one convolution over 38 MB activations, five times; prints the page faults of the last.
# Kept memory settles within four steps (the heap sometimes still grows in the third, depending on its layout).
# The activations must exceed 32 MiB: below that glibc's default raises its mmap threshold after the first
# free and sometimes serves the next steps from the heap, which made the default case fault 0 pages in 1 run of 5.
FAULTS_OF_A_STEP = """
import resource, sys, torch
from resnet_cifar.train.hardware import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
conv = torch.nn.Conv2d(16, 16, 3, padding=1)
x = torch.randn(64, 16, 96, 96)
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.nn.functional.gelu(conv(x)).sum().backward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_each_step_reuses_the_memory_of_the_last_instead_of_faulting_it_in_again():
    """By default glibc hands the step's large activations back to the kernel when they are freed,
    so the next step faults thousands of pages in again (the kernel zeroing each); kept, none."""
    faults = {}
    for mode in ("default", "keep"):
        done = subprocess.run([sys.executable, "-c", FAULTS_OF_A_STEP, mode], capture_output=True, text=True, check=True)
        faults[mode] = int(done.stdout.split()[-1])
    assert faults["default"] > 4_000  # 73,736 in each of 5 runs when written
    assert faults["keep"] < 200  # 0 in each of 5 runs when written


def test_a_device_that_is_not_there_is_a_clear_error():
    with pytest.raises(resnet_cifar.UserError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(resnet_cifar.UserError, match="use --device cpu"):
            resolve_device("cuda")


def test_mixed_precision_is_off_on_the_cpu_unless_asked_for():
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(resnet_cifar.UserError, match="--amp fp16 needs a CUDA GPU"):
        amp_dtype("fp16", cpu)


def test_plain_cuda_keeps_the_current_gpu_and_a_numbered_one_is_selected(monkeypatch):
    """`--device cuda` crashed every CUDA run: torch.cuda.set_device refuses a device without an index."""
    selected = []

    def set_device(device):
        if device.index is None:
            raise ValueError("Expected a torch.device with a specified index or an integer")
        selected.append(device.index)

    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    configure(torch.device("cuda"), seed=0, deterministic=False)
    configure(torch.device("cuda", 1), seed=0, deterministic=False)
    assert selected == [1]
