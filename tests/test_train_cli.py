"""`resnet-cifar train` end to end on a tiny synthetic CIFAR-10: every file of the run folder, reruns, refusals."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import write_cifar10
from resnet_cifar.checkpoint import load_checkpoint
from resnet_cifar.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

# resnet20 on 16x16 inputs, 150 training images in batches of 50: three steps an epoch.
TINY = ["--preset", "paper", "--val-split", "50", "--batch-size", "50", "--input-size", "16", "--lr", "0.05"]


@pytest.fixture
def tiny_data(tmp_path):
    write_cifar10(tmp_path / "data", n_train=200, n_test=40)
    return tmp_path / "data"


def train(*args) -> int:
    return main(["train", *map(str, args)])


def test_run_folder_holds_every_file(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(*TINY, "--data-dir", tiny_data, "--epochs", 2, "--ema", "--tta", "flip", "--evaluate-test",
                 "--output", run) == 0
    err = capsys.readouterr().err
    assert err.count("epoch ") >= 2 and "val loss" in err  # one line per epoch (stderr is not a terminal here)

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "resnet20" and config["epochs"] == 2 and config["ema"] is True

    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "train_seconds",
                            "seconds"]
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    for row in rows:
        assert float(row["val_acc"]) * 50 == pytest.approx(round(float(row["val_acc"]) * 50))  # whole samples of 50
        assert float(row["train_acc"]) * 150 == pytest.approx(round(float(row["train_acc"]) * 150))

    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_val_acc"] == max(float(row["val_acc"]) for row in rows)
    assert summary["test_images"] == 40 and 0 <= summary["test_acc"] <= 1
    assert summary["images_per_second"] > 0 and summary["steps"] == 6

    for name in ("last.pt", "best.pt"):
        state = torch.load(run / "checkpoints" / name, weights_only=True)
        for key in ("format_version", "model_name", "model_kwargs", "model", "classes", "preprocessing", "ema",
                    "optimizer", "scheduler", "scaler", "rng", "epoch", "step", "batch", "tally", "config"):
            assert key in state, key
        assert state["preprocessing"]["input_size"] == 16 and len(state["preprocessing"]["mean"]) == 3
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["batch"] == 0
    model = load_checkpoint(run / "checkpoints" / "best.pt")
    assert model.uses_ema and model(torch.zeros(1, 3, 16, 16)).shape == (1, 10)


def test_config_file_reruns_a_run_and_flags_override_it(tiny_data, tmp_path):
    first = tmp_path / "first"
    assert train(*TINY, "--data-dir", tiny_data, "--epochs", 1, "--output", first) == 0
    second = tmp_path / "second"
    assert train("--config", first / "config.yaml", "--seed", 3, "--output", second) == 0
    a, b = (yaml.safe_load((run / "config.yaml").read_text()) for run in (first, second))
    assert b.pop("seed") == 3 and a.pop("seed") == 0
    assert a == b


def test_existing_run_is_not_overwritten_silently(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(*TINY, "--data-dir", tiny_data, "--epochs", 1, "--output", run) == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert train(*TINY, "--data-dir", tiny_data, "--epochs", 1, "--output", run) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    (run / "notes.txt").write_text("mine")
    assert train(*TINY, "--data-dir", tiny_data, "--epochs", 1, "--seed", 1, "--output", run, "--overwrite") == 0
    assert (run / "notes.txt").read_text() == "mine"  # only the tool's own files are replaced
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1


def test_unknown_config_key_is_one_sentence(tiny_data, tmp_path, capsys):
    config = tmp_path / "my.yaml"
    config.write_text("epochs: 1\nbatchsize: 64\n")
    assert train("--config", config, "--data-dir", tiny_data, "--output", tmp_path / "run") == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown setting 'batchsize'" in err and str(config) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_resume_extends_a_finished_run(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(*TINY, "--data-dir", tiny_data, "--epochs", 1, "--output", run) == 0
    assert train("--resume", run) == 2
    assert "pass --epochs N" in capsys.readouterr().err
    assert train("--resume", run, "--lr", 0.1) == 2
    assert "--lr cannot be given" in capsys.readouterr().err
    assert train("--resume", run / "checkpoints" / "last.pt", "--epochs", 2) == 0
    with open(run / "metrics.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 6


def test_init_from_torchvision_weights_and_default_run_folder(tiny_data, tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    monkeypatch.chdir(tmp_path)
    assert train(*TINY, "--data-dir", tiny_data, "--epochs", 1, "--model", "resnet18", "--stem", "imagenet",
                 "--init-from", weights, "--lr", 1e-9, "--weight-decay", 0) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("paper-")
    trained = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert torch.allclose(trained["conv1.weight"], torch.load(weights, weights_only=True)["conv1.weight"], atol=1e-6)


def test_resume_needs_a_run_folder_or_its_checkpoint(tmp_path, capsys):
    assert train("--resume", tmp_path) == 2
    assert "holds no checkpoints/last.pt" in capsys.readouterr().err
    stray = tmp_path / "model.pt"
    stray.write_bytes(b"")
    assert train("--resume", stray) == 2
    assert "inside a run folder's checkpoints/" in capsys.readouterr().err


def test_a_hand_edited_config_is_said_on_resume_not_reverted(tmp_path, capsys):
    write_cifar10(tmp_path / "data", n_train=120, n_test=20)
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper", "--data-dir", str(tmp_path / "data"), "--val-split", "40",
                 "--batch-size", "40", "--epochs", "1", "--output", str(run)]) == 0
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.1", "lr: 0.3"))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml says lr: 0.3, but the run was trained with 0.1" in err and len(err.splitlines()) == 1


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    from resnet_cifar.commands.train import _claimed

    monkeypatch.chdir(tmp_path)
    base = Path("runs") / "fast-20261201-120000"
    assert [_claimed(base, None) for _ in range(3)] == [base, base.with_name(base.name + "-2"),
                                                         base.with_name(base.name + "-3")]
    assert _claimed(Path("mine"), "mine") == Path("mine") and not Path("mine").exists()


def test_a_finished_run_ends_with_the_commands_that_use_it_and_evaluate_reproduces_its_figure(tmp_path, capsys):
    """Evaluate's default TTA is the run's, so --split val gives exactly the best validation accuracy reported."""
    write_cifar10(tmp_path / "data", n_train=160, n_test=20)
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper", "--data-dir", str(tmp_path / "data"), "--val-split", "60",
                 "--batch-size", "20", "--epochs", "2", "--tta", "flip-translate", "--output", str(run)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    best = run / "checkpoints" / "best.pt"
    assert lines[-4] == "Next:"
    assert lines[-3].strip() == f"resnet-cifar evaluate {best} --split val --output {run / 'evaluation'}"
    assert lines[-2].strip().startswith(f"resnet-cifar predict {best} ")
    assert lines[-1].strip() == f"resnet-cifar export {best} --format onnx --output {run / 'model.onnx'}"

    assert main(lines[-3].split()[1:]) == 0
    out = capsys.readouterr().out
    assert "TTA flip-translate (the run's validation)" in out
    evaluation = json.loads((run / "evaluation" / "evaluation.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert evaluation["top1"] == summary["best_val_acc"]

    assert main(["evaluate", str(run), "--split", "val", "--output", str(tmp_path / "from-folder")]) == 0
    assert f"from {best}" in capsys.readouterr().out  # the run folder stands for its best checkpoint
    assert json.loads((tmp_path / "from-folder" / "evaluation.json").read_text())["top1"] == evaluation["top1"]


def test_make_train_passes_its_arguments_on():
    import subprocess

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(root), "train",
                             "ARGS=--data-dir ~/data --preset fast"], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1].endswith("resnet-cifar train --data-dir ~/data --preset fast")
