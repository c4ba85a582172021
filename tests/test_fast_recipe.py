"""The `fast` recipe's parts: patch whitening, faster BatchNorm biases, its budget, and a run end to end."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import resnet_cifar
from conftest import write_cifar10
from resnet_cifar.checkpoint import load_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.config import TrainConfig, resolve, train_crop_size
from resnet_cifar.data import Loader
from resnet_cifar.models import create_model
from resnet_cifar.recipes import recipe_settings
from resnet_cifar.train.flops import epoch_flops_per_image
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.train.hooks import recipe_hooks
from resnet_cifar.train.optim import Schedule, apply_schedule, build_optimizer, build_schedule
from resnet_cifar.train.whitening import whiten

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
PREPROCESSING = Preprocessing(32, MEAN, STD)


def correlated_images(n: int = 200) -> torch.Tensor:
    """uint8 images whose neighbouring pixels and channels are strongly correlated, like photographs."""
    torch.manual_seed(0)
    smooth = F.interpolate(torch.rand(n, 1, 8, 8), size=32, mode="bilinear", align_corners=False)
    colour = torch.rand(n, 3, 1, 1) * 0.3
    return ((smooth * 0.7 + colour + 0.05 * torch.rand(n, 3, 32, 32)).clamp(0, 1) * 255).to(torch.uint8)


def test_whitened_stem_outputs_uncorrelated_unit_variance_features_and_is_frozen():
    model = create_model("fastresnet8")
    images = correlated_images()
    whiten(model.conv1, PREPROCESSING.normalize(images))
    x = (images.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        features = model.conv1(x)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = features.T @ features / len(features)
    # Unit variance up to the eps that keeps flat directions from being amplified.
    assert torch.allclose(covariance, torch.diag(covariance.diagonal()), atol=1e-3)
    assert covariance.diagonal().max() <= 1.0 + 1e-3 and covariance.diagonal()[-1] > 0.9
    torch.testing.assert_close(model.conv1.weight[12:], -model.conv1.weight[:12])
    assert not model.conv1.weight.requires_grad and model.conv1.bias.requires_grad


def test_whitening_needs_a_stem_made_for_it():
    with pytest.raises(resnet_cifar.UserError, match="use a model such as fastresnet8"):
        whiten(create_model("resnet20").conv1, PREPROCESSING.normalize(correlated_images(4)))


def test_batch_norm_biases_get_their_own_faster_group_with_the_same_decay_per_step():
    model = create_model("fastresnet8")
    config = TrainConfig(model="fastresnet8", lr=1.0, weight_decay=1e-3, bn_bias_lr_scale=64.0)
    optimizer = build_optimizer(model, config)
    scaled = [g for g in optimizer.param_groups if g.get("lr_scale") == 64.0]
    assert len(scaled) == 1
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in scaled[0]["params"]} == bn_biases
    apply_schedule(optimizer, Schedule("constant", 0.5, 10), step=3)
    assert scaled[0]["lr"] == 32.0 and scaled[0]["lr"] * scaled[0]["weight_decay"] == pytest.approx(0.5 * 1e-3)
    assert all(g["lr"] == 0.5 for g in optimizer.param_groups if g is not scaled[0])
    # Frozen parameters (BatchNorm scales) are in no group at all.
    grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(id(p) in grouped for p in model.parameters() if p.requires_grad)
    assert not any(id(m.weight) in grouped for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_the_stem_bias_learns_at_the_bias_rate_down_to_zero_then_freezes():
    """stem_bias_epochs: the whitened stem's bias has its own short linear decay, then leaves the graph."""
    model = create_model("fastresnet8")
    config = TrainConfig(model="fastresnet8", whiten_stem=True, stem_bias_epochs=2, epochs=10, lr=1.0,
                         weight_decay=1e-3, bn_bias_lr_scale=64.0, schedule="linear")
    [hook] = recipe_hooks(config, model, correlated_images(8), PREPROCESSING, steps_per_epoch=5)
    assert not model.conv1.weight.requires_grad  # whitened, then frozen
    optimizer = build_optimizer(model, config, hook.param_groups())
    schedule = build_schedule(config, steps_per_epoch=5)
    stem = [g for g in optimizer.param_groups if any(p is model.conv1.bias for p in g["params"])]
    assert len(stem) == 1 and stem[0]["params"] == [model.conv1.bias]
    assert sum(p is model.conv1.bias for g in optimizer.param_groups for p in g["params"]) == 1

    assert apply_schedule(optimizer, schedule, 5) == pytest.approx(0.9)  # the base rate, a tenth of the way down
    hook.before_step(optimizer, 5)
    assert stem[0]["lr"] == pytest.approx(32.0)  # half-way through its 10 steps, at 64x the base peak
    assert stem[0]["lr"] * stem[0]["weight_decay"] == pytest.approx(0.5 * 1e-3)
    assert model.conv1.bias.requires_grad

    model.conv1.bias.grad = torch.ones_like(model.conv1.bias)
    apply_schedule(optimizer, schedule, 10)
    hook.before_step(optimizer, 10)
    assert stem[0]["lr"] == 0 and not model.conv1.bias.requires_grad and model.conv1.bias.grad is None
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.conv1.bias.grad is None and model.layer1[0].conv1.weight.grad is not None


