"""The batched loader: what each augmentation does to the pixels, and the order contract.

With mean 0 and std 1/255 normalisation is the identity on the 0-255 scale, so
batches can be compared with the stored uint8 pixels exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from resnet_cifar.data import Loader, Split
from resnet_cifar.data.augment import ColorJitter
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError

IDENTITY = {"preprocessing": Preprocessing(32, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))}


def make_split(n: int = 64, side: int = 32, seed: int = 0) -> Split:
    """Random images whose label is their index, so every batch says which images it holds."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=generator)
    return Split(images, torch.arange(n))


def collect(loader: Loader, epoch: int = 0, start_batch: int = 0, crop_size: int | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader.epoch(epoch, start_batch, crop_size=crop_size))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def windows(image: np.ndarray, padding: int, mode: str, size: int | None = None) -> list[np.ndarray]:
    """Every size x size crop of the padded image [3, H, W] (by default at the original size)."""
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)),
                    mode="reflect" if mode == "reflect" else "constant")
    h, w = (size, size) if size else image.shape[1:]
    return [padded[:, i:i + h, j:j + w] for i in range(padded.shape[1] - h + 1) for j in range(padded.shape[2] - w + 1)]


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
@pytest.mark.parametrize("flip", ["none", "random"])
def test_crops_come_from_the_padded_image(mode, flip):
    split = make_split(48, side=12)
    loader = Loader(split, batch_size=16, device="cpu", train=True, crop_padding=3, padding_mode=mode, flip=flip,
                    **IDENTITY)
    x, y = collect(loader)
    shifted = 0
    for image, label in zip(x.numpy(), y.numpy()):
        original = split.images[label].numpy()
        crops = windows(original, 3, mode)
        if flip == "random":
            crops += [crop[:, :, ::-1] for crop in crops]
        assert any(np.array_equal(image, crop.astype(np.float32)) for crop in crops)
        shifted += not np.array_equal(image, original)
    assert shifted > 30  # shifts are random, not always zero


def test_smaller_crops_are_windows_of_the_padded_image_from_anywhere_in_it():
    split = make_split(48, side=12)
    loader = Loader(split, batch_size=16, device="cpu", train=True, crop_padding=1, flip="random", **IDENTITY)
    x, y = collect(loader, crop_size=8)
    assert x.shape == (48, 3, 8, 8)
    positions = set()
    for image, label in zip(x.numpy(), y.numpy()):
        crops = windows(split.images[label].numpy(), 1, "reflect", size=8)
        matches = [k for k, crop in enumerate(crops) if np.array_equal(image, crop.astype(np.float32))
                   or np.array_equal(image, crop[:, :, ::-1].astype(np.float32))]
        assert matches
        positions.update(matches)
    assert len(positions) > 15  # 7 x 7 window positions, drawn at random


def test_full_size_batches_are_unchanged_by_naming_the_full_crop_size():
    loader = Loader(make_split(32), batch_size=16, device="cpu", train=True, crop_padding=2, flip="alternate", **IDENTITY)
    assert torch.equal(collect(loader, epoch=3)[0], collect(loader, epoch=3, crop_size=32)[0])


def test_crops_are_refused_for_evaluation_and_beyond_the_image():
    evaluation = Loader(make_split(32), batch_size=16, device="cpu", train=False, **IDENTITY)
    with pytest.raises(UserError, match="crop size of 24"):
        collect(evaluation, crop_size=24)
    training = Loader(make_split(32), batch_size=16, device="cpu", train=True, **IDENTITY)
    with pytest.raises(UserError, match="crop size of 40"):
        collect(training, crop_size=40)


def test_random_flip_mirrors_about_half_of_the_images():
    split = make_split(200, side=8)
    loader = Loader(split, batch_size=50, device="cpu", train=True, flip="random", **IDENTITY)
    x, y = collect(loader)
    originals = split.images[y].float()
    mirrored = torch.all((x == originals.flip(-1)).flatten(1), dim=1)
    unchanged = torch.all((x == originals).flatten(1), dim=1)
    assert torch.all(mirrored | unchanged)
    assert 60 < int(mirrored.sum()) < 140


