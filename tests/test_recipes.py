"""Recipes: every one resolves to a valid configuration, and the named ones say what they promise."""
from __future__ import annotations

import pytest

from resnet_cifar.config import resolve
from resnet_cifar.errors import UserError
from resnet_cifar.recipes import RECIPES, default_preset, recipe_settings


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_a_valid_config(name):
    config = resolve(recipe_settings(name), {}, {})
    assert config.preset == name


def test_seed_is_the_tutorial():
    config = resolve(recipe_settings("seed"), {}, {})
    assert (config.model, config.stem, config.input_size) == ("resnet50", "imagenet", 224)
    assert config.mean == config.std == [0.5, 0.5, 0.5]
    assert (config.optimizer, config.lr, config.batch_size, config.epochs) == ("adam", 1e-3, 64, 10)
    assert (config.crop_padding, config.flip, config.schedule) == (0, "none", "constant")
    assert config.val_split > 0  # model selection on a validation split, not the test set


def test_paper_is_section_4_2():
    config = resolve(recipe_settings("paper"), {}, {"model": "resnet56"})
    assert config.model == "resnet56"
    assert (config.optimizer, config.lr, config.momentum, config.weight_decay, config.batch_size) == ("sgd", 0.1, 0.9, 1e-4, 128)
    steps_per_epoch = (50000 - config.val_split) // config.batch_size
    assert abs(config.epochs * steps_per_epoch - 64000) < steps_per_epoch
    assert [round(m * 64000) for m in config.milestones] == [32000, 48000]
    assert (config.crop_padding, config.padding_mode, config.flip) == (4, "zeros", "random")


def test_default_depends_on_the_network_and_the_machine():
    assert (default_preset("fastresnet8", "cuda"), default_preset("fastresnet8", "cpu")) == ("fast", "cpu")
    assert (default_preset("resnet56", "cuda"), default_preset("resnet56", "cpu")) == ("paper", "paper-cpu")
    assert default_preset("resnet50", "cpu") == default_preset("preactresnet18", "cuda") == "resnet18"
    assert default_preset("wrn16_8", "cpu") == "wrn28_10"


def test_paper_cpu_trains_the_papers_network_without_fastresnet8s_stem():
    settings = recipe_settings("paper-cpu")
    assert settings["model"] == "resnet20"
    assert not settings.get("whiten_stem") and settings.get("optimizer") == "sgd"


def test_unknown_preset_is_an_error():
    with pytest.raises(UserError, match="Unknown preset 'quick'"):
        recipe_settings("quick")


def test_wrn28_10_is_the_papers_recipe():
    from resnet_cifar.train.optim import build_schedule

    config = resolve(recipe_settings("wrn28_10"), {}, {})
    assert (config.model, config.dropout, config.epochs, config.batch_size) == ("wrn28_10", 0.3, 200, 128)
    assert (config.optimizer, config.nesterov, config.lr, config.weight_decay) == ("sgd", True, 0.1, 5e-4)
    schedule = build_schedule(config, steps_per_epoch=100)
    lr_at_epoch = [schedule(epoch * 100) for epoch in (0, 59, 60, 119, 120, 160)]
    assert lr_at_epoch == pytest.approx([0.1, 0.1, 0.02, 0.02, 0.004, 0.0008])
