"""curves.png is written without a display, with or without validation figures."""
from __future__ import annotations

from PIL import Image

from resnet_cifar.pictures import plot_curves


def _rows(with_val: bool):
    return [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.3 * e,
             "val_loss": 2.1 / e if with_val else None, "val_acc": 0.28 * e if with_val else None} for e in (1, 2, 3)]


def test_curves_png_with_and_without_validation(tmp_path):
    for with_val in (True, False):
        path = tmp_path / f"curves{with_val}.png"
        plot_curves(_rows(with_val), path)
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curvesFalse.png", "curvesTrue.png"]  # no temp files left