def test_alternate_flip_mirrors_each_image_the_other_way_on_the_next_epoch():
    split = make_split(64, side=8)
    loader = Loader(split, batch_size=16, device="cpu", train=True, flip="alternate", **IDENTITY)
    flipped = {}
    for epoch in range(3):
        x, y = collect(loader, epoch)
        is_mirrored = torch.all((x == split.images[y].float().flip(-1)).flatten(1), dim=1)
        flipped[epoch] = dict(zip(y.tolist(), is_mirrored.tolist()))
    assert all(flipped[0][i] != flipped[1][i] for i in range(64))
    assert flipped[0] == flipped[2]
    assert 10 < sum(flipped[0].values()) < 54  # a random choice per image, not all the same


def test_cutout_zeroes_a_square_after_normalisation():
    split = Split(torch.full((40, 3, 16, 16), 200, dtype=torch.uint8), torch.arange(40))
    loader = Loader(split, batch_size=20, device="cpu", train=True, cutout=6,
                    preprocessing=Preprocessing(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    x, _ = collect(loader)
    expected = (200 / 255 - 0.5) / 0.25
    full_squares = 0
    for image in x:
        zero = image == 0
        assert torch.all(zero == zero[0])  # the same square in every channel
        rows, cols = torch.nonzero(zero[0], as_tuple=True)
        assert len(rows) > 0
        height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert len(rows) == height * width and height <= 6 and width <= 6  # one solid (maybe clipped) square
        full_squares += height == width == 6
        assert torch.allclose(image[~zero], torch.tensor(expected))
    assert full_squares > 5


def test_brightness_and_contrast_jitter_each_image_by_its_own_draw_after_normalisation():
    split = make_split(48)
    jitter = ColorJitter(brightness=0.5, contrast=0.25)
    plain = Loader(split, batch_size=16, device="cpu", train=True, **IDENTITY)
    jittered = Loader(split, batch_size=16, device="cpu", train=True, jitter=jitter, **IDENTITY)
    (x, y), (x0, y0) = collect(jittered, epoch=1), collect(plain, epoch=1)
    assert torch.equal(y, y0)  # the jitter has its own random stream: order and crops are untouched
    flat, flat0 = x.flatten(1).double(), x0.flatten(1).double()
    # Per image, x = (x0 + b) * c: a straight line through the plain pixels, slope c and intercept b * c.
    slope = ((flat - flat.mean(1, keepdim=True)) * (flat0 - flat0.mean(1, keepdim=True))).sum(1) / (
        (flat0 - flat0.mean(1, keepdim=True)) ** 2).sum(1)
    shift = (flat.mean(1) - slope * flat0.mean(1)) / slope
    assert torch.allclose(flat, (flat0 + shift[:, None]) * slope[:, None], atol=1e-3)
    assert ((0.75 <= slope) & (slope <= 1.25)).all() and ((-0.5 <= shift) & (shift <= 0.5)).all()
    assert len(set(slope.round(decimals=4).tolist())) == len(slope)  # each image its own draw
    assert torch.equal(collect(jittered, epoch=1, start_batch=1)[0], x[16:])  # resumable mid-epoch
    assert not torch.equal(collect(jittered, epoch=2)[0], collect(plain, epoch=2)[0])
    evaluation = Loader(split, batch_size=16, device="cpu", train=False, jitter=jitter, **IDENTITY)
    assert torch.equal(collect(evaluation)[0], split.images.float())
    with pytest.raises(UserError, match="--contrast must be in"):
        ColorJitter(brightness=0.1, contrast=1.0)


def test_evaluation_keeps_order_every_sample_and_no_augmentation():
    split = make_split(70, side=8)
    loader = Loader(split, batch_size=32, device="cpu", train=False, crop_padding=4, flip="random", cutout=4,
                    preprocessing=Preprocessing(8, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)))
    assert len(loader) == 3 and loader.num_samples == 70
    x, y = collect(loader)
    assert y.tolist() == list(range(70))
    mean = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    assert torch.allclose(x, (split.images.float() / 255 - mean) / std, atol=1e-5)


def test_training_shuffles_without_replacement_and_drops_the_last_partial_batch():
    loader = Loader(make_split(100, side=8), batch_size=32, device="cpu", train=True, **IDENTITY)
    assert len(loader) == 3 and loader.num_samples == 96
    _, first = collect(loader, 0)
    _, second = collect(loader, 1)
    assert len(first) == 96 and len(set(first.tolist())) == 96
    assert first.tolist() != second.tolist() and first.tolist() != sorted(first.tolist())


def test_same_seed_same_batches_other_seed_other_batches():
    settings = dict(batch_size=16, device="cpu", train=True, crop_padding=2, flip="random", cutout=3, **IDENTITY)
    split = make_split(64, side=8)
    a, b = collect(Loader(split, seed=5, **settings), 2), collect(Loader(split, seed=5, **settings), 2)
    c = collect(Loader(split, seed=6, **settings), 2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_start_batch_resumes_exactly_where_the_epoch_was():
    loader = Loader(make_split(80, side=8), batch_size=16, device="cpu", train=True, crop_padding=2,
                    flip="alternate", cutout=3, seed=1, **IDENTITY)
    whole = list(loader.epoch(3))
    resumed = list(loader.epoch(3, start_batch=2))
    assert len(resumed) == len(whole) - 2
    for (x, y), (rx, ry) in zip(whole[2:], resumed):
        assert torch.equal(x, rx) and torch.equal(y, ry)


@pytest.mark.parametrize("train", [True, False])
def test_distributed_ranks_get_disjoint_shares_that_cover_the_epoch(train):
    n, world = 96 if train else 100, 3
    split = make_split(n, side=8)
    seen = []
    for rank in range(world):
        loader = Loader(split, batch_size=8, device="cpu", train=train, flip="random", seed=2, rank=rank,
                        world_size=world, **IDENTITY)
        _, y = collect(loader, 1)
        assert len(y) == loader.num_samples
        seen.append(set(y.tolist()))
    assert all(not (seen[i] & seen[j]) for i in range(world) for j in range(i + 1, world))
    assert set().union(*seen) == set(range(n))


def test_layout_resize_and_dtype():
    split = make_split(8, side=32)
    resized = Preprocessing(32, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255), input_size=224)
    x, _ = next(Loader(split, batch_size=4, device="cpu", train=True, preprocessing=resized).epoch(0))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(Loader(split, batch_size=4, device="cpu", train=False, channels_last=False, **IDENTITY).epoch(0))
    assert x.shape == (4, 3, 32, 32) and x.is_contiguous()


@pytest.mark.parametrize("settings, message", [
    ({"flip": "sometimes"}, "flip must be one of"),
    ({"padding_mode": "edge"}, "padding_mode must be one of"),
    ({"crop_padding": 8}, "crop_padding must be between 0 and 7"),
    ({"batch_size": 100}, "larger than"),
    ({"rank": 2, "world_size": 2}, "rank 2 is outside"),
])
def test_bad_settings_are_named(settings, message):
    arguments = dict(batch_size=4, device="cpu", train=True, **IDENTITY) | settings
    with pytest.raises(UserError, match=message):
        Loader(make_split(16, side=8), **arguments)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_equal_cpu_batches():
    split = make_split(64, side=8)
    settings = dict(batch_size=16, train=True, crop_padding=2, flip="random", cutout=3, seed=4, **IDENTITY)
    cpu = collect(Loader(split, device="cpu", **settings), 1)
    gpu = collect(Loader(split, device="cuda", **settings), 1)
    assert gpu[0].is_cuda and torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())
