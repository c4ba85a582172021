"""The generated CIFAR-10-C corruptions: what evaluation relies on (bytes that depend only on the seed and
each image's index, never on batching; errors a user can act on) and that each corruption at each severity
does what its table says, on natural-looking images."""
from __future__ import annotations

import io
import itertools
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_cifar.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from resnet_cifar.errors import UserError

CIFAR10_JPEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train-jpeg.tar.gz"
# The corruptions that draw at random; the others are fixed functions of the image.
RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
          "elastic_transform")
FIXED = tuple(name for name in CORRUPTIONS if name not in RANDOM)


def synthetic_images(n: int, seed: int, height: int = 32, width: int = 32) -> torch.Tensor:
    """uint8 [N, 3, H, W] images with the make-up of photographs at CIFAR's scale: a smooth colour gradient,
    a few flat discs and boxes with sharp edges, mild sensor noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    images = []
    for _ in range(n):
        tilt = rng.uniform(-60, 60, size=(3, 2))
        image = 128 + tilt[:, :1, None] * rows / height + tilt[:, 1:, None] * cols / width
        image += rng.uniform(-30, 30, size=(3, 1, 1))
        for _ in range(rng.integers(2, 5)):
            y, x, r = rng.uniform(4, height - 4), rng.uniform(4, width - 4), rng.uniform(3, 9)
            if rng.random() < 0.5:
                inside = (rows - y) ** 2 + (cols - x) ** 2 < r**2
            else:
                inside = (np.abs(rows - y) < r) & (np.abs(cols - x) < 0.6 * r)
            image[:, inside] = rng.uniform(0, 255, size=(3, 1))
        images.append(image + rng.normal(0, 4, size=image.shape))
    return torch.from_numpy(np.clip(np.stack(images), 0, 255).astype(np.uint8))


def cifar_jpegs(n: int) -> torch.Tensor:
    """The first n images of the CIFAR-10 JPEG archive beside the repository."""
    images = []
    with tarfile.open(CIFAR10_JPEG) as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".jpg"):
                images.append(np.asarray(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")))
                if len(images) == n:
                    break
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tensors here are small: a second thread saves little, and on a busy machine waiting for it costs
    several times the work (measured: 80 s for this file against 8 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return synthetic_images(8, seed=1)


@pytest.fixture(scope="module", params=["synthetic", "cifar10-jpeg"])
def natural(request) -> torch.Tensor:
    if request.param == "synthetic":
        return synthetic_images(32, seed=2)
    if not CIFAR10_JPEG.exists():
        pytest.skip(f"real CIFAR-10 images need {CIFAR10_JPEG}, which this checkout does not have")
    return cifar_jpegs(32)


def mean_psnr(clean: torch.Tensor, corrupted: torch.Tensor) -> float:
    mse = ((clean.double() - corrupted.double()) ** 2).mean((1, 2, 3))
    return (10 * torch.log10(255**2 / mse)).mean().item()


def mean_correlation(clean: torch.Tensor, corrupted: torch.Tensor) -> float:
    a, b = clean.double().flatten(1), corrupted.double().flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean().item()


def assert_falls(values: list[float], name: str, *, ties: dict[tuple[int, int], float] | None = None) -> None:
    """Each severity's value below the previous one's, except the pairs in `ties`, which only have to lie
    within the given distance of each other; then also the severity after a tie below the one before it."""
    ties = ties or {}
    for low, high in itertools.pairwise(SEVERITIES):
        a, b = values[low - 1], values[high - 1]
        if (low, high) in ties:
            assert abs(a - b) <= ties[low, high], f"{name}: severities {low} and {high} give {a:.3f} and {b:.3f}"
            if low > 1:
                assert values[low - 2] > b, f"{name}: severity {high} ({b:.3f}) not below {low - 1}"
            if high < 5:
                assert a > values[high], f"{name}: severity {high + 1} ({values[high]:.3f}) not below {low}"
        else:
            assert b < a, f"{name}: severity {high} ({b:.3f}) not below severity {low} ({a:.3f})"


def test_the_names_are_cifar10c_fifteen_in_order():
    assert CORRUPTIONS == (
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
        "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")
    assert SEVERITIES == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_uint8_out_deterministic_and_independent_of_batching(batch, name, severity):
    whole = corrupt(batch, name, severity, seed=3)
    assert whole.dtype == torch.uint8 and whole.shape == batch.shape and whole.device == batch.device
    assert torch.equal(whole, corrupt(batch, name, severity, seed=3))
    pieces = [corrupt(batch[:3], name, severity, seed=3), corrupt(batch[3:], name, severity, seed=3, first_index=3)]
    assert torch.equal(whole, torch.cat(pieces))
    assert not torch.equal(whole, batch)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_one_image_at_a_time_gives_the_same_bytes(batch, name):
    singles = [corrupt(batch[k:k + 1], name, 3, seed=3, first_index=10 + k) for k in range(len(batch))]
    assert torch.equal(corrupt(batch, name, 3, seed=3, first_index=10), torch.cat(singles))


@pytest.mark.parametrize("name", RANDOM)
def test_seeds_and_indices_draw_differently(batch, name):
    assert not torch.equal(corrupt(batch, name, 3, seed=0), corrupt(batch, name, 3, seed=1))
    copies = corrupt(batch[:1].expand(8, -1, -1, -1).contiguous(), name, 3)
    distinct = {bytes(image.numpy()) for image in copies}
    # motion blur draws only an angle, and whole-pixel tap offsets make close angles the same blur
    assert len(distinct) >= (6 if name == "motion_blur" else 8)


@pytest.mark.parametrize("name", FIXED)
def test_fixed_corruptions_ignore_the_seed(batch, name):
    assert torch.equal(corrupt(batch, name, 4, seed=0), corrupt(batch, name, 4, seed=7, first_index=100))


@pytest.mark.parametrize("name", [name for name in CORRUPTIONS if name != "elastic_transform"])
def test_higher_severity_is_further_from_the_clean_image(natural, name):
    psnr = [mean_psnr(natural, corrupt(natural, name, severity)) for severity in SEVERITIES]
    if name == "glass_blur":
        # The table raises the blur's sigma over severities 1-3 (one shuffle) and again over 4-5 (two
        # shuffles), and a wider blur hides part of the shuffle, so PSNR rises within each group; what
        # grows is the shuffling: both two-shuffle severities lie further than every one-shuffle one.
        assert max(psnr[3:]) < min(psnr[:3]), psnr
    elif name == "motion_blur":
        # severities 3 and 4 have the same sigma (2) and radii 6 and 8, whose extra taps weigh under 0.3%:
        # the same blur, told apart only by the random angles
        assert_falls(psnr, name, ties={(3, 4): 0.5})
    elif name == "frost":
        # From severity 3 on the table also dims the image (0.9, 0.85, 0.75 of it), which offsets the
        # brighter frost, so PSNR rises again from 3 to 5. What falls is how much of the image shows
        # through: its correlation with the clean image. Severities 3 and 4 add the same share of frost.
        correlation = [mean_correlation(natural, corrupt(natural, name, severity)) for severity in SEVERITIES]
        assert_falls(correlation, name, ties={(3, 4): 0.02})
        assert psnr[2] < psnr[1] < psnr[0], psnr
    else:
        assert_falls(psnr, name)


def test_elastic_affine_jitter_shrinks_and_local_displacement_grows():
    """The table shrinks the random affine part (jitter 8% to 3% of the side) while it grows the smooth local
    displacement field, so PSNR rises with severity; check each part on images that record where each pixel
    came from: red and green are 8 x column and 8 x row, which linear interpolation keeps exact."""
    n = 48
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    ramps = torch.stack([8 * cols, 8 * rows, torch.full_like(rows, 128)]).to(torch.uint8).expand(n, -1, -1, -1)
    centre = slice(8, 24)  # far enough from the border that no source pixel is a reflection
    points = torch.stack([cols[centre, centre].flatten(), rows[centre, centre].flatten()], 1).double()
    design = torch.cat([points, torch.ones(len(points), 1, dtype=torch.float64)], 1)
    affine, local = [], []
    for severity in SEVERITIES:
        out = corrupt(ramps.contiguous(), "elastic_transform", severity).double()
        source = out[:, :2, centre, centre].flatten(2).transpose(1, 2) / 8  # [N, pixels, (x, y)]
        fitted = design @ torch.linalg.lstsq(design.expand(n, -1, -1), source).solution
        affine.append(((fitted - points) ** 2).sum(-1).mean().sqrt().item())
        local.append(((source - fitted) ** 2).sum(-1).mean().sqrt().item())
    assert_falls(affine, "affine displacement")
    assert local[0] < 0.1, local  # severity 1 is affine only: what is left is 8-bit rounding
    assert local[1] < local[2] < local[3] < local[4], local


@pytest.mark.parametrize(("height", "width"), [(32, 32), (24, 40)])
def test_pixelate_is_pillows_box_resize_down_and_up(height, width):
    noise = torch.randint(0, 256, (3, 3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = torch.cat([synthetic_images(3, seed=4, height=height, width=width), noise])
    for severity, share in enumerate((0.95, 0.9, 0.85, 0.75, 0.65), 1):  # make_cifar_c.py's table
        expected = [np.asarray(Image.fromarray(image).resize((int(width * share), int(height * share)), Image.BOX)
                               .resize((width, height), Image.BOX)) for image in images.permute(0, 2, 3, 1).numpy()]
        expected = torch.from_numpy(np.stack(expected)).permute(0, 3, 1, 2)
        assert torch.equal(corrupt(images, "pixelate", severity), expected)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_other_image_sizes(name):
    images = synthetic_images(3, seed=6, height=24, width=40)
    out = corrupt(images, name, 5)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(corrupt(images[1:], name, 5, first_index=1), out[1:])


def test_an_empty_batch_gives_an_empty_batch():
    assert corrupt(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), "fog", 2).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("name", ["foo", "Gaussian Noise", "speckle_noise", ""])
def test_an_unknown_name_lists_the_choices(batch, name):
    with pytest.raises(UserError, match=f"Unknown corruption {name!r}; choose from gaussian_noise, shot_noise, "
                                        ".*, pixelate, jpeg_compression"):
        corrupt(batch, name, 1)


@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, True])
def test_a_severity_outside_1_to_5_lists_the_choices(batch, severity):
    with pytest.raises(UserError, match=f"Unknown corruption severity {severity!r}; choose from 1, 2, 3, 4 or 5"):
        corrupt(batch, "contrast", severity)


def test_a_negative_seed_is_refused(batch):
    with pytest.raises(UserError, match="seed -1 .* 0 or above"):
        corrupt(batch, "fog", 1, seed=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_on_cuda_stays_on_the_device_and_matches_the_cpu(batch, name):
    on_device = batch.cuda()
    out = corrupt(on_device, name, 3)
    assert out.device == on_device.device and out.dtype == torch.uint8
    pieces = [corrupt(on_device[:3], name, 3), corrupt(on_device[3:], name, 3, first_index=3)]
    assert torch.equal(out, torch.cat(pieces))
    # the same draws; only float rounding may differ, by one grey level at a truncation boundary
    difference = (out.cpu().int() - corrupt(batch, name, 3).int()).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() < 0.01
