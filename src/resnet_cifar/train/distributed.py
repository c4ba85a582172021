"""Which process this is, so that only one of several writes files and prints.

A single-process run is rank 0 of 1. Under torchrun every process trains on its
own share of each epoch (the Loader's rank/world_size) and only rank 0 talks to
the user and the disk: everything that writes goes through is_main_process().
"""
from __future__ import annotations

import torch.distributed as dist


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return rank() == 0
