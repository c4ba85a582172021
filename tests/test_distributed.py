"""Training under torchrun, with real processes on the CPU (gloo): the same run as one process, and failures that end.

Each torchrun start costs seconds (every process imports torch), so the module
starts torchrun only twice.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import SGD_RECIPE, write_cifar10
from resnet_cifar.cli import main
from resnet_cifar.errors import UserError
from resnet_cifar.train.distributed import data_parallel, process_group
from resnet_cifar.train.engine import Engine, EpochTotals
from resnet_cifar.train.hooks import ShortLivedParameter
from resnet_cifar.train.optim import Schedule
from resnet_cifar.world import World

# A small SGD recipe's moving parts (Nesterov SGD, warmup, label smoothing, EMA, crops,
# alternating flips); 150 training images in global batches of 30: five steps an epoch.
# Summing in another order changes the last bits, and on this tiny learnable data a
# ReLU input near zero can turn such a difference into a large one: one process
# with channels-last tensors against one with contiguous ones differs by 1e-2 after
# these five steps. So both runs use contiguous tensors and a modest lr, where two
# processes and one agree to about 5e-7 (without --sync-bn they differ by 0.5).
pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = [*SGD_RECIPE, "--device", "cpu", "--deterministic", "--val-split", "50", "--batch-size", "30",
        "--input-size", "16", "--warmup-epochs", "0.5", "--crop-padding", "2", "--lr", "0.02", "--no-channels-last",
        "--sync-bn"]


def torchrun(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def weights(run, key="model") -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)[key]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_two_processes_train_as_one_with_the_global_batch_and_resume_in_one(tmp_path):
    write_cifar10(tmp_path / "data", n_train=200, n_test=20)
    args = ["train", *ARGS, "--data-dir", str(tmp_path / "data"), "--epochs", "1"]
    two = torchrun(["-m", "resnet_cifar", *args, "--output", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    assert main([*args, "--output", str(tmp_path / "one")]) == 0

    difference = max_difference(weights(tmp_path / "one"), weights(tmp_path / "two"))
    print(f"max parameter difference, 2 processes x 15 against 1 process x 30: {difference:.2e}")
    assert difference < 1e-5
    assert max_difference(weights(tmp_path / "one", "ema"), weights(tmp_path / "two", "ema")) < 1e-5
    assert not any(key.startswith("module.") for key in weights(tmp_path / "two"))
    assert two.stdout.count("Done:") == 1 and two.stderr.count("epoch 1/1") == 1  # only rank 0 talks
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name != "tensorboard") == [
        "checkpoints", "config.yaml", "curves.png", "metrics.csv", "summary.json"]

    # The two-process run goes on in one process: same global batches, same schedule.
    assert main(["train", "--resume", str(tmp_path / "two"), "--epochs", "2"]) == 0
    resumed = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=True)
    assert (resumed["epoch"], resumed["step"], resumed["tally"]["train_images"]) == (2, 10, 300)
    assert (tmp_path / "two" / "metrics.csv").read_text().count("\n") == 3  # header and two epochs


DIES_EARLY = """
import os, sys
from resnet_cifar.cli import main
from resnet_cifar.train.engine import Engine

def die(*args, **kwargs):
    os._exit(3)

if os.environ["RANK"] == "1":
    Engine.train_epoch = die
sys.exit(main(sys.argv[1:]))
"""


def test_a_rank_that_dies_ends_the_job_at_once(tmp_path):
    """torchrun (its default --max-restarts 0) ends the others when one process fails, rather than letting them
    wait for it in the next collective."""
    write_cifar10(tmp_path / "data", n_train=200, n_test=20)
    script = tmp_path / "dies_early.py"
    script.write_text(DIES_EARLY)
    started = time.monotonic()
    result = torchrun([str(script), "train", *ARGS, "--data-dir", str(tmp_path / "data"), "--epochs", "50",
                       "--output", str(tmp_path / "run")], timeout=60)
    assert result.returncode != 0
    assert time.monotonic() - started < 45  # far from the 600 s --dist-timeout: torchrun, not the timeout, ended it
    assert "exitcode  : 3" in result.stderr and "rank      : 1" in result.stderr


def stop_on_one_rank(rank: int, port: int, results) -> None:
    """Rank 1 alone is asked to stop from its third step on; both ranks report where they stopped."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = Engine(model, torch.nn.parallel.DistributedDataParallel(model), optimizer, Schedule("constant", 0.1, 100),
                    torch.amp.GradScaler("cpu", enabled=False), None, world=World(rank, 2))
    totals = EpochTotals.zeros(torch.device("cpu"))
    batches = [(torch.randn(3, 4), torch.tensor([0, 1, 0]))] * 20
    finished = engine.train_epoch(batches, totals, should_stop=lambda: rank == 1 and engine.step >= 3,
                                  on_check=lambda *_: None)
    results[rank] = (finished, engine.step)
    dist.destroy_process_group()


def spawn_two_ranks(rank_main) -> dict:
    """Run rank_main(rank, port, results) in two processes joined over a free local port; returns results."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(rank_main, args=(port, results), nprocs=2)
    return results


def test_a_stop_asked_of_one_rank_stops_every_rank_at_the_same_step():
    results = spawn_two_ranks(stop_on_one_rank)
    assert results[0] == results[1]
    finished, step = results[0]
    assert not finished and 3 <= step < 20


class Stem(torch.nn.Module):
    """A stem convolution with a bias, then a classifier: the shape of a whitened-stem network."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv1(x).mean((2, 3)))


def freeze_the_stem_bias_mid_run(rank: int, port: int, results) -> None:
    """Both ranks train six steps; the stem's bias freezes after two (stem_bias_epochs)."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = Stem()
    world = World(rank, 2)
    bias = ShortLivedParameter(model.conv1.bias, peak_lr=0.1, weight_decay=0.0, steps=2)
    optimizer = torch.optim.SGD([{"params": [model.conv1.weight, *model.fc.parameters()]}, *bias.param_groups()], lr=0.1)
    engine = Engine(model, data_parallel(model, world, params_may_freeze=bias.may_freeze_parameters), optimizer,
                    Schedule("constant", 0.1, 100), torch.amp.GradScaler("cpu", enabled=False), None, hooks=[bias],
                    world=world)
    torch.manual_seed(rank)  # each rank its own batches
    batches = [(torch.randn(3, 3, 4, 4), torch.tensor([0, 1, 0])) for _ in range(6)]
    engine.train_epoch(batches, EpochTotals.zeros(torch.device("cpu")), should_stop=lambda: False,
                       on_check=lambda *_: None)
    results[rank] = (engine.step, model.conv1.bias.requires_grad, model.conv1.weight.detach().clone())
    dist.destroy_process_group()


def test_a_parameter_frozen_mid_run_does_not_stall_the_gradient_sync():
    results = spawn_two_ranks(freeze_the_stem_bias_mid_run)
    (steps, trainable, weight), (steps_1, _, weight_1) = results[0], results[1]
    assert steps == steps_1 == 6 and not trainable
    torch.testing.assert_close(weight, weight_1)  # the gradients of the other parameters are still averaged


def test_the_global_batch_must_split_evenly():
    world = World(rank=1, size=4)
    assert world.per_process_batch(512) == 128
    with pytest.raises(UserError, match="--batch-size 510 is the global batch .* pass a multiple of 4"):
        world.per_process_batch(510)


def test_processes_that_never_all_arrive_end_with_a_message(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29517")
    with pytest.raises(UserError, match="within --dist-timeout 1 s"):
        with process_group(torch.device("cpu"), 1):
            pass
