"""The augmentation policies, random erasing, batch mixing and the new networks, as training uses them."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import write_cifar10
from resnet_cifar.cli import main
from resnet_cifar.config import TrainConfig
from resnet_cifar.data import Loader, Split
from resnet_cifar.data.augment import AugmentPolicy, RandomErasing
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.train.build import build_run
from resnet_cifar.world import World

pytestmark = pytest.mark.usefixtures("one_thread")

IDENTITY = Preprocessing(16, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))


def split(n: int = 64) -> Split:
    generator = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=generator), torch.arange(n))


def batches(policy: str, seed: int = 0, epoch: int = 0, erasing: float = 0.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = Loader(split(), batch_size=16, device="cpu", preprocessing=IDENTITY, train=True, crop_padding=2,
                    flip="random", policy=AugmentPolicy(policy), erasing=RandomErasing(erasing), seed=seed)
    return list(loader.epoch(epoch))


@pytest.mark.parametrize("policy", ["autoaugment", "randaugment", "trivialaugment"])
def test_policies_change_pixels_but_not_labels_and_repeat_for_a_seed(policy):
    plain, augmented = batches("none"), batches(policy)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(plain, augmented))  # each image keeps its label
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(plain, augmented))
    again, other_seed, other_epoch = batches(policy), batches(policy, seed=1), batches(policy, epoch=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(augmented, again))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(augmented, other_epoch))
    assert [y.tolist() for _, y in other_seed] != [y.tolist() for _, y in augmented]


def test_the_policys_draws_leave_the_loaders_own_draws_alone():
    """A policy draws from its own stream: the shuffle, crops and flips of a run stay those it had without."""
    plain, augmented = batches("none"), batches("trivialaugment", erasing=0.5)
    assert [y.tolist() for _, y in plain] == [y.tolist() for _, y in augmented]


def test_erasing_blanks_boxes_of_training_images_only():
    erased = torch.cat([x for x, _ in batches("none", erasing=1.0)])
    assert ((erased == 0).all(1).flatten(1).sum(1) > 0).float().mean() > 0.9  # nearly every image has its box
    loader = Loader(split(), batch_size=16, device="cpu", preprocessing=IDENTITY, train=False,
                    erasing=RandomErasing(1.0), policy=AugmentPolicy("trivialaugment"))
    x, _ = next(loader.epoch(0))
    assert torch.equal(x, split().images[:16].float())  # evaluation is never augmented


def test_mixed_batches_have_soft_targets_and_count_a_defined_accuracy(tmp_path):
    write_cifar10(tmp_path / "data", n_train=100, n_test=10)
    config = TrainConfig(data_dir=str(tmp_path / "data"), val_split=20, batch_size=20, epochs=1, cutmix=1.0,
                         mixup=0.4, device="cpu")
    run = build_run(config, World())
    for x, mixed in run.train_batches(0):
        assert x.shape == (20, 3, 32, 32) and mixed.targets.shape == (20, 10)
        torch.testing.assert_close(mixed.targets.sum(1), torch.ones(20))
    again = [m.lam for _, m in run.train_batches(0, start_batch=2)]
    assert again == [m.lam for _, m in run.train_batches(0)][2:]  # a resumed epoch mixes as the whole one did


@pytest.mark.parametrize("flags", [
    ["--augment", "autoaugment"],
    ["--augment", "randaugment", "--randaugment-ops", "3", "--randaugment-magnitude", "15"],
    ["--augment", "trivialaugment", "--random-erasing", "0.25"],
    ["--mixup", "0.2", "--label-smoothing", "0.1"],
    ["--cutmix", "1.0", "--mixup", "1.0"],
    ["--drop-path", "0.1"],
    ["--model", "preactresnet18", "--drop-path", "0.1", "--input-size", "16"],
    ["--model", "wrn16_8", "--dropout", "0.3", "--input-size", "16"],
], ids=["autoaugment", "randaugment", "trivialaugment-erasing", "mixup-smoothing", "cutmix-or-mixup", "drop-path",
        "preactresnet18", "wrn16_8-dropout"])
def test_each_new_flag_trains_end_to_end(tmp_path, flags):
    write_cifar10(tmp_path / "data", n_train=80, n_test=10)
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper", "--data-dir", str(tmp_path / "data"), "--val-split", "20",
                 "--batch-size", "20", "--epochs", "1", "--device", "cpu", "--output", str(run), *flags]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and 0 <= summary["final_val_acc"] <= 1


def test_options_a_network_lacks_are_refused_before_any_work(tmp_path, capsys):
    assert main(["train", "--model", "resnet20", "--dropout", "0.3", "--data-dir", str(tmp_path / "none"),
                 "--output", str(tmp_path / "run")]) == 2
    assert "--model resnet20 has no --dropout option" in capsys.readouterr().err


def test_the_wrn28_10_recipe_trains(tmp_path):
    """The paper's recipe end to end (dropout, Nesterov, its milestones), on 8-pixel inputs to stay quick."""
    write_cifar10(tmp_path / "data", n_train=80, n_test=10)
    run = tmp_path / "run"
    assert main(["train", "--preset", "wrn28_10", "--data-dir", str(tmp_path / "data"), "--val-split", "20",
                 "--batch-size", "20", "--epochs", "2", "--input-size", "8", "--device", "cpu",
                 "--output", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["epochs"] == 2
