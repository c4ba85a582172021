"""Accuracy under corruption: the flags' parsing, and `evaluate --corruptions` on generated corruptions, labelled."""
from __future__ import annotations

import json

import pytest

from checkpoints import write_checkpoint
from resnet_cifar.choices import CORRUPTIONS, GENERATED_CORRUPTIONS
from resnet_cifar.cli import main
from resnet_cifar.errors import UserError
from resnet_cifar.robustness import parse_corruptions, parse_severities


def test_corruption_names_and_severities_parse_as_users_type_them():
    assert parse_corruptions("all") == list(CORRUPTIONS)
    assert parse_corruptions("fog, gaussian_noise") == ["gaussian_noise", "fog"]  # the paper's order
    assert parse_severities("1-5") == [1, 2, 3, 4, 5]
    assert parse_severities("3") == [3] and parse_severities("5,1-2") == [1, 2, 5]
    for bad in ("rain", "fog,,rain", ""):
        with pytest.raises(UserError, match="--corruptions"):
            parse_corruptions(bad)
    for bad in ("0-2", "6", "a", "1-", "2-1"):
        with pytest.raises(UserError, match="--severities"):
            parse_severities(bad)


def test_evaluate_under_generated_corruptions_is_labelled_and_reproducible(cifar10_dir, tmp_path, capsys):
    config = {"dataset": "cifar10", "data_dir": str(cifar10_dir), "val_split": 40, "seed": 1, "tta": "flip",
              "tta_fraction": 0.5}
    checkpoint = write_checkpoint(tmp_path / "model.pt", config=config)
    command = ["evaluate", str(checkpoint), "--split", "val", "--corruptions", "contrast,gaussian_noise",
               "--severities", "1,5"]
    assert main([*command, "--output", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert f"{GENERATED_CORRUPTIONS}: our code's corruptions" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("gaussian_noise", "contrast"))]
    assert [row[0] for row in rows] == ["gaussian_noise", "contrast"] and all(len(row) == 4 for row in rows)
    [summary] = [line for line in out.splitlines() if line.startswith("mean corruption accuracy")]
    assert GENERATED_CORRUPTIONS in summary and "corruptions.png" in out.splitlines()[-1]

    report = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    table = report["corruptions"]
    assert table["source"] == GENERATED_CORRUPTIONS and table["images_per_cell"] == 40
    assert table["clean_accuracy"] == report["top1"]
    assert list(table["accuracy"]["contrast"]) == ["1", "5"]
    assert (tmp_path / "a" / "corruptions.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*command, "--output", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "evaluation.json").read_text())["corruptions"]["accuracy"] == table["accuracy"]
