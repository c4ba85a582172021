"""`predict MODEL.onnx` and `evaluate MODEL.onnx`: the output a checkpoint gives, from onnxruntime, without torch
for predict, and one sentence for every file that cannot be used."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from checkpoints import write_checkpoint
from conftest import foreign_onnx, write_cifar10
from resnet_cifar.checkpoint import load_checkpoint, read_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.export import export, run_metadata
from resnet_cifar.runs.reader import checkpoint_to_use

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A checkpoint whose run validated with selective TTA, its data, its ONNX file and three images."""
    root = tmp_path_factory.mktemp("onnx")
    data = write_cifar10(root / "data", n_train=200, n_test=40).parent
    config = {"dataset": "cifar10", "data_dir": str(data), "val_split": 40, "seed": 3, "tta": "flip-translate",
              "tta_fraction": 0.5}
    checkpoint = write_checkpoint(root / "model.pt", ema=True, config=config)
    onnx_file = root / "model.onnx"
    export(load_checkpoint(checkpoint), onnx_file, "onnx", run_metadata(checkpoint, read_checkpoint(checkpoint)))
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in (("a.png", (32, 32, 3)), ("b.jpg", (50, 70, 3)), ("c.bmp", (40, 40))):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(images / name)
    return {"data": data, "checkpoint": checkpoint, "onnx": onnx_file, "images": images}


def run_json(args: list[str], capsys) -> list[dict]:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_gives_what_the_checkpoint_gives(exported, capsys):
    images = str(exported["images"])
    from_checkpoint = run_json(["predict", str(exported["checkpoint"]), images, "--format", "json"], capsys)
    from_onnx = run_json(["predict", str(exported["onnx"]), images, "--format", "json", "--batch-size", "2"], capsys)
    assert [row["file"] for row in from_onnx] == [row["file"] for row in from_checkpoint] and len(from_onnx) == 3
    for ours, theirs in zip(from_onnx, from_checkpoint):
        assert [p["class"] for p in ours["predictions"]] == [p["class"] for p in theirs["predictions"]]
        assert [p["probability"] for p in ours["predictions"]] == pytest.approx(
            [p["probability"] for p in theirs["predictions"]], abs=1e-5)
    for fmt in ("table", "csv"):
        assert main(["predict", str(exported["checkpoint"]), images, "--format", fmt, "--top-k", "2"]) == 0
        checkpoint_lines = capsys.readouterr().out.splitlines()
        assert main(["predict", str(exported["onnx"]), images, "--format", fmt, "--top-k", "2"]) == 0
        onnx_lines = capsys.readouterr().out.splitlines()
        assert onnx_lines[0] == checkpoint_lines[0] and len(onnx_lines) == len(checkpoint_lines)


def test_predict_on_an_onnx_file_imports_no_torch(exported):
    probe = ("import sys\nfrom resnet_cifar.cli import main\ncode = main(sys.argv[1:])\n"
             "print('torch' in sys.modules, code)")
    result = subprocess.run([sys.executable, "-c", probe, "predict", str(exported["onnx"]),
                             str(exported["images"] / "a.png")], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.stdout.strip().splitlines()[-1] == "False 0", result.stderr


def test_evaluate_gives_the_checkpoints_report_with_the_runs_views(exported, tmp_path, capsys):
    reports = {}
    for kind in ("checkpoint", "onnx"):
        assert main(["evaluate", str(exported[kind]), "--split", "val", "--data-dir", str(exported["data"]),
                     "--output", str(tmp_path / kind)]) == 0
        printed = capsys.readouterr().out
        assert "resnet20 from" in printed and "EMA weights" in printed
        assert "TTA flip-translate on the 50% least sure (the run's validation)" in printed
        reports[kind] = json.loads((tmp_path / kind / "evaluation.json").read_text())
        assert sorted(path.name for path in (tmp_path / kind).iterdir()) == [
            "confusion.csv", "confusion.png", "evaluation.json", "mistakes.png", "reliability.png"]
    checkpoint, onnx = reports["checkpoint"], reports["onnx"]
    assert (onnx["model"], onnx["weights"], onnx["images"], onnx["seed"]) == ("resnet20", "ema", 40, 3)
    assert onnx["confusion"] == checkpoint["confusion"]
    assert onnx["loss"] == pytest.approx(checkpoint["loss"], rel=1e-4)
    assert onnx["ece"] == pytest.approx(checkpoint["ece"], abs=1e-4)


def test_an_onnx_path_is_used_as_given():
    assert checkpoint_to_use("runs/r20/model.onnx") == Path("runs/r20/model.onnx")


def test_files_that_cannot_be_used_are_one_sentence(exported, tmp_path, capsys):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported["onnx"].read_bytes()[:5000])
    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    image = str(exported["images"] / "a.png")
    data = ["--data-dir", str(exported["data"])]
    cases = [
        (foreign_onnx(tmp_path / "foreign.onnx"), "without resnet-cifar's metadata"),
        (truncated, "is not a readable ONNX model (truncated, corrupt or not ONNX at all)"),
        (text, "is not a readable ONNX model"),
        (tmp_path / "missing.onnx", "does not exist"),
    ]
    for path, says in cases:
        for args in (["predict", str(path), image], ["evaluate", str(path), *data]):
            assert main(args) == 2
            err = capsys.readouterr().err
            assert says in err and str(path) in err and len(err.strip().splitlines()) == 1, err
    onnx_file = str(exported["onnx"])
    for args, says in ((["predict", onnx_file, image, "--explain", str(tmp_path / "cam")], "--explain draws Grad-CAM"),
                       (["predict", onnx_file, image, "--device", "cuda"], "runs on the CPU with onnxruntime"),
                       (["evaluate", onnx_file, *data, "--device", "cuda"], "runs on the CPU with onnxruntime")):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "cam").exists()
