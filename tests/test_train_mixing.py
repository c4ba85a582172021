"""MixUp and CutMix: soft targets that sum to 1 and match the pixels, per-batch draws, the accuracy under mixing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet_cifar.errors import UserError
from resnet_cifar.train.mixing import BatchMixer, MixDraw, cutmix_box, mixed_correct

NUM_CLASSES = 10


def numbered_batch(n: int = 8, size: tuple[int, int] = (32, 32)) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is filled with the value i + 1, so every mixed pixel says where it came from; labels all differ."""
    x = (torch.arange(n, dtype=torch.float32) + 1).view(n, 1, 1, 1).expand(n, 3, *size).contiguous()
    return x, torch.arange(n) % NUM_CLASSES


@pytest.mark.parametrize("method", ["mixup", "cutmix"])
def test_targets_sum_to_1_and_weigh_own_and_partner_label_by_lam(method):
    mixer = BatchMixer(**{method: 1.0})
    x, y = numbered_batch()
    for draw in mixer.plan(np.random.default_rng(0), 20):
        mixed = mixer.mix(x, y, NUM_CLASSES, draw)
        assert mixed.targets.shape == (8, NUM_CLASSES) and mixed.targets.dtype == torch.float32
        assert torch.allclose(mixed.targets.sum(1), torch.ones(8))
        rows = torch.arange(8)
        assert torch.allclose(mixed.targets[rows, y], torch.full((8,), mixed.lam))
        assert torch.allclose(mixed.targets[rows, y.roll(1)], torch.full((8,), 1 - mixed.lam))
        assert torch.equal(mixed.partner_y, y.roll(1))


def test_mixup_blends_each_image_with_the_one_before_it():
    mixer = BatchMixer(mixup=0.4)
    x, y = numbered_batch()
    draw = MixDraw("mixup", 0.3, (0.5, 0.5))
    mixed = mixer.mix(x, y, NUM_CLASSES, draw)
    own, partner = torch.arange(8.0) + 1, torch.arange(8.0).roll(1) + 1
    assert torch.allclose(mixed.x[:, 0, 0, 0], 0.3 * own + 0.7 * partner)
    assert mixed.lam == 0.3


@pytest.mark.parametrize("size", [(32, 32), (24, 24), (20, 28)])
def test_cutmix_lam_is_the_share_of_pixels_that_stayed_the_images_own(size):
    mixer = BatchMixer(cutmix=1.0)
    x, y = numbered_batch(size=size)
    draws = mixer.plan(np.random.default_rng(1), 50) + [MixDraw("cutmix", 0.5, (0.0, 0.99))]  # a box cut by the border
    for draw in draws:
        mixed = mixer.mix(x, y, NUM_CLASSES, draw)
        own_share = (mixed.x == x).float().mean(dim=(1, 2, 3))
        assert torch.allclose(own_share, torch.full((8,), mixed.lam))
        from_partner = mixed.x == x.roll(1, 0)
        assert (from_partner | (mixed.x == x)).all()  # every pixel is the image's own or its partner's
    clipped = mixer.mix(x, y, NUM_CLASSES, draws[-1])
    assert clipped.lam > 0.5  # the clipped box is smaller than the drawn one: more of the image stays


def test_cutmix_box_is_torchvisions_rule():
    top, left, bottom, right = cutmix_box(MixDraw("cutmix", 0.75, (0.5, 0.25)), 32, 32)
    # half side = int(0.5 * sqrt(0.25) * 32) = 8 about the centre pixel (16, 8)
    assert (top, left, bottom, right) == (8, 0, 24, 16)


def test_with_both_each_batch_picks_one_at_random_and_lam_follows_beta():
    mixer = BatchMixer(mixup=0.2, cutmix=1.0)
    draws = mixer.plan(np.random.default_rng(2), 4000)
    methods = np.asarray([draw.method for draw in draws])
    lams = np.asarray([draw.lam for draw in draws])
    assert 0.45 < (methods == "mixup").mean() < 0.55
    assert abs(lams[methods == "cutmix"].mean() - 0.5) < 0.03  # Beta(1, 1): uniform
    assert abs(lams[methods == "cutmix"].var() - 1 / 12) < 0.01
    # Beta(0.2, 0.2) sits mostly near 0 and 1: variance 1 / (4 (2 alpha + 1)) = 0.179.
    assert abs(lams[methods == "mixup"].var() - 0.25 / 1.4) < 0.02


def test_the_same_seed_gives_the_same_draws():
    mixer = BatchMixer(mixup=0.2, cutmix=1.0)
    first, again, other = (mixer.plan(np.random.default_rng(seed), 30) for seed in (5, 5, 6))
    assert first == again and first != other
    x, y = numbered_batch()
    assert torch.equal(mixer.mix(x, y, NUM_CLASSES, first[3]).x, mixer.mix(x, y, NUM_CLASSES, again[3]).x)


def test_label_smoothing_applies_to_the_mixed_targets():
    mixer = BatchMixer(cutmix=1.0)
    x, y = numbered_batch()
    mixed = mixer.mix(x, y, NUM_CLASSES, MixDraw("cutmix", 0.6, (0.5, 0.5)))
    logits = torch.randn(8, NUM_CLASSES, generator=torch.Generator().manual_seed(0))
    smoothed = mixed.targets * 0.9 + 0.1 / NUM_CLASSES
    expected = -(smoothed * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(F.cross_entropy(logits, mixed.targets, label_smoothing=0.1), expected)


def test_mixed_accuracy_credits_lam_for_the_own_label_and_the_rest_for_the_partners():
    mixer = BatchMixer(mixup=1.0)
    x, y = numbered_batch()
    mixed = mixer.mix(x, y, NUM_CLASSES, MixDraw("mixup", 0.7, (0.5, 0.5)))
    own = F.one_hot(y, NUM_CLASSES).float()
    assert torch.isclose(mixed_correct(own, mixed), torch.tensor(0.7 * 8))
    assert torch.isclose(mixed_correct(own.roll(1, 0), mixed), torch.tensor(0.3 * 8))
    assert torch.isclose(mixed_correct(own.roll(2, 0), mixed), torch.tensor(0.0))


def test_mixing_keeps_the_memory_format_of_the_batch():
    x, y = numbered_batch()
    x = x.contiguous(memory_format=torch.channels_last)
    for method in ("mixup", "cutmix"):
        mixed = BatchMixer(**{method: 1.0}).mix(x, y, NUM_CLASSES, MixDraw(method, 0.5, (0.5, 0.5)))
        assert mixed.x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("settings, flag", [({"mixup": 0.0}, "--mixup"), ({"cutmix": -1.0}, "--cutmix")])
def test_a_non_positive_alpha_names_the_flag(settings, flag):
    with pytest.raises(UserError, match=flag):
        BatchMixer(**settings)


def test_a_mixer_needs_a_method():
    with pytest.raises(ValueError, match="mixup or a cutmix"):
        BatchMixer()
