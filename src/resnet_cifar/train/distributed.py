"""Training on several processes under torchrun: joining them, and the wrappers that keep them in step.

A single-process run is rank 0 of 1 (see `World`, which also holds the few
collectives training needs). Under torchrun (WORLD_SIZE > 1) every process trains on its own share of each
epoch (the Loader's rank/world_size) on its own device, cuda:LOCAL_RANK or the
CPU, and DistributedDataParallel averages the gradients, so all ranks hold the
same weights. Only rank 0 talks to the user and the disk: everything that
writes asks `world.is_main`.

`--batch-size` is the global batch: each rank takes batch_size / world_size
images per step. So a recipe means the same optimisation on any number of
processes, and a checkpoint resumes on any number of processes at the same
batch of the same epoch.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from resnet_cifar.errors import UserError
from resnet_cifar.world import World, resolve_device


def launched_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun), known before the process group exists."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_device(name: str) -> torch.device:
    """The device of this process: `--device` as resolved, but each rank of a CUDA job gets its own cuda:LOCAL_RANK."""
    device = resolve_device(name)
    if launched_world_size() == 1 or device.type != "cuda":
        return device
    if device.index is not None:
        raise UserError(f"--device {name} names one GPU, but under torchrun every process takes the GPU of its "
                        "LOCAL_RANK; pass --device cuda or --device auto.")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if local_rank >= torch.cuda.device_count():
        raise UserError(f"torchrun started process {local_rank} on a node with {torch.cuda.device_count()} GPU(s); "
                        "pass --nproc-per-node at most the number of GPUs.")
    return torch.device("cuda", local_rank)


@contextmanager
def process_group(device: torch.device, timeout_s: float) -> Iterator[World]:
    """Join the other processes of a torchrun job for the duration of the block; yields this process's World
    (rank 0 of 1 without torchrun).

    NCCL for GPUs, gloo for the CPU. `timeout_s` bounds every wait on another
    process, so a rank that hangs or never arrives ends the job with an error
    instead of stalling it forever.
    """
    if launched_world_size() == 1:
        yield World(device=device)
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    except dist.DistError as error:  # the store timed out or could not be reached
        raise UserError(f"Could not join the other {launched_world_size() - 1} process(es) of this torchrun job within "
                        f"--dist-timeout {timeout_s:g} s ({str(error).splitlines()[0]}); check that every node "
                        "was started with the same --rdzv-endpoint and --nnodes.") from error
    world = World(dist.get_rank(), dist.get_world_size(), device)
    if not world.is_main:  # rank 0 gives the same warnings about the data; errors still come from every rank
        logging.getLogger("resnet_cifar").setLevel(logging.ERROR)
    try:
        yield world
    finally:
        dist.destroy_process_group()


def sync_batch_norm(model: nn.Module, world: World) -> nn.Module:
    """`model` with every BatchNorm2d normalising over the global batch (all ranks' images together).

    On GPUs that is PyTorch's SyncBatchNorm; it does not run on the CPU, where
    CPUSyncBatchNorm does the same. The state_dict keys stay those of BatchNorm2d.
    """
    if world.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = CPUSyncBatchNorm(world, child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats)
            synced.load_state_dict(child.state_dict())
            if child.affine:
                synced.weight.requires_grad_(child.weight.requires_grad)
                synced.bias.requires_grad_(child.bias.requires_grad)
            setattr(model, name, synced.to(child.weight.device if child.affine else world.device))
        else:
            sync_batch_norm(child, world)
    return model


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, for the CPU (gloo).

    Each rank computes its batch's mean and variance (two-pass, as accurate as
    BatchNorm's own); one differentiable all-reduce shares them, and they are
    combined into the global batch's mean and variance (Chan et al.'s parallel
    formula). The gradient flows back through the same all-reduce, so training
    matches one process with the whole batch.
    """

    def __init__(self, world: World, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.world = world

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank, size = self.world.rank, self.world.size
        if not self.training or size == 1:
            return super().forward(x)
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        count = x.new_full((1,), x.numel() // x.size(1))
        mine = torch.cat([count, mean, var])[None]
        everyone = _SumOverRanks.apply(F.pad(mine, (0, 0, rank, size - 1 - rank)))  # [world, 1 + 2C]
        counts, means, variances = everyone[:, :1], everyone[:, 1:1 + x.size(1)], everyone[:, 1 + x.size(1):]
        total = counts.sum()
        mean = (counts * means).sum(0) / total
        var = (counts * (variances + (means - mean) ** 2)).sum(0) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * total / (total - 1), momentum)
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over all ranks; its gradient is the sum of all ranks' gradients, as each rank's
    statistics enter every rank's loss."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def data_parallel(model: nn.Module, world: World, *, params_may_freeze: bool = False) -> nn.Module:
    """The DistributedDataParallel wrapper that averages gradients over the ranks (the model itself alone).

    `params_may_freeze`: a parameter will stop taking part mid-run (a recipe hook
    freezes it), so DDP must look for parameters without gradients after each
    forward pass instead of waiting for them forever.
    """
    if not world.distributed:
        return model
    device = world.device
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                   find_unused_parameters=params_may_freeze)
