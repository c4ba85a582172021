"""Which process this is among how many, and its device: all a run needs to know of its surroundings;
and the device `--device` names, which evaluate and predict resolve too.

A single process is rank 0 of 1, where every collective here is a no-op. Under
torchrun `resnet_cifar.train.distributed.process_group` makes the World of each
process, and it is passed to whatever needs it (the loaders' shares, the engine's
reductions, evaluation's sums), never read from global state.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from resnet_cifar.errors import UserError


def resolve_device(name: str) -> torch.device:
    """`auto` is the first GPU when CUDA works, else the CPU; a GPU that is not there is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise UserError(f"Unknown device {name!r} (--device); use auto, cpu, cuda or cuda:N.") from error
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"Device {name!r} (--device) is not supported; use auto, cpu, cuda or cuda:N.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} asks for CUDA, but PyTorch sees no CUDA GPU; use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0.")
    return device


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that talks to the user and writes the run folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def per_process_batch(self, batch_size: int) -> int:
        """This process's share of the global batch `batch_size`."""
        if batch_size % self.size:
            raise UserError(f"--batch-size {batch_size} is the global batch and must split evenly over {self.size} "
                            f"processes; pass a multiple of {self.size}.")
        return batch_size // self.size

    def barrier(self) -> None:
        """Wait until every rank gets here, e.g. until rank 0 has written a file the others read."""
        if self.distributed:
            dist.barrier()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over all ranks, in place; every rank must call it at the same point."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank."""
        if not self.distributed:
            return flag
        return self.sum_(torch.tensor([float(flag)], device=self.device)).item() > 0

    def from_main(self, value: str) -> str:
        """Rank 0's `value` on every rank."""
        if not self.distributed:
            return value
        values = [value]
        dist.broadcast_object_list(values, src=0)
        return values[0]
