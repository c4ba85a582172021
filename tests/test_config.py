"""Settings: unknown keys and wrong types are one-sentence errors; layers override in order."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from resnet_cifar.choices import EVALUATION_DATASETS
from resnet_cifar.config import (FIELDS, KEYS, RESUMABLE, TrainConfig, check_values, read_yaml, resolve,
                                 settings_table, write_yaml)
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


def _train_parser():
    from resnet_cifar.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    return subparsers.choices["train"]


def test_every_setting_is_a_flag_of_its_own_name_with_its_choices():
    actions = {action.dest: action for action in _train_parser()._actions}
    for key in KEYS:
        assert key in actions, f"setting {key!r} has no flag"
        assert actions[key].option_strings[0] == "--" + key.replace("_", "-")
        if FIELDS[key].metadata["choices"]:
            assert tuple(actions[key].choices) == FIELDS[key].metadata["choices"]


def test_flags_parse_to_the_settings_type():
    args = _train_parser().parse_args(["--lr", "0.5", "--epochs", "3", "--mean", "0.1", "0.2", "0.3", "--no-ema"])
    assert (args.lr, args.epochs, args.mean, args.ema) == (0.5, 3, [0.1, 0.2, 0.3], False)


def test_a_plain_config_names_no_preset():
    assert TrainConfig().preset is None


def test_only_the_settings_marked_resumable_may_change_on_resume():
    assert RESUMABLE == ("data_dir", "download", "epochs", "evaluate_test", "device")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_numbers_that_are_not_finite_are_rejected_before_any_work(value):
    with pytest.raises(UserError, match="'lr' in flags must be a finite float"):
        check_values({"lr": value}, "flags")


def test_an_infinite_learning_rate_in_yaml_is_rejected(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: .inf\n")
    with pytest.raises(UserError, match="'lr' in .*run.yaml must be a finite float, got inf"):
        read_yaml(path)


def test_label_smoothing_must_leave_some_weight_on_the_label():
    with pytest.raises(UserError, match=r"'label_smoothing' must be in \[0, 1\); got 1.5"):
        resolve({}, {}, {"label_smoothing": 1.5})


def test_the_settings_table_in_the_docs_is_the_settings_definition():
    """docs/training.md carries the table made from TrainConfig; `make docs` rewrites it."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    assert settings_table() in docs


def _accepts(key: str, value: str) -> None:
    """Hand `value` of setting `key` to the module that implements it; raises if that module does not know it."""
    import torch

    from resnet_cifar.data import Loader, Split
    from resnet_cifar.data.augment import AugmentPolicy
    from resnet_cifar.data.cifar import RELEASES
    from resnet_cifar.data.preprocessing import Preprocessing
    from resnet_cifar.data.shifted import classes_of
    from resnet_cifar.evaluation import tta_logits
    from resnet_cifar.models import create_model
    from resnet_cifar.train.hardware import amp_dtype
    from resnet_cifar.train.optim import Schedule, build_optimizer

    images = Split(torch.zeros(8, 3, 8, 8, dtype=torch.uint8), torch.zeros(8, dtype=torch.long))
    preprocessing = Preprocessing(8, (0.5,) * 3, (0.25,) * 3)
    if key == "stem":
        with torch.device("meta"):
            create_model("resnet20", stem=value)
    elif key == "dataset":
        if value in EVALUATION_DATASETS:
            classes_of(value)  # a test set that evaluate reads (train refuses it)
        elif value not in (*RELEASES, "folder"):
            raise ValueError(value)
    elif key == "labels":
        if getattr(RELEASES["cifar100"], f"{value}_key", None) is None:
            raise ValueError(value)
    elif key in ("padding_mode", "flip"):
        Loader(images, batch_size=4, device="cpu", preprocessing=preprocessing, train=True, crop_padding=1,
               **{key: value})
    elif key == "augment":
        AugmentPolicy(value)
    elif key == "optimizer":
        build_optimizer(torch.nn.Linear(2, 2), TrainConfig(optimizer=value))
    elif key == "schedule":
        Schedule(value, 0.1, 10)(5)
    elif key == "tta":
        tta_logits(torch.nn.Conv2d(3, 2, 1), torch.zeros(1, 3, 4, 4), value)
    elif key == "amp":
        try:
            amp_dtype(value, torch.device("cpu"))
        except UserError as error:  # a known mode that this machine cannot run
            assert "needs a CUDA GPU" in str(error)
    else:
        raise AssertionError(f"no module check for the choices of {key!r}; add one here")


@pytest.mark.parametrize("key", [key for key, f in FIELDS.items() if f.metadata["choices"]])
def test_each_choice_of_a_setting_is_one_its_module_accepts_and_no_other(key):
    for value in FIELDS[key].metadata["choices"]:
        _accepts(key, value)
    with pytest.raises((UserError, ValueError, KeyError, RuntimeError)):
        _accepts(key, "no-such-choice")


@pytest.mark.parametrize("content, message", [
    (b"lr: 0.1\nepochs: 3\nlr: 0.2\n", "gives 'lr' twice (again on line 3); keep one"),
    (b"\xff\xfe\x00 lr", "is not UTF-8 text"),
    (b"lr: [1\n", "is not valid YAML"),
])
def test_config_files_that_cannot_be_read_as_settings_are_one_sentence(tmp_path, content, message):
    path = tmp_path / "run.yaml"
    path.write_bytes(content)
    with pytest.raises(UserError, match=re.escape(message)):
        read_yaml(path)
    with pytest.raises(UserError, match="is a folder; pass a YAML file"):
        read_yaml(tmp_path)
