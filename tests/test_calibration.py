"""Calibration, precision/recall/F1 and the most confident mistakes: evaluate() and `resnet-cifar evaluate`."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from checkpoints import CIFAR10_PREPROCESSING, write_checkpoint
from resnet_cifar import load_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.data import load_dataset
from resnet_cifar.evaluation import Metrics, evaluate


class GivenLogits(nn.Module):
    """A 'model' whose input is its output, so a test chooses every prediction and confidence."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def two_class_logits(confidence: float, predicted: int) -> list[float]:
    """Logits whose softmax gives `predicted` the probability `confidence` (two classes)."""
    margin = math.log(confidence / (1 - confidence))
    return [margin, 0.0] if predicted == 0 else [0.0, margin]


def batches(cases: list[tuple[float, int, int]], size: int):
    """(logits, labels) batches of `size` from (confidence, predicted, label) cases."""
    for start in range(0, len(cases), size):
        chunk = cases[start:start + size]
        yield (torch.tensor([two_class_logits(c, p) for c, p, _ in chunk]),
               torch.tensor([label for _, _, label in chunk]))


# Two occupied bins of the 15: (14/15, 1] holds 0.95 and 0.97, both right;
# (9/15, 10/15] holds 0.61, 0.63, 0.65 and 0.66, one of them right.
CASES = [(0.95, 0, 0), (0.97, 1, 1), (0.61, 0, 0), (0.63, 0, 1), (0.65, 1, 0), (0.66, 1, 0)]
# ECE = 2/6 |1 - 0.96| + 4/6 |0.25 - 0.6375|
KNOWN_ECE = 2 / 6 * 0.04 + 4 / 6 * 0.3875


def test_ece_of_a_hand_made_example():
    metrics = evaluate(GivenLogits(), lambda: batches(CASES, size=4), num_classes=2)
    assert metrics.ece == pytest.approx(KNOWN_ECE)
    bins = metrics.reliability
    assert bins["images"] == [0] * 9 + [4] + [0] * 4 + [2]
    assert bins["confidence"][9] == pytest.approx(0.6375) and bins["accuracy"][9] == 0.25
    assert bins["confidence"][14] == pytest.approx(0.96) and bins["accuracy"][14] == 1.0
    assert bins["accuracy"][0] is None and bins["upper_edge"][9] == pytest.approx(10 / 15)


def test_ece_is_zero_when_confidence_matches_accuracy():
    # 0.75 confident throughout and right three times in four.
    cases = [(0.75, 0, 0), (0.75, 1, 1), (0.75, 0, 0), (0.75, 1, 0)]
    assert evaluate(GivenLogits(), lambda: batches(cases, size=3), num_classes=2).ece == pytest.approx(0, abs=1e-6)


def test_precision_recall_f1_of_a_hand_made_confusion():
    # Rows true, columns predicted. Class 2 is never predicted.
    confusion = torch.tensor([[3, 1, 0], [2, 2, 0], [0, 1, 0]])
    metrics = Metrics(confusion, loss_sum=0.0, top5_correct=0)
    assert metrics.per_class_precision == pytest.approx([3 / 5, 2 / 4, 0])
    assert metrics.per_class_recall == pytest.approx([3 / 4, 2 / 4, 0])
    assert metrics.per_class_recall == metrics.per_class_accuracy
    assert metrics.per_class_f1 == pytest.approx([2 * 0.6 * 0.75 / 1.35, 0.5, 0])


def test_evaluate_keeps_the_most_confident_mistakes():
    cases = [(0.9, 0, 1), (0.8, 0, 0), (0.99, 1, 1), (0.7, 1, 0), (0.95, 0, 1), (0.6, 1, 0)]
    metrics = evaluate(GivenLogits(), lambda: batches(cases, size=2), num_classes=2, mistakes=2)
    assert [(m.index, m.label, m.predicted) for m in metrics.mistakes] == [(4, 1, 0), (0, 1, 0)]
    assert [m.probability for m in metrics.mistakes] == pytest.approx([0.95, 0.9])
    # Asking for more than there are gives every mistake, never a right answer.
    metrics = evaluate(GivenLogits(), lambda: batches(cases, size=4), num_classes=2, mistakes=10)
    assert [m.index for m in metrics.mistakes] == [4, 0, 3, 5]


def direct_probabilities(checkpoint, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities computed the plain way, to check the command against."""
    model = load_checkpoint(checkpoint)
    mean = torch.tensor(CIFAR10_PREPROCESSING["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_PREPROCESSING["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((images.float() / 255 - mean) / std).softmax(1).double()


def test_cli_reports_calibration_precision_and_only_mistakes(cifar10_dir, tmp_path, capsys, monkeypatch):
    import resnet_cifar.pictures as pictures

    drawn = {}
    real_plot = pictures.plot_mistakes

    def plot_and_keep(images, mistakes, path, title):
        drawn.update(images=images.clone(), mistakes=list(mistakes))
        real_plot(images, mistakes, path, title)

    monkeypatch.setattr(pictures, "plot_mistakes", plot_and_keep)
    checkpoint = write_checkpoint(tmp_path / "model.pt", seed=1)
    output = tmp_path / "eval"
    assert main(["evaluate", str(checkpoint), "--dataset", "cifar10", "--data-dir", str(cifar10_dir),
                 "--output", str(output), "--batch-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "ECE" in printed and "precision" in printed
    report = json.loads((output / "evaluation.json").read_text())

    test = load_dataset("cifar10", cifar10_dir, splits=("test",)).test
    probabilities = direct_probabilities(checkpoint, test.images)
    confidence, predicted = probabilities.max(1)
    right = predicted == test.labels
    bins = (confidence * 15).ceil().long().clamp(1, 15) - 1
    ece = sum(abs(right[bins == b].double().sum() - confidence[bins == b].sum()) for b in range(15)) / len(right)
    assert report["ece"] == pytest.approx(float(ece), abs=1e-5)
    assert sum(report["calibration"]["images"]) == 100

    for k, name in enumerate(report["classes"]):
        said = predicted == k
        precision = float((said & right).sum() / said.sum()) if said.any() else 0.0
        assert report["per_class_precision"][name] == pytest.approx(precision)
        assert report["per_class_recall"][name] == report["per_class_accuracy"][name]

    # The grid: the 16 most confident of the misclassified images, each captioned with its own classes.
    wrong = (~right).nonzero()[:, 0]
    expected = wrong[confidence[wrong].argsort(descending=True)][:16]
    assert [m["index"] for m in report["mistakes"]] == expected.tolist()
    assert drawn["mistakes"] == report["mistakes"]
    for image, mistake in zip(drawn["images"], report["mistakes"]):
        index = mistake["index"]
        assert torch.equal(image, test.images[index])
        assert not right[index]
        assert mistake["true"] == report["classes"][test.labels[index]] != mistake["predicted"]
        assert mistake["predicted"] == report["classes"][predicted[index]]
        assert mistake["probability"] == pytest.approx(float(confidence[index]), abs=1e-5)
    for picture in ("reliability.png", "mistakes.png"):
        assert (output / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
