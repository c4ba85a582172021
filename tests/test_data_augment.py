"""Augmentation policies and random erasing: torchvision's results, drawn per image, reproducible, resumable.

The reference for every policy is torchvision.transforms.v2's own code applying
one draw (op and magnitude) to one image at a time; the batched code must give
the same pixels, bit for bit, on the CPU. Two private torchvision attributes
serve as the source of truth, the method that applies a draw and the op tables;
should torchvision rename them, these tests need the new names, not a new reference.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from resnet_cifar.choices import AUGMENT_POLICIES as POLICIES
from resnet_cifar.data.augment import ERASING_RATIO, ERASING_TRIES, AugmentPolicy, RandomErasing
from resnet_cifar.errors import UserError

DRAWING = [name for name in POLICIES if name != "none"]
SIZES = [(32, 32), (24, 24), (20, 28), (7, 5)]


def make_images(n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> torch.Tensor:
    """Smooth random uint8 images (so blur, contrast and histograms have something to work on), some flat."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (n, 3, *size), generator=generator).float()
    images = F.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False).to(torch.uint8)
    images[::17] = images[::17, :, :1, :1].clone()  # flat images: AutoContrast and Equalize leave them alone
    return images


def torchvision_op(images: torch.Tensor, op: str, magnitude: float) -> torch.Tensor:
    """One draw as torchvision's policies apply it (the code is shared by all three; nearest, black fill)."""
    policy = v2.TrivialAugmentWide()
    return policy._apply_image_or_video_transform(images, op, magnitude, interpolation=policy.interpolation,
                                                  fill=policy._fill)


def reference(policy: AugmentPolicy, images: torch.Tensor, plan: np.ndarray) -> torch.Tensor:
    """The policy through torchvision's code, image by image."""
    height, width = images.shape[-2:]
    out = []
    for i, image in enumerate(images):
        image = image[None]
        for op, magnitude_bin, sign in plan[:, i].reshape(-1, 3):
            name = policy.op_names[op]
            image = torchvision_op(image, name, policy.magnitude_of(name, magnitude_bin, sign, height, width))
        out.append(image[0])
    return torch.stack(out)


def every_draw(policy: AugmentPolicy) -> np.ndarray:
    """A one-step plan that holds every (op, magnitude bin, sign) once."""
    draws = itertools.product(range(len(policy.op_names)), range(policy.bins), (0, 1))
    return np.asarray(list(draws), dtype=np.int64).T


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", DRAWING)
def test_policies_give_torchvisions_pixels_image_by_image(name, size):
    policy = AugmentPolicy(name)
    images = make_images(300, size)
    plan = policy.plan(np.random.default_rng(1), len(images))
    out = policy.apply(images, torch.from_numpy(plan))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, reference(policy, images, plan))
    assert (out != images).flatten(1).any(1).float().mean() > 0.5  # most images do change


@pytest.mark.parametrize("size", [(32, 32), (20, 28)])
@pytest.mark.parametrize("name, num_ops", [("autoaugment", 2), ("randaugment", 1), ("trivialaugment", 1)])
def test_every_op_magnitude_and_sign_matches_torchvision(name, num_ops, size):
    """Each space (AutoAugment's 10 bins, RandAugment's 31, TrivialAugmentWide's wide ranges), Invert included."""
    policy = AugmentPolicy(name, num_ops=num_ops)
    plan = every_draw(policy)
    if policy.steps == 2:  # AutoAugment: the second step does nothing
        plan = np.concatenate([plan, np.zeros_like(plan)])
    images = make_images(plan.shape[1], size, seed=2)
    assert torch.equal(policy.apply(images, torch.from_numpy(plan)), reference(policy, images, plan))


@pytest.mark.parametrize("name, transform", [
    ("autoaugment", v2.AutoAugment), ("randaugment", v2.RandAugment), ("trivialaugment", v2.TrivialAugmentWide)])
def test_op_tables_are_torchvisions(name, transform):
    """Ranges, bins and signs against torchvision's own table (a private attribute: it is the source of truth)."""
    policy = AugmentPolicy(name)
    height, width = 24, 28
    for op, (magnitudes, signed) in transform._AUGMENTATION_SPACE.items():
        values = magnitudes(policy.bins, height, width)
        ours = [policy.magnitude_of(op, k, 0, height, width) for k in range(policy.bins)]
        if values is None:
            assert ours == [0.0] * policy.bins
        else:
            assert ours == values.tolist()
            assert (policy.magnitude_of(op, policy.bins - 1, 1, height, width) < 0) == signed


