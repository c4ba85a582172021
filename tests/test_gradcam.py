"""Grad-CAM: the map points at the evidence, works for every network of the zoo, and `predict --explain`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import resnet_cifar
from checkpoints import write_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.gradcam import grad_cam, last_stage

pytestmark = pytest.mark.usefixtures("one_thread")

PATCH = 8


def toy_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grey noise with one coloured 8x8 patch in a random corner; the patch's colour (red or blue) is the class.

    Returns the normalised images, the classes and the corners (0 top-left, 1 top-right,
    2 bottom-left, 3 bottom-right).
    """
    x = torch.rand(n, 1, 32, 32, generator=generator).expand(n, 3, 32, 32) * 0.6 + 0.2
    x = x.clone()
    y = torch.randint(0, 2, (n,), generator=generator)
    corner = torch.randint(0, 4, (n,), generator=generator)
    for i in range(n):
        top, left = (corner[i] // 2) * (32 - PATCH), (corner[i] % 2) * (32 - PATCH)
        x[i, :, top:top + PATCH, left:left + PATCH] = 0
        x[i, 2 * y[i], top:top + PATCH, left:left + PATCH] = 1  # channel 0 red, 2 blue
    return (x - 0.5) / 0.25, y, corner


def test_map_is_largest_where_the_evidence_is():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = resnet_cifar.create_model("resnet20", num_classes=2)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(40):
        x, y, _ = toy_batch(32, generator)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    x, y, corner = toy_batch(64, generator)
    maps, predicted, probability = grad_cam(model, x)
    assert maps.shape == (64, 32, 32)
    assert (predicted == y).float().mean() > 0.9  # the toy task is learnt, so the maps explain a real decision
    peak = maps.flatten(1).argmax(1)
    row, column = peak // 32, peak % 32
    assert torch.equal((row >= 16).long() * 2 + (column >= 16).long(), corner)
    with torch.no_grad():
        assert torch.allclose(probability, model.eval()(x).softmax(1).amax(1), atol=1e-5)


def settle_batch_norm(model: nn.Module, x: torch.Tensor) -> None:
    """Set BatchNorm statistics from one batch, so a freshly built deep network stays finite in eval mode."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average: after one batch, that batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


@pytest.mark.parametrize("name", resnet_cifar.list_models())
def test_every_network_of_the_zoo(name):
    torch.manual_seed(0)
    model = resnet_cifar.create_model(name)
    x = torch.randn(2, 3, 32, 32)
    settle_batch_norm(model, torch.randn(8, 3, 32, 32))
    assert last_stage(model) is getattr(model, model.stage_names[-1])
    trainable = [p.requires_grad for p in model.parameters()]
    maps, predicted, _ = grad_cam(model, x)
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.amax((1, 2)).tolist() == pytest.approx([1.0, 1.0])
    with torch.no_grad():
        assert torch.equal(predicted, model(x).argmax(1))
    assert all(p.grad is None for p in model.parameters())  # the weights are left as they were
    assert [p.requires_grad for p in model.parameters()] == trainable


def test_predict_explain_writes_one_overlay_per_readable_image(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "model.pt")
    images = tmp_path / "images"
    (images / "more").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / "cat.png")
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(images / "more" / "cat.png")
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    out = tmp_path / "explained"
    assert main(["predict", str(checkpoint), str(images), "--explain", str(out), "--format", "csv",
                 "--top-k", "1", "--batch-size", "1"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "Traceback" not in captured.err
    assert captured.out.count("cat.png") == 2  # both still predicted
    assert sorted(p.name for p in out.iterdir()) == ["cat.png-2.png", "cat.png.png"]
    for picture in out.iterdir():
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_into_a_file_is_refused(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "model.pt")
    (tmp_path / "taken").write_text("a file")
    assert main(["predict", str(checkpoint), str(tmp_path), "--explain", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--explain" in err
