"""The benchmarks' per-image torchvision baseline yields normalised tensors of the model's input size."""
from __future__ import annotations

import pytest
import torch

from reference_pipeline import POLICIES, reference_loader, reference_transform
from resnet_cifar.data import Split

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def constant_split(value: int, n: int = 8) -> Split:
    return Split(torch.full((n, 3, 32, 32), value, dtype=torch.uint8), torch.arange(n))


def test_an_image_becomes_normalised_float_channels_first():
    x, label = reference_loader(constant_split(200), reference_transform(32, MEAN, STD), 4, workers=0).dataset[3]
    expected = (200 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and label == 3
    assert torch.allclose(x, expected.view(3, 1, 1).expand(3, 32, 32), atol=1e-6)


@pytest.mark.parametrize("policy", ["none", *POLICIES])
def test_batches_have_the_models_input_size_with_every_step_on(policy):
    transform = reference_transform(32, MEAN, STD, crop_padding=4, padding_mode="zeros", flip=True, policy=policy,
                                    input_size=64, random_erasing=0.5)
    batches = list(reference_loader(constant_split(100), transform, 4, workers=0))
    assert len(batches) == 2
    x, y = batches[0]
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32 and y.shape == (4,)
    assert torch.isfinite(x).all()
