"""One training run, from a config (or a checkpoint to resume) to a finished run folder.

The order of things: machine set-up, data, model, optimizer and friends, the
resumed state if any, then epochs of train-validate-save, then the optional
test evaluation and the summary. The test split is read only at the very end
and only when asked, so it can never steer a choice made during training.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_cifar.checkpoint import FORMAT_VERSION, build_model, load_model_state, plain_state_dict, read_checkpoint
from resnet_cifar.config import TrainConfig, train_crop_size
from resnet_cifar.data import Loader, load_dataset
from resnet_cifar.errors import UserError
from resnet_cifar.evaluation import Metrics, evaluate
from resnet_cifar.models import count_parameters, create_model
from resnet_cifar.pretrained import init_from_torchvision
from resnet_cifar.train.distributed import (any_rank, barrier, check_batch_size, data_parallel, is_main_process, process_device,
                                            rank, sync_batch_norm, world_size)
from resnet_cifar.train.ema import EMA
from resnet_cifar.train.engine import Engine, EpochTotals, NonFiniteLoss
from resnet_cifar.train.hardware import amp_dtype, configure
from resnet_cifar.train.interrupt import StopRequest
from resnet_cifar.train.optim import build_optimizer, build_schedule
from resnet_cifar.train.progress import Progress
from resnet_cifar.train.rng import rng_state, set_rng_state
from resnet_cifar.train.run_folder import RunFolder
from resnet_cifar.train.whitening import whiten_stem


@dataclasses.dataclass
class Record:
    """What the run has achieved so far; stored in every checkpoint so a resumed run continues the tally."""

    best_val_acc: float = -1.0
    best_epoch: int = 0
    train_seconds: float = 0.0
    train_images: int = 0


def wrap(model: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """The module that runs forward passes: the model itself, or wrapped in DDP when there are several
    processes, then compiled when asked (compiling the DDP wrapper lets the compiler overlap the gradient sync)."""
    model = data_parallel(model, device, params_may_freeze=config.stem_bias_epochs is not None)
    return torch.compile(model) if config.compile else model


def train(config: TrainConfig, run_dir: Path, *, resume: tuple[Path, dict[str, Any]] | None = None) -> int:
    """Train as `config` says, writing `run_dir`; returns the exit code (non-zero when interrupted)."""
    device = process_device(config.device)
    configure(device, config.seed, config.deterministic)
    if config.download and not is_main_process():
        barrier()  # rank 0 downloads first; the others then find the files (or, on another machine, download too)
    dataset = load_dataset(config.dataset, config.data_dir, splits=("train", "val"), val_split=config.val_split,
                           seed=config.seed, download=config.download, image_size=config.image_size,
                           labels=config.labels)
    if config.download and is_main_process():
        barrier()
    mean = tuple(config.mean or dataset.mean)
    std = tuple(config.std or dataset.std)
    loader_options = dict(batch_size=check_batch_size(config.batch_size), device=device, mean=mean, std=std,
                          input_size=config.input_size, channels_last=config.channels_last, seed=config.seed, rank=rank(), world_size=world_size())
    train_loader = Loader(dataset.train, train=True, crop_padding=config.crop_padding, padding_mode=config.padding_mode,
                          flip=config.flip, cutout=config.cutout, **loader_options)
    val_loader = Loader(dataset.val, train=False, **loader_options) if dataset.val is not None else None

    model_kwargs = {"num_classes": dataset.num_classes, "stem": config.stem}
    if config.zero_init_residual:  # passed only when asked: not every network of the zoo has the option
        model_kwargs["zero_init_residual"] = True
    model = create_model(config.model, **model_kwargs)
    if config.init_from and resume is None:
        init_from_torchvision(model, config.init_from)
    model.to(device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    if config.whiten_stem:  # also when resuming: the frozen weights must stay out of the optimizer's groups
        whiten_stem(model.conv1, dataset.train.images, mean, std)
    if config.sync_bn and world_size() > 1:  # before the optimizer and EMA take the BatchNorm layers' parameters
        model = sync_batch_norm(model, device)
    optimizer = build_optimizer(model, config)
    schedule = build_schedule(config, len(train_loader))
    dtype = amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    ema = EMA(model, config.ema_decay) if config.ema else None
    engine = Engine(model, wrap(model, config, device), optimizer, schedule, scaler, dtype,
                    label_smoothing=config.label_smoothing, grad_clip=config.grad_clip, ema=ema)
    eval_model = ema.module if ema is not None else model
    preprocessing = {"image_size": config.image_size, "input_size": config.input_size or config.image_size,
                     "mean": list(mean), "std": list(std)}

    record, totals, start_epoch = Record(), EpochTotals.zeros(device), 0
    if resume is not None:
        record, totals, start_epoch = _restore(*resume, dataset.classes, config, engine, device)

    def checkpoint_state(epochs_done: int, totals: EpochTotals) -> dict[str, Any]:
        """The whole training state; `totals` (of all ranks) are the finished part of the epoch being trained.
        All ranks hold the same weights and random states, so rank 0's are everyone's."""
        return {
            "format_version": FORMAT_VERSION,
            "model_name": config.model,
            "model_kwargs": model_kwargs,
            "model": plain_state_dict(model.state_dict()),
            "classes": list(dataset.classes),
            "preprocessing": preprocessing,
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(),
            "scheduler": dataclasses.asdict(schedule),
            "scaler": scaler.state_dict(),
            "rng": rng_state(),
            "epoch": epochs_done,
            "step": engine.step,
            "loader": {"epoch": epochs_done, "batch": totals.batches},  # the next batch to run
            "epoch_totals": {"sums": totals.sums.cpu(), "count": totals.count, "seconds": totals.seconds},
            "record": dataclasses.asdict(record),
            "config": dataclasses.asdict(config),
        }

    main = is_main_process()
    folder = RunFolder(run_dir, enabled=main)
    folder.write_config(config)
    rows = folder.read_metrics(start_epoch) if resume is not None else []
    progress = Progress(config.epochs, len(train_loader), engine.step, enabled=main)
    progress.message(
        f"Training {config.model} ({count_parameters(model):,} parameters) on {config.dataset} "
        f"({len(dataset.train):,} train, {len(dataset.val) if dataset.val is not None else 0:,} val images) "
        f"{f'with preset {config.preset!r} ' if config.preset else ''}on {device}{'' if dtype is None else f' ({str(dtype)[6:]})'}; run folder {run_dir}"
    )
    try:
        with StopRequest() as stop:
            for epoch in range(start_epoch, config.epochs):
                progress.start_epoch(epoch, totals.batches)
                try:
                    finished = engine.train_epoch(
                        train_loader.epoch(epoch, start_batch=totals.batches, crop_size=train_crop_size(config, epoch)),
                        totals,
                        should_stop=lambda: stop.signal_name is not None,
                        on_check=lambda t, loss, acc: progress.update(t, loss, acc, engine.step),
                    )
                    everyone, _ = totals.reduced()
                    train_loss, train_acc = everyone.read()
                except NonFiniteLoss as error:
                    kept = f"the last good checkpoint {folder.last} was kept" if folder.last.is_file() else "no checkpoint was written"
                    raise UserError(f"Training stopped in epoch {epoch + 1} (step {engine.step}) because {error}; {kept}. "
                                    "Start again with a lower --lr, --grad-clip 1 or --amp off.") from error
                if not finished:
                    folder.save(checkpoint_state(epoch, everyone), best=False)
                    where = f"in epoch {epoch + 1} after batch {totals.batches} of {len(train_loader)}"
                    progress.message(_stopped(stop.signal_name, where, folder.last, run_dir))
                    return stop.exit_code
                eval_started = time.monotonic()
                val = _evaluate(eval_model, val_loader, dataset.num_classes, config, dtype) if val_loader else None
                eval_seconds = time.monotonic() - eval_started
                record.train_seconds += everyone.seconds
                record.train_images += everyone.count
                row = {"epoch": epoch + 1, "lr": engine.lr, "train_loss": train_loss, "train_acc": train_acc,
                       "val_loss": val.loss if val else None, "val_acc": val.accuracy if val else None,
                       "train_seconds": everyone.seconds, "seconds": everyone.seconds + eval_seconds}
                rows.append(row)
                best = val is not None and val.accuracy > record.best_val_acc
                if best:
                    record.best_val_acc, record.best_epoch = val.accuracy, epoch + 1
                images_per_second = everyone.count / max(everyone.seconds, 1e-9)
                totals = EpochTotals.zeros(device)
                folder.save(checkpoint_state(epoch + 1, totals), best=best)
                folder.write_metrics(rows)
                progress.end_epoch(row, images_per_second, engine.step)
                if any_rank(stop.signal_name is not None, device):  # every rank must leave at the same epoch
                    progress.message(_stopped(stop.signal_name, f"after epoch {epoch + 1}", folder.last, run_dir))
                    return stop.exit_code
        summary = _summary(config, record, rows, model, device, dtype, engine.step)
        if config.evaluate_test:
            barrier()  # every rank reads best.pt, which rank 0 may just have written
            weights = build_model(read_checkpoint(folder.best)) if folder.best.is_file() else eval_model
            test = _evaluate_test(weights.to(device), config, mean, std, dataset.num_classes, dtype)
            summary.update(test_acc=test.accuracy, test_loss=test.loss, test_images=test.count)
        folder.write_summary(summary)
    finally:
        folder.close()
    if main:
        print(_final_line(summary, run_dir), file=sys.stdout, flush=True)
    return 0


def _restore(path: Path, state: dict[str, Any], classes: list[str], config: TrainConfig, engine: Engine,
             device: torch.device) -> tuple[Record, EpochTotals, int]:
    """Put the checkpoint's training state into the freshly built parts; returns the tally, the
    partial epoch's totals and the epoch to continue. RNG last, as building the parts drew from it."""
    if list(state["classes"]) != list(classes):
        raise UserError(f"{path} was trained on {len(state['classes'])} classes, but {config.data_dir} has "
                        f"{len(classes)} ({', '.join(classes[:5])}...); resume with the data it was trained on.")
    load_model_state(engine.model, state["model"], f"Checkpoint {path}")
    engine.optimizer.load_state_dict(state["optimizer"])
    if state["scaler"]:
        engine.scaler.load_state_dict(state["scaler"])
    if engine.ema is not None and state["ema"] is not None:
        engine.ema.load_state_dict(state["ema"])
    engine.step = state["step"]
    saved = state["epoch_totals"]
    totals = EpochTotals(saved["sums"].to(device), saved["count"], state["loader"]["batch"], saved["seconds"])
    if not is_main_process():  # the saved totals are all ranks' together: count them once, on rank 0
        totals.sums.zero_()
        totals.count = 0
    set_rng_state(state["rng"])  # rank 0's, the same as every rank's: all draw the same numbers
    return Record(**state["record"]), totals, state["loader"]["epoch"]