def test_stem_bias_epochs_needs_the_whitened_stem():
    with pytest.raises(resnet_cifar.UserError, match="stem_bias_epochs"):
        resolve({}, {}, {"stem_bias_epochs": 3})
    assert resolve({"stem_bias_epochs": 3}, {}, {}).stem_bias_epochs is None  # a recipe's goes with its whitening


def test_without_a_scale_the_groups_are_unchanged():
    optimizer = build_optimizer(create_model("resnet20"), TrainConfig())
    assert len(optimizer.param_groups) == 1 and "lr_scale" not in optimizer.param_groups[0]


def test_fast_recipe_trains_fastresnet8_with_muon_within_airbench94s_budget():
    """Forward, backward and Muon's orthogonalisation, over every image of the run: under 0.36 PFLOPs."""
    config = resolve(recipe_settings("fast"), {}, {})
    assert config.model == "fastresnet8" and config.whiten_stem and config.bn_bias_lr_scale > 1
    assert config.optimizer == "muon"
    per_epoch = epoch_flops_per_image(config)
    assert len(per_epoch) == config.epochs
    assert config.stem_bias_epochs < config.early_crop_epochs
    assert per_epoch[config.stem_bias_epochs] < per_epoch[0]  # same crops; the frozen stem spares the first block's input gradient
    assert per_epoch[0] < per_epoch[-1] / 1.5  # the early crops
    images = (50_000 - config.val_split) // config.batch_size * config.batch_size
    assert 0.25e15 < sum(per_epoch) * images < 0.36e15


def test_fast_preset_runs_end_to_end_and_its_checkpoint_predicts(tmp_path):
    write_cifar10(tmp_path / "data", n_train=120, n_test=20)
    run = tmp_path / "run"
    assert main(["train", "--preset", "fast", "--data-dir", str(tmp_path / "data"), "--val-split", "40",
                 "--batch-size", "40", "--epochs", "2", "--output", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "fastresnet8" and summary["steps"] == 4
    model = load_checkpoint(run / "checkpoints" / "last.pt")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_early_crop_epochs_train_on_smaller_windows_then_whole_images(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "data", n_train=120, n_test=20)
    seen = []
    original = Loader.epoch

    def spy(self, epoch, start_batch=0, crop_size=None):
        for x, y in original(self, epoch, start_batch, crop_size=crop_size):
            if self.train:
                seen.append((epoch, tuple(x.shape[2:])))
            yield x, y

    monkeypatch.setattr(Loader, "epoch", spy)
    assert main(["train", "--preset", "fast", "--data-dir", str(tmp_path / "data"), "--val-split", "40",
                 "--batch-size", "40", "--epochs", "3", "--early-crop-size", "24", "--early-crop-epochs", "2",
                 "--output", str(tmp_path / "run")]) == 0
    assert seen == [(0, (24, 24))] * 2 + [(1, (24, 24))] * 2 + [(2, (32, 32))] * 2


def test_early_crops_cost_fewer_flops_in_their_epochs():
    whole = epoch_flops_per_image(resolve(recipe_settings("fast"), {}, {"epochs": 4, "early_crop_size": None,
                                                                        "early_crop_epochs": 0}))
    cropped = epoch_flops_per_image(resolve(recipe_settings("fast"), {}, {"epochs": 4, "early_crop_size": 24,
                                                                          "early_crop_epochs": 2}))
    assert cropped[2:] == whole[2:]
    assert all(0.45 < c / w < 0.6 for c, w in zip(cropped[:2], whole[:2]))  # (24/32)^2 = 0.56 of the pixels


@pytest.mark.parametrize("settings", [{"early_crop_epochs": 2}, {"early_crop_size": 40, "early_crop_epochs": 2}])
def test_early_crop_epochs_need_a_window_that_fits_the_image(settings):
    with pytest.raises(resnet_cifar.UserError, match="early_crop_size"):
        resolve({}, {}, settings)


def test_zero_early_crop_epochs_turn_the_recipes_crops_off():
    config = resolve(recipe_settings("fast"), {}, {"early_crop_epochs": 0})
    assert [train_crop_size(config, epoch) for epoch in range(config.epochs)] == [None] * config.epochs