def test_autoaugment_draws_torchvisions_cifar10_subpolicies_with_their_probabilities():
    policy = AugmentPolicy("autoaugment")
    theirs = [[(name, p, magnitude_bin or 0) for name, p, magnitude_bin in subpolicy]
              for subpolicy in v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)._policies]
    plan = policy.plan(np.random.default_rng(0), 50000)
    names = np.asarray(policy.op_names)[plan[0::3]]  # [2, n]
    for step in (0, 1):
        for name in {subpolicy[step][0] for subpolicy in theirs}:
            expected = sum(p for subpolicy in theirs if subpolicy[step][0] == name for p in [subpolicy[step][1]])
            assert abs((names[step] == name).mean() - expected / len(theirs)) < 0.01
    # Every image's two steps are one sub-policy's, each step possibly skipped (Identity).
    allowed = {(first, bin1, second, bin2)
               for (name1, _, bin1), (name2, _, bin2) in theirs
               for first in (name1, "Identity") for second in (name2, "Identity")}
    assert set(zip(names[0], plan[1], names[1], plan[4])) <= allowed


def test_randaugment_takes_num_ops_steps_at_its_magnitude():
    policy = AugmentPolicy("randaugment", num_ops=3, magnitude=17)
    plan = policy.plan(np.random.default_rng(0), 1000)
    assert plan.shape == (9, 1000)
    assert (plan[1::3] == 17).all()
    assert set(plan[0::3].ravel()) == set(range(len(policy.op_names))) - {policy.op_names.index("Invert")}


def test_each_image_draws_for_itself():
    """Copies of one image in a batch come out different; a batch holds many different ops."""
    policy = AugmentPolicy("trivialaugment")
    images = make_images(2)[1:].expand(256, -1, -1, -1).contiguous()  # (image 0 is flat)
    plan = policy.plan(np.random.default_rng(3), len(images))
    out = policy.apply(images, torch.from_numpy(plan))
    assert len(torch.unique(out.flatten(1), dim=0)) > 150
    assert len(set(plan[0])) == 14 and set(plan[1]) == set(range(31)) and set(plan[2]) == {0, 1}


def test_outputs_stay_in_the_batch_order_so_labels_still_match():
    """Image i of the output is image i of the input transformed: the loader's labels need no change."""
    policy = AugmentPolicy("randaugment")
    images = make_images(64)
    plan = policy.plan(np.random.default_rng(4), 64)
    plan[0::3, ::2] = policy.op_names.index("Identity")  # every even image: all steps identity
    out = policy.apply(images, torch.from_numpy(plan))
    assert torch.equal(out[::2], images[::2])
    assert torch.equal(out[1::2], reference(policy, images[1::2], plan[:, 1::2]))


@pytest.mark.parametrize("name", DRAWING)
def test_the_same_seed_gives_the_same_images(name):
    policy = AugmentPolicy(name)
    images = make_images(128)
    first, again, other = (policy.plan(np.random.default_rng(seed), 128) for seed in (7, 7, 8))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert torch.equal(policy.apply(images, torch.from_numpy(first)), policy.apply(images, torch.from_numpy(again)))


@pytest.mark.parametrize("name", DRAWING)
def test_a_plan_applied_in_slices_equals_it_applied_whole(name):
    """What resuming mid-epoch does: batch 0..k, then k..n."""
    policy = AugmentPolicy(name)
    images = make_images(200, (24, 24))
    plan = torch.from_numpy(policy.plan(np.random.default_rng(5), 200))
    whole = policy.apply(images, plan)
    pieces = [policy.apply(images[a:b], plan[:, a:b]) for a, b in ((0, 64), (64, 77), (77, 200))]
    assert torch.equal(torch.cat(pieces), whole)


def test_none_draws_nothing_and_changes_nothing():
    policy = AugmentPolicy("none")
    images = make_images(8)
    plan = policy.plan(np.random.default_rng(0), 8)
    assert plan.shape == (0, 8)
    assert torch.equal(policy.apply(images, torch.from_numpy(plan)), images)


