"""Every network of the zoo, trained as a user types it: `train --model NAME` with no preset, then evaluate and
export on its checkpoint. A network registered later is covered without a new test (timm's way of testing).

One step on 16-pixel inputs (fastresnet8 shrinks 8 below one pixel) keeps the whole zoo cheap; the recipe is
still the network's own, with every trick it turns on (whitening, Muon, early crops, test-time views, dropout).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_cifar10
from resnet_cifar import list_models
from resnet_cifar.cli import main
from resnet_cifar.recipes import RECIPES, default_preset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 training images, 8 of them held out: one step of 8 for any recipe given --batch-size 8."""
    root = tmp_path_factory.mktemp("zoo") / "data"
    write_cifar10(root, n_train=16, n_test=8)
    return root


def test_every_network_names_recipes_that_exist():
    for name in list_models():
        assert {default_preset(name, "cuda"), default_preset(name, "cpu")} <= set(RECIPES), name


@pytest.mark.parametrize("name", list_models())
def test_every_network_trains_evaluates_and_exports_from_a_bare_model_flag(name, tiny_data, tmp_path, capsys,
                                                                             one_thread):
    run = tmp_path / "run"
    assert main(["train", "--model", name, "--data-dir", str(tiny_data), "--device", "cpu", "--epochs", "1",
                 "--batch-size", "8", "--val-split", "8", "--input-size", "16", "--output", str(run)]) == 0
    preset = default_preset(name, "cpu")
    assert f"with preset {preset!r} (the default for {name} on a CPU)" in capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["preset"], summary["model"], summary["steps"]) == (preset, name, 1)

    checkpoint = run / "checkpoints" / "best.pt"
    assert main(["evaluate", str(checkpoint), "--split", "val", "--output", str(tmp_path / "evaluation")]) == 0
    assert json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())["images"] == 8
    assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(tmp_path / "model.onnx")]) == 0
    assert (tmp_path / "model.onnx").stat().st_size > 0
