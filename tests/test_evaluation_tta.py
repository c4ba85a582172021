"""Selective test-time augmentation: views only for the images the plain prediction is least sure of."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from checkpoints import write_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.evaluation import evaluate, least_confident, split_logits, tta_logits, views_per_image


class Asymmetric(nn.Module):
    """Logits that change when the image is mirrored or shifted, and whose confidence varies from image to image."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[:, :, :2].mean((2, 3)) * 3


def images(n: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 8, 8, generator=generator), torch.randint(0, 4, (n,), generator=generator)


def batches_of(x: torch.Tensor, y: torch.Tensor, size: int):
    return lambda: ((x[i:i + size], y[i:i + size]) for i in range(0, len(x), size))


def test_least_confident_takes_the_lowest_fraction_and_at_least_one():
    confidence = torch.tensor([0.9, 0.3, 0.5, 0.3, 0.99])
    assert least_confident(confidence, 0.4).tolist() == [False, True, False, True, False]
    assert least_confident(confidence, 0.01).tolist() == [False, True, False, False, False]  # ties: the earlier
    assert least_confident(confidence, 1.0).all()


@pytest.mark.parametrize("tta", ["flip", "flip-translate"])
def test_views_go_only_to_the_least_sure_images_whatever_the_batch_size(tta):
    model, (x, y) = Asymmetric().eval(), images()
    with torch.no_grad():
        plain, full = model(x), tta_logits(model, x, tta)
    chosen = least_confident(plain.softmax(1).amax(1), 0.25)
    assert chosen.sum() == 5
    for size in (3, 7, 20):
        logits = torch.cat([logits for logits, _ in split_logits(model, batches_of(x, y, size), tta, 0.25)])
        assert torch.allclose(logits[chosen], full[chosen], atol=1e-6)
        assert torch.equal(logits[~chosen], plain[~chosen])
    every = torch.cat([logits for logits, _ in split_logits(model, batches_of(x, y, 6), tta, 1.0)])
    assert torch.allclose(every, full, atol=1e-6)


def test_selective_accuracy_lies_between_its_parts():
    model, (x, y) = Asymmetric().eval(), images(40)
    with torch.no_grad():
        plain, full = model(x), tta_logits(model, x, "flip-translate")
    chosen = least_confident(plain.softmax(1).amax(1), 0.5)
    expected = torch.where(chosen, full.argmax(1), plain.argmax(1)).eq(y).double().mean().item()
    metrics = evaluate(model, batches_of(x, y, 16), 4, tta="flip-translate", tta_fraction=0.5)
    assert metrics.accuracy == pytest.approx(expected) and metrics.count == 40


def test_evaluate_uses_the_runs_fraction_unless_told(cifar10_dir, tmp_path, capsys):
    config = {"dataset": "cifar10", "data_dir": str(cifar10_dir), "val_split": 50, "seed": 3, "tta": "flip",
              "tta_fraction": 0.25}
    checkpoint = write_checkpoint(tmp_path / "model.pt", config=config)
    assert main(["evaluate", str(checkpoint), "--split", "val", "--output", str(tmp_path / "run")]) == 0
    assert "TTA flip on the 25% least sure (the run's validation)" in capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert (report["tta"], report["tta_fraction"]) == ("flip", 0.25)

    assert main(["evaluate", str(checkpoint), "--split", "val", "--tta-fraction", "1",
                 "--output", str(tmp_path / "all")]) == 0
    assert json.loads((tmp_path / "all" / "evaluation.json").read_text())["tta_fraction"] == 1
    for bad in ("0", "1.5", "-0.2"):
        assert main(["evaluate", str(checkpoint), "--split", "val", "--tta-fraction", bad]) == 2
        err = capsys.readouterr().err
        assert "--tta-fraction must be above 0 and at most 1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("tta, fraction", [("flip-translate", 0.25), ("flip", 0.5), ("flip-translate", 1.0)])
def test_forward_passes_per_image_are_what_the_flop_count_assumes(tta, fraction):
    model, (x, y) = Asymmetric().eval(), images(40)
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    split_logits(model, batches_of(x, y, 16), tta, fraction)
    assert sum(seen) / 40 == views_per_image(tta, fraction)