def test_a_plan_of_the_wrong_shape_is_refused():
    policy = AugmentPolicy("trivialaugment")
    with pytest.raises(ValueError, match="plan of shape"):
        policy.apply(make_images(8), torch.zeros(3, 7, dtype=torch.int64))


@pytest.mark.parametrize("settings, flag", [
    ({"name": "augmix"}, "--augment"),
    ({"name": "randaugment", "num_ops": -1}, "--randaugment-ops"),
    ({"name": "randaugment", "magnitude": 31}, "--randaugment-magnitude"),
    ({"name": "randaugment", "magnitude": -1}, "--randaugment-magnitude"),
])
def test_bad_policy_settings_name_the_flag(settings, flag):
    name = settings.pop("name")
    with pytest.raises(UserError, match=flag):
        AugmentPolicy(name, **settings)


def erased_boxes(x: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    """(top, left, height, width) of the zeros in each image of a batch of ones, checking they form one box."""
    boxes = []
    for image in x:
        zero = image == 0
        assert (zero == zero[0]).all()  # all channels erased alike
        rows, cols = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        if len(rows) == 0:
            boxes.append(None)
            continue
        top, left, h, w = rows[0].item(), cols[0].item(), len(rows), len(cols)
        assert zero[0].sum() == h * w and zero[0, top:top + h, left:left + w].all()
        boxes.append((top, left, h, w))
    return boxes


def test_random_erasing_with_p_0_changes_nothing():
    erasing = RandomErasing(0.0)
    x = torch.randn(64, 3, 32, 32)
    assert torch.equal(erasing.apply(x, torch.from_numpy(erasing.plan(np.random.default_rng(0), 64))), x)


@pytest.mark.parametrize("size", [(32, 32), (24, 24), (20, 28)])
def test_random_erasing_with_p_1_erases_one_box_per_image(size):
    erasing = RandomErasing(1.0)
    x = torch.ones(400, 3, *size)
    boxes = erased_boxes(erasing.apply(x, torch.from_numpy(erasing.plan(np.random.default_rng(1), 400))))
    assert all(box is not None for box in boxes)
    shares = np.asarray([h * w / (size[0] * size[1]) for _, _, h, w in boxes])
    assert shares.min() > 0.01 and shares.max() < 0.4  # the drawn 0.02..0.33, give or take rounding to pixels
    assert 0.12 < shares.mean() < 0.22
    assert len({(top, left) for top, left, _, _ in boxes}) > 100  # boxes sit anywhere


def test_random_erasing_takes_the_first_box_that_fits_and_gives_up_after_the_last():
    """torchvision's rule: a box too large for the image is drawn again, up to ERASING_TRIES times."""
    erasing = RandomErasing(1.0)
    plan = erasing.plan(np.random.default_rng(2), 4)
    areas, ratios = plan[1:1 + ERASING_TRIES], plan[1 + ERASING_TRIES:1 + 2 * ERASING_TRIES]
    areas[:, :2], ratios[:, :2] = 0.33, ERASING_RATIO[1]  # images 0 and 1: every try taller than the image...
    areas[1, 1], ratios[1, 1] = 0.25, 1.0  # ...but image 1's second: a 16 x 16 box
    boxes = erased_boxes(erasing.apply(torch.ones(4, 3, 32, 32), torch.from_numpy(plan)))
    assert boxes[0] is None
    assert boxes[1][2:] == (16, 16)
    assert boxes[2] is not None and boxes[3] is not None


def test_random_erasing_is_reproducible_and_resumable():
    erasing = RandomErasing(0.5)
    x = torch.randn(100, 3, 24, 24)
    plan = torch.from_numpy(erasing.plan(np.random.default_rng(3), 100))
    again = torch.from_numpy(erasing.plan(np.random.default_rng(3), 100))
    whole = erasing.apply(x, plan)
    assert torch.equal(whole, erasing.apply(x, again))
    assert torch.equal(torch.cat([erasing.apply(x[:30], plan[:, :30]), erasing.apply(x[30:], plan[:, 30:])]), whole)
    assert 35 < sum(box is not None for box in erased_boxes(whole.ne(0).float())) < 65  # p = 0.5


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_random_erasing_refuses_a_probability_outside_0_1(p):
    with pytest.raises(UserError, match="--random-erasing"):
        RandomErasing(p)
