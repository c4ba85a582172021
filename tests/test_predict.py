"""`resnet-cifar predict` and resnet_cifar.predict: images in, classes and probabilities out."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import resnet_cifar
from checkpoints import CIFAR10_PREPROCESSING, write_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.inference import preprocess


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run") / "model.pt")


@pytest.fixture(scope="module")
def model(checkpoint):
    return resnet_cifar.load_checkpoint(checkpoint)


@pytest.fixture
def images(tmp_path):
    """A folder of three images of different sizes and modes, a text file and a hidden non-image."""
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(folder / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), mode="L").save(folder / "nested" / "c.bmp")
    (folder / "notes.txt").write_text("not an image")
    (folder / "._a.png").write_bytes(b"macOS resource fork")
    return folder


def test_api_accepts_paths_pil_images_and_tensors(model, images):
    path = images / "a.png"
    pil = Image.open(path)
    uint8 = torch.from_numpy(np.array(pil)).permute(2, 0, 1)
    results = resnet_cifar.predict(model, [path, pil, uint8, uint8.float() / 255, uint8[None]], top_k=3)
    assert len(results) == 5
    assert results[0].source == str(path) and results[1].source == "image 1"
    for result in results:
        assert len(result.classes) == 3
        assert result.probabilities == sorted(result.probabilities, reverse=True)
        assert result.classes == results[0].classes
        assert result.probabilities == pytest.approx(results[0].probabilities, abs=1e-5)


def test_api_probabilities_match_the_model(model, images):
    pil = Image.open(images / "a.png")
    [result] = resnet_cifar.predict(model, pil, top_k=100)
    assert len(result.classes) == 10 and sum(result.probabilities) == pytest.approx(1, abs=1e-5)
    x = torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None].float() / 255
    mean = torch.tensor(CIFAR10_PREPROCESSING["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_PREPROCESSING["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        probabilities = model((x - mean) / std).softmax(1)[0]
    assert result.probabilities[0] == pytest.approx(probabilities.max().item(), abs=1e-5)
    assert result.classes[0] == model.classes[probabilities.argmax()]


def test_preprocessing_resizes_to_image_size_then_input_size():
    image = Image.fromarray(np.full((20, 30, 3), 128, dtype=np.uint8))
    x = preprocess([image], Preprocessing(16, (0.5,) * 3, (0.25,) * 3, input_size=24))
    assert x.shape == (1, 3, 24, 24)
    assert torch.allclose(x, torch.full_like(x, (128 / 255 - 0.5) / 0.25), atol=1e-5)


@pytest.mark.parametrize("image_size, input_size", [(32, None), (32, 48), (16, 24), (40, 32), (32, 17)])
def test_numpy_preprocessing_is_the_torch_one(image_size, input_size):
    """predict with an ONNX file prepares images in numpy: the same normalisation and bilinear resize."""
    preprocessing = Preprocessing(image_size, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), input_size=input_size)
    pixels = np.random.default_rng(image_size).integers(0, 256, (3, 3, image_size, image_size), dtype=np.uint8)
    array = preprocessing.prepare_array(pixels)
    assert array.dtype == np.float32 and array.shape == (3, 3, input_size or image_size, input_size or image_size)
    assert np.abs(array - preprocessing(torch.from_numpy(pixels)).numpy()).max() < 1e-5


def test_files_pil_images_and_tensors_are_resized_alike(images):
    path = images / "b.jpg"
    pil = Image.open(path)
    tensor = torch.from_numpy(np.array(pil.convert("RGB"))).permute(2, 0, 1)
    batch = preprocess([path, pil, tensor], Preprocessing.from_dict(CIFAR10_PREPROCESSING))
    assert batch.shape == (3, 3, 32, 32)
    assert torch.equal(batch[0], batch[1]) and torch.equal(batch[0], batch[2])


def test_api_refuses_bad_input(model):
    with pytest.raises(resnet_cifar.UserError, match="load_checkpoint"):
        resnet_cifar.predict(resnet_cifar.create_model("resnet20"), torch.zeros(3, 32, 32))
    with pytest.raises(resnet_cifar.UserError, match="top_k"):
        resnet_cifar.predict(model, torch.zeros(3, 32, 32), top_k=0)
    with pytest.raises(resnet_cifar.UserError, match="RGB tensors"):
        resnet_cifar.predict(model, torch.zeros(32, 32))


def test_cli_table_walks_folders(checkpoint, images, capsys):
    assert main(["predict", str(checkpoint), str(images), "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["file", "top-1", "top-2"]
    assert [line.split()[0] for line in out[1:]] == [str(images / n) for n in ("a.png", "b.jpg", "nested/c.bmp")]
    assert all(line.count("%") == 2 for line in out[1:])


def test_cli_json_and_csv(checkpoint, images, capsys):
    assert main(["predict", str(checkpoint), str(images / "a.png"), "--format", "json", "--top-k", "3"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["file"] == str(images / "a.png") and len(row["predictions"]) == 3
    assert main(["predict", str(checkpoint), str(images), "--format", "csv", "--top-k", "1", "--batch-size", "2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["rank"] for r in rows] == ["1", "1", "1"]
    assert {r["class"] for r in rows} <= set(resnet_cifar.load_checkpoint(checkpoint).classes)


def test_cli_reports_unreadable_files_and_predicts_the_rest(checkpoint, images, capsys):
    broken = images / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    args = [str(images / "a.png"), str(broken), str(images / "notes.txt"), str(images / "missing.png")]
    assert main(["predict", str(checkpoint), *args, "--format", "csv"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3
    assert "broken.png" in errors[0] and "notes.txt" in errors[1] and "missing.png" in errors[2]
    assert "Traceback" not in captured.err
    assert [row["file"] for row in csv.DictReader(io.StringIO(captured.out))] == [str(images / "a.png")] * 5


def test_cli_empty_folder_and_bad_flags(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(checkpoint), str(tmp_path / "empty")]) == 1
    assert "holds no image files" in capsys.readouterr().err
    assert main(["predict", str(checkpoint), str(tmp_path), "--top-k", "0"]) == 2
    assert main(["predict", str(checkpoint), str(tmp_path), "--device", "tpu:x"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_cli_hostile_checkpoint_runs_nothing(tmp_path, images, capsys):
    import builtins

    class CreatesFile:
        def __reduce__(self):
            return builtins.open, (str(tmp_path / "pwned"), "w")

    torch.save({"model": CreatesFile()}, tmp_path / "evil.pt")
    assert main(["predict", str(tmp_path / "evil.pt"), str(images)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "could run code" in err
    assert not (tmp_path / "pwned").exists()


def test_pil_images_in_memory_are_converted_as_files_are(model, tmp_path):
    gray = np.random.default_rng(2).integers(0, 256, (32, 32), dtype=np.uint8)
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)
    sixteen.save(tmp_path / "sixteen.png")
    images = [Image.fromarray(gray), tmp_path / "sixteen.png", sixteen]
    eight, from_file, in_memory = resnet_cifar.predict(model, images)
    assert from_file.probabilities == pytest.approx(eight.probabilities, abs=1e-6)
    assert in_memory.probabilities == pytest.approx(eight.probabilities, abs=1e-6)
    with pytest.raises(resnet_cifar.UserError, match=r"image passed in memory \(32x32\) has floating-point pixels"):
        resnet_cifar.predict(model, Image.fromarray(gray.astype(np.float32)))
