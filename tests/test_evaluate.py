"""`resnet-cifar evaluate`: figures that match a direct computation, files, and the split training used."""
from __future__ import annotations

import builtins
import csv
import json

import pytest
import torch

from checkpoints import CIFAR10_PREPROCESSING, write_checkpoint
from resnet_cifar import load_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.commands.evaluate import write_confusion_csv
from resnet_cifar.pictures import plot_confusion
from resnet_cifar.data import load_dataset


def config_for(data_dir, **overrides):
    return {"dataset": "cifar10", "data_dir": str(data_dir), "val_split": 50, "seed": 3, **overrides}


def direct_accuracy(checkpoint, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy computed the plain way, to check the command against."""
    model = load_checkpoint(checkpoint)
    mean = torch.tensor(CIFAR10_PREPROCESSING["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_PREPROCESSING["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        predicted = model((images.float() / 255 - mean) / std).argmax(1)
    return (predicted == labels).double().mean().item()


def test_test_split_figures_and_files(cifar10_dir, tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "model.pt", ema=True, config=config_for(cifar10_dir))
    output = tmp_path / "eval"
    assert main(["evaluate", str(checkpoint), "--output", str(output), "--batch-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "EMA weights" in printed and "top-1 accuracy" in printed and "airplane" in printed

    report = json.loads((output / "evaluation.json").read_text())
    assert report["weights"] == "ema" and report["split"] == "test" and report["images"] == 100
    test = load_dataset("cifar10", cifar10_dir, splits=("test",)).test
    assert report["top1"] == pytest.approx(direct_accuracy(checkpoint, test.images, test.labels))
    assert report["top5"] >= report["top1"] and report["loss"] > 0
    assert sum(map(sum, report["confusion"])) == 100
    assert set(report["per_class_accuracy"]) == set(report["classes"])

    rows = list(csv.reader((output / "confusion.csv").open()))
    assert rows[0][1:] == report["classes"]
    assert [list(map(int, row[1:])) for row in rows[1:]] == report["confusion"]
    assert (output / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_split_needs_only_the_test_files(cifar10_dir, tmp_path, capsys):
    for batch in cifar10_dir.glob("cifar-10-batches-py/data_batch_*"):
        batch.unlink()
    checkpoint = write_checkpoint(tmp_path / "model.pt")
    assert main(["evaluate", str(checkpoint), "--dataset", "cifar10", "--data-dir", str(cifar10_dir)]) == 0
    assert "trained weights (the checkpoint has no EMA)" in capsys.readouterr().out


def test_val_split_is_the_one_training_held_out(cifar10_dir, tmp_path):
    checkpoint = write_checkpoint(tmp_path / "model.pt", config=config_for(cifar10_dir))
    assert main(["evaluate", str(checkpoint), "--split", "val", "--output", str(tmp_path / "val")]) == 0
    report = json.loads((tmp_path / "val" / "evaluation.json").read_text())
    assert (report["images"], report["val_split"], report["seed"]) == (50, 50, 3)
    val = load_dataset("cifar10", cifar10_dir, splits=("val",), val_split=50, seed=3).val
    assert report["top1"] == pytest.approx(direct_accuracy(checkpoint, val.images, val.labels))

    assert main(["evaluate", str(checkpoint), "--split", "val", "--val-split", "20", "--seed", "1", "--tta",
                 "--output", str(tmp_path / "override")]) == 0
    report = json.loads((tmp_path / "override" / "evaluation.json").read_text())
    assert (report["images"], report["seed"], report["tta"]) == (20, 1, "flip")

    assert main(["evaluate", str(checkpoint), "--split", "train", "--output", str(tmp_path / "train")]) == 0
    assert json.loads((tmp_path / "train" / "evaluation.json").read_text())["images"] == 450


def test_missing_dataset_and_wrong_classes(cifar10_dir, tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "model.pt")
    assert main(["evaluate", str(checkpoint), "--data-dir", str(cifar10_dir)]) == 2
    assert "pass --dataset" in capsys.readouterr().err
    three = write_checkpoint(tmp_path / "three.pt", classes=["a", "b", "c"], config=config_for(cifar10_dir))
    assert main(["evaluate", str(three)]) == 2
    err = capsys.readouterr().err
    assert "trained on 3 classes" in err and len(err.strip().splitlines()) == 1


def test_bad_checkpoints_are_refused_in_one_line(cifar10_dir, tmp_path, capsys):
    class CreatesFile:
        def __reduce__(self):
            return builtins.open, (str(tmp_path / "pwned"), "w")

    torch.save({"model": CreatesFile()}, tmp_path / "evil.pt")
    truncated = write_checkpoint(tmp_path / "truncated.pt")
    truncated.write_bytes(truncated.read_bytes()[:2000])
    for path in (tmp_path / "evil.pt", truncated, tmp_path / "missing.pt"):
        assert main(["evaluate", str(path), "--dataset", "cifar10", "--data-dir", str(cifar10_dir)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()


def test_confusion_files_for_many_classes(tmp_path):
    classes = [f"class {i}" for i in range(100)]
    confusion = torch.randint(0, 5, (100, 100)) + 50 * torch.eye(100, dtype=torch.int64)
    plot_confusion(confusion, classes, tmp_path / "confusion.png", "100 classes")
    write_confusion_csv(confusion, classes, tmp_path / "confusion.csv")
    assert (tmp_path / "confusion.png").stat().st_size > 10_000
    rows = list(csv.reader((tmp_path / "confusion.csv").open()))
    assert len(rows) == 101 and rows[42][0] == "class 41" and int(rows[42][42]) == confusion[41, 41]