def _stopped(signal_name: str, where: str, checkpoint: Path, run_dir: Path) -> str:
    return f"Stopped by {signal_name} {where}; saved {checkpoint}. Resume with: resnet-cifar train --resume {run_dir}"


def _evaluate(model: nn.Module, loader: Loader, num_classes: int, config: TrainConfig, dtype) -> Metrics:
    return evaluate(model, loader.epoch(0), num_classes, tta=config.tta, amp_dtype=dtype, distributed=world_size() > 1)


def _evaluate_test(model: nn.Module, config: TrainConfig, mean, std, num_classes: int, dtype) -> Metrics:
    test = load_dataset(config.dataset, config.data_dir, splits=("test",), val_split=config.val_split, seed=config.seed,
                        download=config.download, image_size=config.image_size, labels=config.labels).test
    device = next(model.parameters()).device
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = Loader(test, train=False, batch_size=check_batch_size(config.batch_size), device=device, mean=mean,
                    std=std, input_size=config.input_size, channels_last=config.channels_last, rank=rank(),
                    world_size=world_size())
    return _evaluate(model, loader, num_classes, config, dtype)


def _summary(config: TrainConfig, record: Record, rows: list[dict], model: nn.Module, device: torch.device,
             dtype, steps: int) -> dict[str, Any]:
    last = rows[-1] if rows else {}
    return {
        "preset": config.preset,
        "model": config.model,
        "parameters": count_parameters(model),
        "dataset": config.dataset,
        "device": str(device),
        "amp": "off" if dtype is None else str(dtype)[6:],
        "epochs": config.epochs,
        "steps": steps,
        "best_val_acc": record.best_val_acc if record.best_epoch else None,
        "best_epoch": record.best_epoch or None,
        "final_val_acc": last.get("val_acc"),
        "final_train_acc": last.get("train_acc"),
        "train_seconds": record.train_seconds,
        "images_per_second": record.train_images / max(record.train_seconds, 1e-9),
    }


def _final_line(summary: dict[str, Any], run_dir: Path) -> str:
    parts = []
    if summary["best_val_acc"] is not None:
        parts.append(f"best validation accuracy {summary['best_val_acc']:.2%} (epoch {summary['best_epoch']})")
    if "test_acc" in summary:
        parts.append(f"test accuracy {summary['test_acc']:.2%}")
    parts.append(f"{summary['train_seconds']:.0f} s of training at {summary['images_per_second']:,.0f} images/s")
    return f"Done: {', '.join(parts)}. Run folder: {run_dir}"

