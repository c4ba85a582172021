"""The engine's parts: sample-weighted totals, every evaluation sample counted, schedules, optimizer groups, EMA."""
from __future__ import annotations

import io
import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F

from resnet_cifar.config import TrainConfig
from resnet_cifar.data import Loader, Split
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.evaluation import evaluate
from resnet_cifar.models import create_model
from resnet_cifar.train.ema import EMA
from resnet_cifar.train.engine import Engine, EpochTotals, NonFiniteLoss
from resnet_cifar.train.interrupt import StopRequest
from resnet_cifar.train.optim import Schedule, build_optimizer, build_schedule
from resnet_cifar.train.progress import Progress

pytestmark = pytest.mark.usefixtures("one_thread")


def _engine(model, lr=0.0):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return Engine(model, model, optimizer, Schedule("constant", lr, 100), torch.amp.GradScaler("cpu", enabled=False), None)


def test_training_totals_are_weighted_by_sample():
    torch.manual_seed(0)
    model = create_model("resnet20")
    batches = [(torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])), (torch.randn(1, 3, 8, 8), torch.tensor([3]))]
    with torch.no_grad():  # lr 0: the weights stay, and train-mode outputs do not depend on running statistics
        model.train()
        losses = torch.cat([F.cross_entropy(model(x), y, reduction="none") for x, y in batches])
    totals = EpochTotals.zeros(torch.device("cpu"))
    assert _engine(model).train_epoch(batches, totals, should_stop=lambda: False, on_check=lambda *_: None)
    loss, _ = totals.mean_loss_and_accuracy()
    assert (totals.count, totals.batches) == (4, 2)
    assert loss == pytest.approx(losses.mean().item(), rel=1e-5)  # not the mean of the two batch means
    assert loss != pytest.approx((losses[:3].mean() + losses[3]).item() / 2, rel=1e-3)


def test_stop_request_ends_the_epoch_after_the_current_step():
    model = create_model("resnet20")
    batches = [(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))] * 5
    totals = EpochTotals.zeros(torch.device("cpu"))
    engine = _engine(model, lr=0.01)
    assert not engine.train_epoch(batches, totals, should_stop=lambda: totals.batches == 2, on_check=lambda *_: None)
    assert (engine.step, totals.batches, totals.count) == (2, 2, 4)


def test_non_finite_loss_is_reported():
    totals = EpochTotals(torch.tensor([math.nan, 1.0], dtype=torch.float64), count=2)
    with pytest.raises(NonFiniteLoss):
        totals.mean_loss_and_accuracy()


def test_evaluation_counts_every_sample_of_an_uneven_split():
    torch.manual_seed(0)
    split = Split(torch.randint(0, 256, (101, 3, 8, 8), dtype=torch.uint8), torch.randint(0, 10, (101,)))
    loader = Loader(split, batch_size=50, device="cpu", preprocessing=Preprocessing(32, (0.5,) * 3, (0.25,) * 3),
                    train=False)
    metrics = evaluate(create_model("resnet20"), lambda: loader.epoch(0), 10)
    assert metrics.count == 101


def test_multistep_divides_by_ten_at_the_milestones():
    schedule = Schedule("multistep", 0.1, 64000, milestones=(0.5, 0.75))
    assert [schedule(s) for s in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_warmup_then_cosine_and_linear_decay():
    for kind in ("cosine", "linear"):
        schedule = Schedule(kind, 1.0, 110, warmup_steps=10)
        assert schedule(0) == pytest.approx(0.01)
        assert schedule(5) == pytest.approx(0.505)
        assert schedule(10) == pytest.approx(1.0)
        assert schedule(60) == pytest.approx(0.5)
        assert schedule(110) == pytest.approx(0.0, abs=1e-12)
    assert build_schedule(TrainConfig(epochs=3, warmup_epochs=0.5), steps_per_epoch=10).warmup_steps == 5


def test_batchnorm_and_biases_can_be_exempt_from_weight_decay():
    model = create_model("resnet20")
    groups = build_optimizer(model, TrainConfig(weight_decay=5e-4, weight_decay_bn_bias=False)).param_groups
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    assert len(build_optimizer(model, TrainConfig(optimizer="adamw")).param_groups) == 1


def test_ema_follows_the_weights_with_a_short_memory_at_first():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.99)
    start = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(step=0)  # the decay starts at (1 + 0) / (10 + 0) = 0.1, not 0.99: mostly the new weights
    assert torch.allclose(ema.module.weight, 0.1 * start + 0.9)
    ema.update(step=10_000)  # later the full decay applies
    assert torch.allclose(ema.module.weight, 0.99 * (0.1 * start + 0.9) + 0.01)
    assert not ema.module.weight.requires_grad


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_a_line_per_epoch_in_a_log():
    row = {"epoch": 1, "lr": 0.1, "train_loss": 2.0, "train_acc": 0.25, "val_loss": 1.9, "val_acc": 0.3, "seconds": 4.0}
    totals = EpochTotals(torch.zeros(2, dtype=torch.float64), count=640, batches=5, seconds=2.0)
    for stream, bar in ((FakeTerminal(), True), (io.StringIO(), False)):
        progress = Progress(epochs=3, steps_per_epoch=10, first_step=0, enabled=True, stream=stream)
        progress.start_epoch(0, start_batch=0)
        progress.update(totals, 2.0, 0.25, step=5)
        progress.end_epoch(row, images_per_second=320.0, step=10)
        text = stream.getvalue()
        assert ("320 img/s, loss 2.000, acc 25.00%, run ETA" in text) == bar
        assert text.rstrip().splitlines()[-1].startswith("epoch 1/3  lr 0.1  train loss 2.0000 acc 25.00%  val loss")


def test_bf16_autocast_on_the_cpu_trains():
    torch.manual_seed(0)
    model = create_model("resnet20")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = Engine(model, model, optimizer, Schedule("constant", 0.1, 10), torch.amp.GradScaler("cpu", enabled=False),
                    torch.bfloat16, grad_clip=1.0)
    batches = [(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))] * 2
    totals = EpochTotals.zeros(torch.device("cpu"))
    assert engine.train_epoch(batches, totals, should_stop=lambda: False, on_check=lambda *_: None)
    assert math.isfinite(totals.mean_loss_and_accuracy()[0]) and model.fc.weight.dtype == torch.float32


def test_first_signal_asks_to_stop_and_a_second_ctrl_c_stops_at_once():
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal_name == "SIGINT" and stop.exit_code == 130
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_eta_weighs_cheap_epochs_less_and_counts_the_validations_left(monkeypatch):
    """Two epochs of cheap steps (cost 0.5) then two of whole ones; after the first epoch, which took 10 s of
    training and 2 s of validation, the rest is 10 s + 2 x 20 s of training and 3 validations of 2 s."""
    now = [0.0]
    monkeypatch.setattr("resnet_cifar.train.progress.time.monotonic", lambda: now[0])
    progress = Progress(epochs=4, steps_per_epoch=10, first_step=0, enabled=False,
                        step_cost=lambda epoch: 0.5 if epoch < 2 else 1.0)
    now[0] = 12.0
    progress.end_epoch({"epoch": 1, "lr": 0.1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5,
                        "train_seconds": 10.0, "seconds": 12.0}, images_per_second=100.0, step=10)
    assert progress.eta(step=10) == pytest.approx(10 + 2 * 20 + 3 * 2)
