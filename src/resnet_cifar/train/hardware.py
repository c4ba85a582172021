"""Device, precision, threads and reproducibility: the settings that depend on the machine."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import random

import numpy as np
import torch

from resnet_cifar.choices import AMP_MODES
from resnet_cifar.errors import UserError


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for float32.

    `auto` is bf16 on a CUDA GPU that has it (as fast as fp16 and needs no loss
    scaling), fp16 on older GPUs, and float32 on the CPU: bf16 there is only
    faster with AMX (Intel Xeon 4th generation and later); on AVX2 it was 3x slower.
    """
    if setting not in AMP_MODES:
        raise ValueError(f"Unknown mixed precision {setting!r}; choose one of: {', '.join(AMP_MODES)}.")
    if setting == "off":
        return None
    if setting == "fp16":
        if device.type != "cuda":
            raise UserError("--amp fp16 needs a CUDA GPU; on the CPU use --amp bf16 or --amp off.")
        return torch.float16
    if setting == "bf16":
        return torch.bfloat16
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_threads() -> int:
    """Every core this process may use, unless OMP_NUM_THREADS says otherwise.

    On a machine shared with other busy processes, fewer threads can be many
    times faster: OpenMP threads spin while they wait for a core.
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel; False where it is not glibc.

    A training step on the CPU allocates and frees the same few hundred MB of
    activations every step. By default glibc serves blocks that large with mmap
    and unmaps them when freed, so every step faults all those pages back in and
    the kernel zeroes them: a fifth of the CPU time of a `fast` step on a 2-core
    machine went to the kernel. Served from the heap and kept there, the memory
    is reused as is; the process keeps its peak size, which it reaches anyway.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt): nothing to tune
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def configure(device: torch.device, seed: int, deterministic: bool) -> None:
    """Seed every generator, use every core the process may run on, and pick fast or reproducible kernels."""
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
        keep_freed_memory()
    elif device.index is not None:  # plain `cuda` is already the current GPU; set_device refuses it
        torch.cuda.set_device(device)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting to be deterministic; it must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports torch._inductor: seconds
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
