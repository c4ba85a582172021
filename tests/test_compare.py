"""`resnet-cifar compare` and seed groups, on real run folders trained on tiny synthetic data."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import resnet_cifar
from conftest import write_cifar10, write_cifar100
from resnet_cifar.cli import main
from resnet_cifar.runs.group import write_group_summary
from resnet_cifar.runs.reader import read_run

# resnet20 on 16x16 inputs, 150 training images in batches of 50: three steps an epoch, about a second a run.
TINY = ["--preset", "paper", "--val-split", "50", "--batch-size", "50", "--input-size", "16", "--lr", "0.05"]
SEEDS = [0, 1, 2]


def seed_run_dir(group: Path, seed: int) -> Path:
    """Where a seed group keeps seed `seed`'s run, as users see it."""
    return group / f"seed-{seed}"


def train(*args) -> None:
    assert main(["train", *TINY, *map(str, args)]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished runs of 2 and 3 epochs, a seed group of three, and a CIFAR-100 run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    write_cifar10(root / "data", n_train=200, n_test=40)
    write_cifar100(root / "data100", n_train=200, n_test=40)
    train("--data-dir", root / "data", "--epochs", 2, "--output", root / "short")
    train("--data-dir", root / "data", "--epochs", 3, "--lr", 0.1, "--output", root / "long")
    for seed in SEEDS:
        train("--data-dir", root / "data", "--epochs", 2, "--seed", seed,
              "--output", seed_run_dir(root / "group", seed))
    train("--dataset", "cifar100", "--data-dir", root / "data100", "--epochs", 1, "--output", root / "cifar100")
    torch.set_num_threads(threads)
    return root


def still_training(run, target):
    """A copy of finished `run` as it looked while training towards twice its epochs: no summary yet."""
    shutil.copytree(run, target)
    (target / "summary.json").unlink()
    config = yaml.safe_load((target / "config.yaml").read_text())
    config["epochs"] *= 2
    (target / "config.yaml").write_text(yaml.safe_dump(config))
    return target


def summary(run):
    return json.loads((run / "summary.json").read_text())


def compare(*args) -> int:
    return main(["compare", *map(str, args)])


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_runs_of_different_lengths_and_one_still_training(runs, tmp_path, capsys):
    unfinished = still_training(runs / "long", tmp_path / "unfinished")
    assert compare(runs / "short", runs / "long", unfinished, "--output", tmp_path / "out") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["run", "status", "preset", "model", "epochs"]
    assert out[0].split()[-1] == "lr"  # the one setting that differs, beyond the epochs
    short, long, running = out[1:4]
    assert short.split()[:5] == [str(runs / "short"), "finished", "paper", "resnet20", "2"]
    assert running.split()[:5] == [str(unfinished), "unfinished", "paper", "resnet20", "3/6"]

    rows = read_csv(tmp_path / "out" / "compare.csv")
    assert [row["run"] for row in rows] == [str(runs / "short"), str(runs / "long"), str(unfinished)]
    for row, run in zip(rows[:2], (runs / "short", runs / "long")):
        assert float(row["best_val_acc"]) == summary(run)["best_val_acc"]
        assert float(row["final_val_acc"]) == summary(run)["final_val_acc"]
        assert float(row["train_seconds"]) == pytest.approx(summary(run)["train_seconds"])
        assert float(row["images_per_second"]) == pytest.approx(summary(run)["images_per_second"])
        assert row["best_val_acc_std"] == ""
    # The unfinished run shows what its epochs say: the same epochs as the run it was copied from.
    assert (rows[2]["status"], rows[2]["epochs_done"], rows[2]["epochs"]) == ("unfinished", "3", "6")
    assert float(rows[2]["best_val_acc"]) == summary(runs / "long")["best_val_acc"]
    assert rows[2]["images_per_second"] == ""
    assert [row["lr"] for row in rows] == ["0.05", "0.1", "0.1"]
    assert "seed" not in rows[0]  # the same for all three

    report = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert "lr" in report["differing_settings"] and "epochs" not in report["differing_settings"]
    assert report["runs"][1]["best_val_acc"] == summary(runs / "long")["best_val_acc"]
    assert (tmp_path / "out" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_shows_the_mean_corruption_accuracy_of_runs_evaluated_under_corruption(runs, tmp_path, capsys):
    evaluated = shutil.copytree(runs / "short", tmp_path / "evaluated")
    assert main(["evaluate", str(evaluated), "--split", "val", "--corruptions", "contrast,fog", "--severities", "2",
                 "--output", str(evaluated / "evaluation")]) == 0
    table = json.loads((evaluated / "evaluation" / "evaluation.json").read_text())["corruptions"]
    capsys.readouterr()
    assert compare(evaluated, runs / "long", "--output", tmp_path / "out") == 0
    out = capsys.readouterr().out.splitlines()
    assert "corruption acc" in out[0]
    assert f"{table['mean_accuracy']:.2%} (generated)" in out[1] and out[2].split()[-2:] != ["(generated)"]
    assert out[3].startswith("corruption acc:") and "CIFAR-10-C style (generated)" in out[3]
    rows = read_csv(tmp_path / "out" / "compare.csv")
    assert float(rows[0]["corruption_acc"]) == table["mean_accuracy"] and rows[1]["corruption_acc"] == ""
    assert rows[0]["corruption_source"] == "CIFAR-10-C style (generated)"


def test_a_finished_run_being_extended_is_unfinished(runs, tmp_path):
    extended = shutil.copytree(runs / "short", tmp_path / "extended")  # `train --resume --epochs 4` rewrote its config
    config = yaml.safe_load((extended / "config.yaml").read_text())
    (extended / "config.yaml").write_text(yaml.safe_dump({**config, "epochs": 4}))
    run = read_run(extended)
    assert not run.finished and run.epochs_done == 2
    assert read_run(runs / "short").finished


def test_group_summary_agrees_with_the_runs_own_summaries(runs):
    written = write_group_summary(runs / "group", SEEDS)
    group = json.loads((runs / "group" / "group.json").read_text())
    assert group == written
    assert group["seeds"] == SEEDS and group["finished"] == SEEDS
    for key in ("best_val_acc", "final_val_acc", "train_seconds", "images_per_second"):
        values = np.array([summary(seed_run_dir(runs / "group", seed))[key] for seed in SEEDS])
        assert group[key]["n"] == 3
        assert group[key]["mean"] == pytest.approx(values.mean())
        assert group[key]["std"] == pytest.approx(values.std(ddof=1))
        assert (group[key]["min"], group[key]["max"]) == (values.min(), values.max())
    assert [run["best_val_acc"] for run in group["runs"]] == [
        summary(seed_run_dir(runs / "group", seed))["best_val_acc"] for seed in SEEDS]


def test_group_summary_of_a_partly_trained_group(runs, tmp_path):
    group = tmp_path / "group"
    shutil.copytree(seed_run_dir(runs / "group", 0), seed_run_dir(group, 0))
    still_training(seed_run_dir(runs / "group", 1), seed_run_dir(group, 1))
    (seed_run_dir(group, 2)).mkdir()  # seed 2 has just started: config.yaml at most, no epoch yet
    shutil.copy(seed_run_dir(runs / "group", 2) / "config.yaml", seed_run_dir(group, 2))

    partial = write_group_summary(group, [0, 1, 2, 3])  # seed 3 not started at all
    assert partial["seeds"] == [0, 1, 2, 3] and partial["finished"] == [0]
    assert [run["finished"] for run in partial["runs"]] == [True, False, False, False]
    assert [run["epochs_done"] for run in partial["runs"]] == [2, 2, 0, 0]
    best = summary(seed_run_dir(group, 0))["best_val_acc"]
    assert partial["best_val_acc"] == {"n": 1, "mean": best, "std": None, "min": best, "max": best}
    # Later calls remember the planned seeds from group.json.
    assert write_group_summary(group)["seeds"] == [0, 1, 2, 3]


def test_compare_shows_a_group_as_mean_and_std(runs, tmp_path, capsys):
    group = write_group_summary(runs / "group", SEEDS)
    assert compare(runs / "group", runs / "short", "--output", tmp_path) == 0
    printed = capsys.readouterr().out.splitlines()[1]
    assert printed.startswith(f"{runs / 'group'}  3 of 3 seeds finished")
    mean, std = group["best_val_acc"]["mean"], group["best_val_acc"]["std"]
    assert f"{100 * mean:.2f} ± {100 * std:.2f}%" in printed
    rows = read_csv(tmp_path / "compare.csv")
    assert rows[0]["kind"] == "seed group" and rows[1]["kind"] == "run"
    assert float(rows[0]["best_val_acc"]) == pytest.approx(mean)
    assert float(rows[0]["best_val_acc_std"]) == pytest.approx(std)
    assert (rows[0]["seed"], rows[1]["seed"]) == ("0 1 2", "0")
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report["groups"][str(runs / "group")]["best_val_acc"] == group["best_val_acc"]


def test_group_curves_average_the_seeds(runs):
    from resnet_cifar.commands.compare import read_entry

    entry = read_entry(runs / "group")
    val = [read_run(seed_run_dir(runs / "group", seed)).rows for seed in SEEDS]
    curve = entry.curves()["val_acc"]
    assert [epoch for epoch, _, _ in curve] == [1, 2]
    for epoch, mean, std in curve:
        values = np.array([rows[epoch - 1]["val_acc"] for rows in val])
        assert mean == pytest.approx(values.mean()) and std == pytest.approx(values.std(ddof=1))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_input_is_one_sentence(runs, tmp_path, capsys):
    no_metrics = tmp_path / "starting"
    no_metrics.mkdir()
    shutil.copy(runs / "short" / "config.yaml", no_metrics)
    assert compare(runs / "short", no_metrics) == 2
    assert "has no metrics.csv" in one_line_error(capsys)

    assert compare(runs / "short", runs / "cifar100") == 2
    err = one_line_error(capsys)
    assert "10 classes" in err and "100" in err and str(runs / "cifar100") in err

    assert compare(runs / "short", runs / "data") == 2
    assert "is not a run folder" in one_line_error(capsys)
    assert compare(tmp_path / "missing") == 2
    assert "does not exist" in one_line_error(capsys)
    assert compare(runs / "short" / "summary.json") == 2
    assert "is a file" in one_line_error(capsys)

    broken = shutil.copytree(runs / "short", tmp_path / "broken")
    (broken / "metrics.csv").write_text("epoch,val_acc\n1,high\n")
    assert compare(broken) == 2
    assert "not a number" in one_line_error(capsys)


def test_reading_runs_does_not_import_matplotlib():
    code = ("import sys, resnet_cifar.cli, resnet_cifar.commands.compare, resnet_cifar.gradcam, "
            "resnet_cifar.pictures, resnet_cifar.runs; sys.exit('matplotlib' in sys.modules)")
    source = str(Path(resnet_cifar.__file__).parents[1])  # this checkout's package, not an installed one
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": source}).returncode == 0
