"""Recipes: every one resolves to a valid configuration, and the named ones say what they promise."""
from __future__ import annotations

import pytest

from resnet_cifar.config import resolve
from resnet_cifar.errors import UserError
from resnet_cifar.models import list_models
from resnet_cifar.recipes import RECIPES, default_preset, recipe_settings


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_a_valid_config(name):
    config = resolve(recipe_settings(name), {}, {})
    assert config.preset == name


def test_the_tutorials_recipe_selects_on_a_validation_split_not_the_test_set():
    config = resolve(recipe_settings("seed"), {}, {})
    assert config.val_split > 0 and not config.evaluate_test


def test_paper_is_section_4_2():
    config = resolve(recipe_settings("paper"), {}, {"model": "resnet56"})
    assert config.model == "resnet56"
    steps_per_epoch = (50000 - config.val_split) // config.batch_size
    assert abs(config.epochs * steps_per_epoch - 64000) < steps_per_epoch
    assert [round(m * 64000) for m in config.milestones] == [32000, 48000]


def test_default_depends_on_the_network_and_the_machine():
    assert (default_preset("fastresnet8", "cuda"), default_preset("fastresnet8", "cpu")) == ("fast", "cpu")
    assert (default_preset("resnet56", "cuda"), default_preset("resnet56", "cpu")) == ("paper", "paper-cpu")
    assert default_preset("resnet50", "cpu") == default_preset("preactresnet18", "cuda") == "resnet18"
    assert default_preset("wrn16_8", "cpu") == "wrn28_10"


@pytest.mark.parametrize("name", [name for name in list_models() if default_preset(name, "cpu") != "cpu"])
def test_each_networks_own_recipe_fits_it(name):
    from resnet_cifar.train.build import model_misfit

    for device in ("cpu", "cuda"):
        assert model_misfit(resolve(recipe_settings(default_preset(name, device)), {}, {"model": name})) is None


def test_unknown_preset_is_an_error():
    with pytest.raises(UserError, match="Unknown preset 'quick'"):
        recipe_settings("quick")


def test_wrn28_10_is_the_papers_recipe():
    from resnet_cifar.train.optim import build_schedule

    config = resolve(recipe_settings("wrn28_10"), {}, {})
    schedule = build_schedule(config, steps_per_epoch=100)
    lr_at_epoch = [schedule(epoch * 100) for epoch in (0, 59, 60, 119, 120, 160)]
    assert lr_at_epoch == pytest.approx([0.1, 0.1, 0.02, 0.02, 0.004, 0.0008])
