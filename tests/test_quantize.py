"""`export --format onnx --int8`: an INT8 file calibrated on training images, checked against fp32 on the
validation images, and one sentence for every way the flags or the data can be wrong."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re

import numpy as np
import pytest

import resnet_cifar.quantize
from checkpoints import write_checkpoint
from conftest import write_cifar10
from resnet_cifar import load_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.data import load_dataset
from resnet_cifar.onnx_model import read_onnx
from resnet_cifar.quantize import Images, Int8Export, calibration_and_check_images


def config_for(data_dir) -> dict:
    return {"dataset": "cifar10", "data_dir": str(data_dir), "val_split": 40, "seed": 3, "tta": "flip"}


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """An INT8 export through the CLI, once: the checkpoint, the data, the file and what was printed."""
    root = tmp_path_factory.mktemp("int8")
    data = write_cifar10(root / "data", n_train=200, n_test=20).parent
    checkpoint = write_checkpoint(root / "model.pt", config=config_for(data))
    output = root / "model-int8.onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["export", str(checkpoint), "--format", "onnx", "--int8", "--calibration-images", "64",
                     "--output", str(output)]) == 0
    return {"checkpoint": checkpoint, "data": data, "output": output, "printed": stdout.getvalue()}


def test_the_int8_file_is_smaller_and_says_what_it_is(int8_export):
    printed, output = int8_export["printed"], int8_export["output"]
    assert ("as onnx INT8 (QDQ, per-channel int8 weights, uint8 activations, the first convolution in fp32; "
            "calibrated on 64 training images") in printed
    size, ratio = re.search(r"Size (\S+) MB, (\S+)x the fp32 file's", printed).groups()
    assert float(size) == pytest.approx(output.stat().st_size / 1e6, abs=0.01) and float(ratio) < 0.4
    model = read_onnx(output)
    assert model.metadata["precision"] == "int8" and model.metadata["calibration_images"] == 64
    assert model.metadata["checkpoint_sha256"] == hashlib.sha256(int8_export["checkpoint"].read_bytes()).hexdigest()
    assert (model.metadata["tta"], model.metadata["val_split"], model.metadata["seed"]) == ("flip", 40, 3)
    assert sorted(path.name for path in output.parent.iterdir()) == ["data", "model-int8.onnx", "model.pt"]


def test_the_check_is_on_the_validation_split_and_agrees_with_evaluate(int8_export, tmp_path, capsys):
    printed = int8_export["printed"]
    match = re.search(r"INT8 against fp32 on the 40 validation images \(val_split 40, seed 3\), without test-time "
                      r"views: top-1 agreement (\S+)%, accuracy (\S+)% against (\S+)%", printed)
    assert match, printed
    agreement, int8_accuracy, fp32_accuracy = (float(value) for value in match.groups())
    accuracies = {}
    for kind, path in (("int8", int8_export["output"]), ("fp32", int8_export["checkpoint"])):
        assert main(["evaluate", str(path), "--split", "val", "--tta", "none", "--data-dir", str(int8_export["data"]),
                     "--output", str(tmp_path / kind)]) == 0
        accuracies[kind] = 100 * json.loads((tmp_path / kind / "evaluation.json").read_text())["top1"]
    capsys.readouterr()
    assert (int8_accuracy, fp32_accuracy) == pytest.approx((accuracies["int8"], accuracies["fp32"]), abs=0.01)
    assert 0 <= agreement <= 100


def test_calibration_images_come_from_the_training_images_only(cifar10_dir):
    model = load_checkpoint(write_checkpoint(cifar10_dir.parent / "model.pt"))
    settings = {**config_for(cifar10_dir), "labels": "fine"}
    calibration, check = calibration_and_check_images(model, settings, 100)
    val = load_dataset("cifar10", cifar10_dir, splits=("val",), val_split=40, seed=3).val
    assert calibration.pixels.shape == (100, 3, 32, 32) and len(np.unique(calibration.labels)) > 5
    assert np.array_equal(check.pixels, val.images.numpy()) and np.array_equal(check.labels, val.labels.numpy())
    held_out = {image.tobytes() for image in check.pixels}
    assert not any(image.tobytes() in held_out for image in calibration.pixels)
    alone, itself = calibration_and_check_images(model, {**settings, "val_split": 0}, 1000)
    assert len(alone.labels) == 500 and itself is alone  # no validation split: checked on the calibration images


def test_a_large_accuracy_drop_is_said_and_the_file_kept(int8_export, tmp_path, monkeypatch, capsys):
    images = Images(np.zeros((1, 3, 32, 32), np.uint8), np.zeros(1, np.int64), "1 training image")
    result = Int8Export(images, images, 1000, 250, 1e-6, 0.9, 0.90, 0.88)
    monkeypatch.setattr(resnet_cifar.quantize, "export_int8", lambda *args: result)
    assert main(["export", str(int8_export["checkpoint"]), "--format", "onnx", "--int8",
                 "--output", str(tmp_path / "m.onnx")]) == 0
    captured = capsys.readouterr()
    assert "accuracy 88.00% against 90.00% (-2.00 points)" in captured.out
    [warning] = captured.err.strip().splitlines()
    assert warning.startswith("resnet-cifar export: warning: INT8 loses 2.00 points") and "was kept" in warning


def test_bad_int8_flags_and_data_are_one_sentence_and_write_nothing(int8_export, tmp_path, capsys):
    checkpoint = str(int8_export["checkpoint"])
    without_config = str(write_checkpoint(tmp_path / "bare.pt"))
    (tmp_path / "empty").mkdir()
    output = str(tmp_path / "m.onnx")
    cases = [
        ([checkpoint, "--format", "torchscript", "--int8", "--output", str(tmp_path / "m.ts")],
         "--int8 quantizes ONNX files only"),
        ([without_config, "--format", "onnx", "--int8", "--output", output], "does not record where they are"),
        ([checkpoint, "--format", "onnx", "--int8", "--data-dir", str(tmp_path / "empty"), "--output", output],
         "No cifar10 found in"),
        ([checkpoint, "--format", "onnx", "--int8", "--calibration-images", "0", "--output", output],
         "--calibration-images must be at least 1, got 0"),
        ([checkpoint, "--format", "onnx", "--data-dir", str(int8_export["data"]), "--output", output],
         "--data-dir only applies to --int8's calibration; add --int8 or drop it."),
        ([checkpoint, "--format", "onnx", "--int8", "--output", checkpoint, "--overwrite"],
         "is the checkpoint being exported"),
    ]
    before = int8_export["checkpoint"].read_bytes()
    for args, says in cases:
        assert main(["export", *args]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bare.pt", "empty"]
    assert int8_export["checkpoint"].read_bytes() == before
