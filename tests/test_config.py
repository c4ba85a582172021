"""Settings: unknown keys and wrong types are one-sentence errors; layers override in order."""
from __future__ import annotations

import dataclasses

import pytest

from resnet_cifar.config import TrainConfig, read_yaml, resolve, write_yaml
from resnet_cifar.errors import UserError


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: 0.1\nlearning_rate: 0.2\n")
    with pytest.raises(UserError, match=r"Unknown setting 'learning_rate' in .*run\.yaml"):
        read_yaml(path)


def test_wrong_type_is_an_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: ten\n")
    with pytest.raises(UserError, match=r"'epochs' in .*run\.yaml must be int"):
        read_yaml(path)


def test_yaml_that_is_not_a_mapping_is_an_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("- lr\n")
    with pytest.raises(UserError, match="mapping"):
        read_yaml(path)


def test_flags_override_the_file_which_overrides_the_recipe():
    config = resolve({"lr": 0.1, "epochs": 5, "model": "resnet32"}, {"lr": 0.2, "epochs": 7}, {"epochs": 9})
    assert (config.model, config.lr, config.epochs) == ("resnet32", 0.2, 9)


def test_written_config_reads_back_identically(tmp_path):
    config = TrainConfig(model="resnet32", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], grad_clip=2.0)
    write_yaml(config, tmp_path / "config.yaml")
    assert TrainConfig(**read_yaml(tmp_path / "config.yaml")) == config
    assert set(read_yaml(tmp_path / "config.yaml")) == {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("values, message", [
    ({"optimizer": "rmsprop"}, "'optimizer' must be one of sgd, muon, adam, adamw"),
    ({"lr": 0.0}, "'lr' must be positive"),
    ({"mean": [0.5, 0.5]}, "'mean' needs three values"),
    ({"schedule": "multistep", "milestones": [0.5, 32000]}, "fractions of the run"),
    ({"ema_decay": 1.0}, r"'ema_decay' must be in \[0, 1\)"),
])
def test_impossible_values_are_rejected(values, message):
    with pytest.raises(UserError, match=message):
        resolve({}, {}, values)
