"""`resnet-cifar export`: ONNX and TorchScript files that agree with PyTorch and carry their metadata."""
from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import re
import sys

import numpy as np
import pytest
import torch

import resnet_cifar.export
from checkpoints import CIFAR10_CLASSES, CIFAR10_PREPROCESSING, checkpoint_dict, write_checkpoint
from resnet_cifar import load_checkpoint
from resnet_cifar.checkpoint import read_checkpoint, save_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.export import run_metadata

# A run's config as the file records it: data_dir is left out (a path of the training machine), labels from
# training's default.
CONFIG = {"dataset": "cifar10", "data_dir": "/data", "val_split": 50, "seed": 3, "tta": "flip-translate",
          "tta_fraction": 0.25}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run") / "model.pt", ema=True, config=CONFIG)


@pytest.fixture(scope="module")
def onnx_export(checkpoint, tmp_path_factory):
    """Export once through the CLI; return the file and what the command printed."""
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(path)]) == 0
    return path, out.getvalue()


def reference_logits(checkpoint, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return load_checkpoint(checkpoint)(x).numpy()


def test_onnx_matches_pytorch_at_any_batch_size(checkpoint, onnx_export):
    import onnxruntime

    path, printed = onnx_export
    figure = float(re.search(r"Largest logit difference to PyTorch \(fp32, CPU, relative to the largest logit above 1\): "
                              r"(\S+)", printed)[1])
    assert figure < 1e-4
    assert "EMA weights" in printed
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "images"
    for batch in (1, 5):
        x = torch.randn(batch, 3, 32, 32)
        [logits] = session.run(None, {"images": x.numpy()})
        assert np.abs(logits - reference_logits(checkpoint, x)).max() < 1e-4


def test_onnx_metadata(checkpoint, onnx_export):
    import onnx

    props = {p.key: json.loads(p.value) for p in onnx.load(onnx_export[0]).metadata_props}
    assert props == {
        "classes": CIFAR10_CLASSES, **CIFAR10_PREPROCESSING,  # the keys of older files keep their names
        "written_by": "resnet-cifar", "format_version": 1, "network": "resnet20", "weights": "ema",
        "precision": "fp32", "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "dataset": "cifar10", "val_split": 50, "seed": 3, "labels": "fine", "tta": "flip-translate",
        "tta_fraction": 0.25,
    }


def test_a_run_without_a_config_records_trainings_defaults_but_no_dataset(tmp_path):
    path = write_checkpoint(tmp_path / "model.pt")
    values = run_metadata(path, read_checkpoint(path))
    assert "dataset" not in values
    assert {key: values[key] for key in ("val_split", "seed", "labels", "tta", "tta_fraction")} == {
        "val_split": 5000, "seed": 0, "labels": "fine", "tta": "none", "tta_fraction": 1.0}


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_matches_pytorch_and_carries_metadata(checkpoint, tmp_path, capsys):
    path = tmp_path / "model.ts"
    assert main(["export", str(checkpoint), "--format", "torchscript", "--output", str(path)]) == 0
    assert "Largest logit difference" in capsys.readouterr().out
    extra = {key: "" for key in ("classes", "image_size", "input_size", "mean", "std")}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["classes"]) == CIFAR10_CLASSES
    assert json.loads(extra["std"]) == CIFAR10_PREPROCESSING["std"]
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert np.abs(loaded(x).numpy() - reference_logits(checkpoint, x)).max() < 1e-4


def test_missing_onnx_packages_name_the_extra(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'resnet-cifar[export]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_a_disagreeing_export_is_not_kept(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(resnet_cifar.export, "TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="no file was kept"):
        resnet_cifar.export.export(load_checkpoint(checkpoint), tmp_path / "m.ts", "torchscript")
    assert not (tmp_path / "m.ts").exists()


class CreatesFile:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


def test_bad_checkpoints_are_refused_in_one_line(tmp_path, capsys):
    truncated = write_checkpoint(tmp_path / "model.pt")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    torch.save({"model": CreatesFile(tmp_path / "pwned")}, tmp_path / "evil.pt")
    other_model = checkpoint_dict("resnet20")
    other_model["model"] = checkpoint_dict("resnet32")["model"]
    save_checkpoint(other_model, tmp_path / "other.pt")
    for path, reason in ((truncated, "truncated or corrupt"), (tmp_path / "evil.pt", "could run code"),
                         (tmp_path / "other.pt", "does not fit this model")):
        assert main(["export", str(path), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "m.onnx").exists()


def test_bad_flags(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "model.pt")
    with pytest.raises(SystemExit):
        main(["export", str(checkpoint), "--format", "tflite", "--output", str(tmp_path / "m.tflite")])
    assert main(["export", str(checkpoint), "--format", "torchscript", "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_an_existing_output_is_replaced_only_with_overwrite(checkpoint, tmp_path, capsys):
    output = tmp_path / "model.ts"
    output.write_bytes(b"an older export")
    args = ["export", str(checkpoint), "--format", "torchscript", "--output", str(output)]
    assert main(args) == 2
    assert "pass --overwrite" in capsys.readouterr().err and output.read_bytes() == b"an older export"
    assert main(args + ["--overwrite"]) == 0
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert np.abs(torch.jit.load(str(output))(x).numpy() - reference_logits(checkpoint, x)).max() < 1e-4
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.ts"]  # no temporary left beside it
