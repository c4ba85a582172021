"""The 15 CIFAR-10-C corruptions (Hendrycks & Dietterich 2019), generated on the fly in torch, a batch at a time.

Why generate instead of reading the published CIFAR-10-C arrays: they are a download of gigabytes fixed to the
CIFAR-10 test split, while evaluation here runs on any split (and any folder of images) already in memory
on the device. Generation is deterministic: every random draw for an image comes from its own generator
seeded by (seed, corruption, severity, global index), so a split gives the same bytes in batches of 100
or of 1000, on a rerun, and (up to float rounding in the blurs) on a CPU or a GPU.

The parameters are those of the authors' CIFAR script, make_cifar_c.py in github.com/hendrycks/robustness
(ImageNet-C/create_c/); each table below says so. The operations are rewritten in torch from what that
script calls (NumPy, scikit-image, SciPy, OpenCV, ImageMagick through Wand, Pillow), with their conventions
kept where they change pixels: arithmetic in float64 (float32 where the script uses float32: zoom blur,
snow, elastic), each result clipped to 0..1, scaled by 255 and truncated to uint8 as np.uint8 does, and
ImageMagick's and Pillow's own rounding where their output is the result.

Where the script needs what we do not have, the nearest honest substitute:
  - frost: the script blends with crops of photographs of frost (frost1.png ... frost5.jpg, shipped with
    its repository). They are not shipped here; instead a procedural texture (smooth multi-scale noise plus
    crystal-like streaks, shaped by eye) takes, per image, the mean colour and the contrast measured on 32x32
    crops of one of those five photographs, drawn at random as the script draws the photograph; the blend
    coefficients are the script's. Its brightness and contrast match the photographs on average, its
    structure does not, so the images differ from published ones.
  - motion blur and snow: the script calls ImageMagick's MotionBlurImage. It is reimplemented from
    ImageMagick's definition (a one-sided line of 2 * radius + 1 taps at the random angle, Gaussian weights
    of the given sigma, offsets rounded to whole pixels, edge pixels repeated, the result rounded to 8 bits),
    so it is a port rather than an approximation, but it is not bit-tested against ImageMagick.
  - glass blur: the script swaps each pixel with a random neighbour in a sequential Python loop, so a value
    can travel several pixels along a chain of swaps. Here each iteration is one gather in which every pixel
    of the same region takes the value of a neighbour at an offset drawn as the script draws it (numpy's
    randint(-delta, delta): up or left, never down or right): the same local shuffle, but pixels can be
    duplicated or dropped and never travel more than delta per iteration.
  - fog: the plasma fractal (diamond-square) as in the script, on a map the size of the smallest power of
    two at least the image side (32 for CIFAR, the script's mapsize), in torch with per-image noise.
  - zoom blur, elastic transform, defocus blur, pixelate, brightness, contrast, impulse noise: SciPy's
    zoom, OpenCV's affine warp and disk filter, SciPy's Gaussian filter and map_coordinates, Pillow's BOX
    resize, scikit-image's HSV conversion and salt-and-pepper noise, each rewritten with torch operations
    and the same parameters, borders and sampling conventions (pixelate matches Pillow byte for byte).
  - jpeg compression: Pillow itself, image by image on the CPU, at the script's quality.
Sizes other than 32x32 work; the script's pixel-size parameters (elastic transform) scale with the shorter
side, and the zooms act on each axis separately. Figures from these images are "CIFAR-10-C style
(generated)" and are not comparable with published CIFAR-10-C numbers.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from resnet_cifar.choices import CORRUPTIONS, SEVERITIES
from resnet_cifar.errors import UserError

# Severity 1 to 5 of every corruption, from make_cifar_c.py (hendrycks/robustness, ImageNet-C/create_c/).
_TABLES: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # standard deviation on the 0-1 scale
    "shot_noise": (500, 250, 100, 75, 50),  # photons per unit of intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # share of values set to 0 or 1
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # disk radius, its anti-alias sigma
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # sigma, max delta, iterations
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # radius, sigma
    # zoom factors: np.arange(1, stop, 0.01) as the script writes it (its float steps give 1.00..1.06 for the
    # first stop, then 1.00..1.11, 1.15, 1.20 and 1.25)
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),
    # noise mean, noise std, zoom, threshold, motion radius, motion sigma, weight of the image
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),  # weight of the image, weight of the frost
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),  # strength, wibble decay of the fractal
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to the HSV value
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor on the deviation from each channel's mean
    # displacement strength, its smoothing sigma, affine jitter, as shares of the side (the script: of 32)
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                          (0.1, 0.03, 0.03)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # side of the reduced image, as a share of the side
    "jpeg_compression": (80, 65, 58, 50, 40),  # quality
}

# Mean colour and mean within-crop standard deviation (RGB, 0-255) of every 32x32 crop of the five frost
# photographs make_cifar_c.py draws from (frost1.png ... frost5.jpg; frost2 and frost3 are the same picture),
# each resized by 0.2 with bilinear interpolation as the script resizes them. Measured once for the substitute.
_FROST_PHOTOS = (
    ((76.6, 148.1, 164.7), (21.2, 13.0, 12.5)),
    ((198.1, 202.6, 211.8), (17.8, 18.1, 18.7)),
    ((198.1, 202.6, 211.8), (17.8, 18.1, 18.7)),
    ((143.2, 158.0, 170.7), (24.0, 24.0, 25.2)),
    ((102.7, 114.0, 125.8), (34.7, 34.4, 33.7)),
)

_Generators = list[np.random.Generator]


def corrupt(images: torch.Tensor, name: str, severity: int, *, seed: int = 0, first_index: int = 0) -> torch.Tensor:
    """Corrupt uint8 images [N, 3, H, W] on their device; image k is image `first_index + k` of its split, so
    its random draws do not depend on how the split is cut into batches."""
    if name not in CORRUPTIONS:
        raise UserError(f"Unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}.")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise UserError(f"Unknown corruption severity {severity!r}; choose from 1, 2, 3, 4 or 5.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"Corruption seed {seed!r} is not valid; choose a whole number 0 or above.")
    if first_index < 0:
        raise ValueError(f"first_index must be 0 or more, not {first_index}")
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"corrupt() takes uint8 images [N, 3, H, W], not {images.dtype} {list(images.shape)}")
    if len(images) == 0:
        return images.clone()
    number = CORRUPTIONS.index(name)
    generators = [np.random.default_rng([seed, number, severity, first_index + k]) for k in range(len(images))]
    return _CORRUPT[name](images, _TABLES[name][severity - 1], generators)


# Shared pieces.

def _draw(generators: _Generators, draw: Callable[[np.random.Generator], np.ndarray], device: torch.device,
          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """One draw per image from its own generator, stacked into one tensor."""
    return torch.from_numpy(np.stack([draw(rng) for rng in generators])).to(device, dtype)


def _unit(images: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return images.to(dtype) / 255


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The script's np.uint8(np.clip(x, 0, 1) * 255): clipped, then truncated."""
    return (x.clamp(0, 1) * 255).to(torch.uint8)


def _round_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit file written by ImageMagick holds: the 0-255 value rounded half up and clamped."""
    return torch.floor(x + 0.5).clamp(0, 255).to(torch.uint8)


def _border_index(size: int, before: int, after: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source index of each position of an axis padded by `before` and `after`, for any pad width.

    "edge" repeats the last pixel (SciPy "nearest", ImageMagick's default), "symmetric" mirrors about the
    edge of the last pixel (SciPy "reflect"), "mirror" about its centre (OpenCV BORDER_REFLECT_101).
    """
    i = torch.arange(-before, size + after, device=device)
    if mode == "edge" or size == 1:
        return i.clamp(0, size - 1)
    if mode == "symmetric":
        i = i.remainder(2 * size)
        return torch.where(i >= size, 2 * size - 1 - i, i)
    i = i.remainder(2 * size - 2)
    return torch.where(i >= size, 2 * size - 2 - i, i)


def _pad(x: torch.Tensor, pad_h: int, pad_w: int, mode: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    rows = _border_index(h, pad_h, pad_h, mode, x.device)
    return x[..., rows[:, None], _border_index(w, pad_w, pad_w, mode, x.device)]


def _filter(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every channel of [..., H, W] with one odd-sized 2-D kernel, borders filled by `mode`.

    A sum of shifted copies rather than a convolution: its rounding is the same whatever the batch size,
    which a convolution, free to pick its algorithm from the shape, does not promise.
    """
    h, w = x.shape[-2:]
    kh, kw = kernel.shape
    padded = _pad(x, kh // 2, kw // 2, mode)
    out = torch.zeros_like(x)
    for (i, j), weight in np.ndenumerate(kernel.double().numpy()):
        if weight != 0:
            out.add_(padded[..., i:i + h, j:j + w], alpha=float(weight))
    return out


def _gaussian_filter(x: torch.Tensor, sigma: float, truncate: float, mode: str) -> torch.Tensor:
    """SciPy's gaussian_filter over the last two axes: radius int(truncate * sigma + 0.5), none for sigma 0."""
    if sigma <= 1e-15:
        return x
    radius = int(truncate * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * taps**2 / sigma**2)
    weights /= weights.sum()
    x = _filter(x, weights[None, :], mode)
    return _filter(x, weights[:, None], mode)


def _clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The script's clipped_zoom of [N, C, H, W], on each axis: crop the centre ceil(size / factor), zoom it
    linearly to round(crop * factor) with corners aligned (SciPy's zoom, order 1), keep the centre `size`."""
    boxes = []
    for size in x.shape[-2:]:
        crop = math.ceil(size / factor)
        boxes.append(((size - crop) // 2, crop, round(crop * factor)))
    (top, crop_h, zoomed_h), (left, crop_w, zoomed_w) = boxes
    zoomed = F.interpolate(x[..., top:top + crop_h, left:left + crop_w], size=(zoomed_h, zoomed_w),
                           mode="bilinear", align_corners=True)
    h, w = x.shape[-2:]
    trim_h, trim_w = (zoomed_h - h) // 2, (zoomed_w - w) // 2
    return zoomed[..., trim_h:trim_h + h, trim_w:trim_w + w]


def _motion_blur(x: torch.Tensor, radius: float, sigma: float, angles: np.ndarray) -> torch.Tensor:
    """ImageMagick's MotionBlurImage of uint8 images [N, C, H, W], one angle (degrees) per image, in float64.

    Output pixel p is the sum over taps i = 0 .. 2 * ceil(radius) of w_i * x[p + round(i * (cos, sin))],
    w_i proportional to exp(-i^2 / (2 sigma^2)): a one-sided trail, edge pixels repeated. Each tap gathers
    the uint8 values, several times faster than gathering floats.
    """
    n, c, h, w = x.shape
    width = 2 * math.ceil(radius) + 1
    taps = np.arange(width)
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    radians = np.deg2rad(angles)[:, None]
    # ImageMagick rounds with ceil(v - 0.5)
    dx = torch.from_numpy(np.ceil(taps * np.cos(radians) - 0.5).astype(np.int64)).to(x.device)
    dy = torch.from_numpy(np.ceil(taps * np.sin(radians) - 0.5).astype(np.int64)).to(x.device)
    rows = (torch.arange(h, device=x.device) + dy[:, :, None]).clamp(0, h - 1)  # [N, taps, H]
    cols = (torch.arange(w, device=x.device) + dx[:, :, None]).clamp(0, w - 1)  # [N, taps, W]
    flat = x.flatten(2)
    out = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    for tap in range(width):
        index = (rows[:, tap, :, None] * w + cols[:, tap, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
        out.add_(flat.gather(2, index).view(n, c, h, w), alpha=float(weights[tap]))
    return out


# The corruptions: each takes the uint8 batch, its severity's parameters and one generator per image.

def _gaussian_noise(images: torch.Tensor, std: float, generators: _Generators) -> torch.Tensor:
    x = _unit(images)
    return _to_uint8(x + std * _draw(generators, lambda rng: rng.normal(size=x.shape[1:]), x.device))


def _shot_noise(images: torch.Tensor, photons: float, generators: _Generators) -> torch.Tensor:
    x = _unit(images)
    rates = (x * photons).cpu().numpy()
    counts = torch.from_numpy(np.stack([rng.poisson(rate) for rng, rate in zip(generators, rates)]))
    return _to_uint8(counts.to(x) / photons)


def _impulse_noise(images: torch.Tensor, amount: float, generators: _Generators) -> torch.Tensor:
    # scikit-image's random_noise(mode="s&p", salt_vs_pepper=0.5): each value independently
    x = _unit(images)
    hit, salt = _draw(generators, lambda rng: rng.random(size=(2, *x.shape[1:])), x.device).unbind(1)
    x = torch.where((hit < amount) & (salt < 0.5), 1.0, x)
    return _to_uint8(torch.where((hit < amount) & (salt >= 0.5), 0.0, x))


def _defocus_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """The script's disk() for radii up to 8 (its table's reach): a normalised aliased disk on a 17x17 grid,
    smoothed by OpenCV's 3x3 Gaussian of sigma alias_blur. Its zero taps cost nothing in _filter."""
    grid = torch.arange(-8, 9, dtype=torch.float32)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).to(torch.float32)
    disk /= disk.sum()
    blur = torch.exp(-torch.tensor([1.0, 0.0, 1.0]) / (2 * alias_blur**2))
    blur /= blur.sum()
    return _filter(disk, blur[:, None] * blur[None, :], "mirror")


def _defocus_blur(images: torch.Tensor, params: tuple, generators: _Generators) -> torch.Tensor:
    return _to_uint8(_filter(_unit(images), _defocus_kernel(*params), "mirror"))


def _glass_blur(images: torch.Tensor, params: tuple, generators: _Generators) -> torch.Tensor:
    sigma, delta, iterations = params
    n, c, h, w = images.shape
    x = (_gaussian_filter(_unit(images), sigma, 4.0, "edge") * 255).to(torch.uint8)
    # the script visits rows and columns delta + 1 .. side - delta
    offsets = _draw(generators, lambda rng: rng.integers(-delta, delta, size=(iterations, 2, h, w)), x.device,
                    torch.long)
    inside_rows = torch.zeros(h, dtype=torch.bool, device=x.device)
    inside_rows[delta + 1:h - delta + 1] = True
    inside_cols = torch.zeros(w, dtype=torch.bool, device=x.device)
    inside_cols[delta + 1:w - delta + 1] = True
    inside = inside_rows[:, None] & inside_cols[None, :]
    rows = torch.arange(h, device=x.device)[:, None].expand(h, w)
    cols = torch.arange(w, device=x.device)[None, :].expand(h, w)
    image = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    for step in range(iterations):
        source_rows = torch.where(inside, rows + offsets[:, step, 0], rows)
        source_cols = torch.where(inside, cols + offsets[:, step, 1], cols)
        x = x[image, channel, source_rows[:, None], source_cols[:, None]]
    return _to_uint8(_gaussian_filter(_unit(x), sigma, 4.0, "edge"))


def _motion_blur_corruption(images: torch.Tensor, params: tuple, generators: _Generators) -> torch.Tensor:
    radius, sigma = params
    angles = np.array([rng.uniform(-45, 45) for rng in generators])
    return _round_to_uint8(_motion_blur(images, radius, sigma, angles))


def _zoom_blur(images: torch.Tensor, stop: float, generators: _Generators) -> torch.Tensor:
    x = _unit(images, torch.float32)
    factors = np.arange(1, stop, 0.01)
    out = torch.zeros_like(x)
    for factor in factors:
        out += _clipped_zoom(x, float(factor))
    return _to_uint8((x + out) / (len(factors) + 1))


def _snow(images: torch.Tensor, params: tuple, generators: _Generators) -> torch.Tensor:
    mean, std, zoom, threshold, radius, sigma, image_weight = params
    x = _unit(images, torch.float32)
    h, w = x.shape[-2:]
    layer = _draw(generators, lambda rng: rng.normal(mean, std, size=(1, h, w)), x.device)
    angles = np.array([rng.uniform(-135, -45) for rng in generators])
    layer = _clipped_zoom(layer, zoom)
    layer = torch.where(layer < threshold, 0.0, layer)
    layer = (layer.clamp(0, 1) * 255).to(torch.uint8)  # the script saves it as an 8-bit PNG
    layer = _round_to_uint8(_motion_blur(layer, radius, sigma, angles)).to(x) / 255
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]  # OpenCV's RGB2GRAY
    x = image_weight * x + (1 - image_weight) * torch.maximum(x, grey * 1.5 + 0.5)
    return _to_uint8(x + layer + layer.flip(-2, -1))


def _frost_texture(generators: _Generators, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """0-255 frost-like layers [N, 3, H, W]: smooth noise at four scales plus short bright streaks in two
    directions, given the mean colour and contrast of one of the script's photographs, drawn per image."""
    photos = torch.tensor(_FROST_PHOTOS, dtype=like.dtype, device=like.device)  # [5, mean/std, RGB]
    chosen = photos[_draw(generators, lambda rng: rng.integers(len(_FROST_PHOTOS)), like.device, torch.long)]
    texture = torch.zeros(len(generators), 1, h, w, dtype=like.dtype, device=like.device)
    for cells, weight in ((4, 1.0), (8, 0.7), (16, 0.5), (32, 0.35)):
        grid = (max(2, math.ceil(h * cells / 32)), max(2, math.ceil(w * cells / 32)))
        noise = _draw(generators, lambda rng, grid=grid: rng.normal(size=(1, *grid)), like.device, like.dtype)
        texture += weight * F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
    seeds = _draw(generators, lambda rng: rng.random(size=(1, h, w)), like.device, like.dtype)
    seeds = (seeds > 0.97).to(torch.uint8) * 255
    for _ in range(2):
        angles = np.array([rng.uniform(0, 360) for rng in generators])
        texture += 0.04 * _motion_blur(seeds, 6, 4, angles).to(like)
    texture = texture - texture.mean((-2, -1), keepdim=True)
    texture = texture / texture.std((-2, -1), keepdim=True).clamp_min(1e-12)
    layer = chosen[:, 0, :, None, None] + chosen[:, 1, :, None, None] * texture
    return layer.clamp(0, 255).round()


def _frost(images: torch.Tensor, params: tuple, generators: _Generators) -> torch.Tensor:
    image_weight, frost_weight = params
    x = images.double()
    frost = _frost_texture(generators, *x.shape[-2:], x)
    return (image_weight * x + frost_weight * frost).clamp(0, 255).to(torch.uint8)


def _plasma_fractal(generators: _Generators, size: int, decay: float, like: torch.Tensor) -> torch.Tensor:
    """The script's diamond-square heightmaps [N, size, size] (size a power of two, wrapping around), 0..1."""
    maps = torch.zeros(len(generators), size, size, dtype=like.dtype, device=like.device)
    step, wibble = size, 100.0
    while step >= 2:
        half, cells = step // 2, size // step
        # the script adds wibble * uniform(-wibble, wibble) to each new point
        noise = wibble**2 * _draw(generators, lambda rng, cells=cells: rng.uniform(-1, 1, size=(3, cells, cells)),
                                  like.device, like.dtype)
        corners = maps[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, 1)
        squares = squares + squares.roll(-1, 2)
        maps[:, half::step, half::step] = squares / 4 + noise[:, 0]
        centres = maps[:, half::step, half::step]
        maps[:, 0::step, half::step] = (centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)) / 4 + noise[:, 1]
        maps[:, half::step, 0::step] = (centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)) / 4 + noise[:, 2]
        step //= 2
        wibble /= decay
    maps = maps - maps.amin((1, 2), keepdim=True)
    return maps / maps.amax((1, 2), keepdim=True)


def _fog(images: torch.Tensor, params: tuple, generators: _Generators) -> torch.Tensor:
    strength, decay = params
    x = _unit(images)
    h, w = x.shape[-2:]
    size = 1 << (max(h, w) - 1).bit_length()
    fractal = _plasma_fractal(generators, max(size, 2), decay, x)[:, None, :h, :w]
    peak = x.amax((1, 2, 3), keepdim=True)
    return _to_uint8((x + strength * fractal) * peak / (peak + strength))


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """scikit-image's rgb2hsv on [N, 3, H, W] in 0..1, ties between maximal channels going to the last."""
    r, g, b = x.unbind(1)
    value = x.amax(1)
    delta = value - x.amin(1)
    flat = delta == 0
    safe_delta = torch.where(flat, 1.0, delta)
    saturation = torch.where(flat, 0.0, delta / torch.where(value == 0, 1.0, value))
    hue = torch.zeros_like(value)
    hue = torch.where(r == value, (g - b) / safe_delta, hue)
    hue = torch.where(g == value, 2 + (b - r) / safe_delta, hue)
    hue = torch.where(b == value, 4 + (r - g) / safe_delta, hue)
    hue = torch.where(flat, 0.0, (hue / 6).remainder(1))
    return torch.stack([hue, saturation, value], 1)


# For each sector floor(6 * hue) mod 6 and each of R, G, B: which of v, p, q, t (scikit-image's hsv2rgb).
_HSV_SECTORS = ((0, 3, 1), (2, 0, 1), (1, 0, 3), (1, 2, 0), (3, 1, 0), (0, 1, 2))


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = x.unbind(1)
    sector = torch.floor(hue * 6)
    f = hue * 6 - sector
    candidates = torch.stack([value, value * (1 - saturation), value * (1 - f * saturation),
                              value * (1 - (1 - f) * saturation)], 1)  # v, p, q, t
    table = torch.tensor(_HSV_SECTORS, device=x.device)
    choice = table[sector.long().remainder(6)].permute(0, 3, 1, 2)  # [N, 3, H, W]
    return candidates.gather(1, choice)


def _brightness(images: torch.Tensor, shift: float, generators: _Generators) -> torch.Tensor:
    hsv = _rgb_to_hsv(_unit(images))
    hsv[:, 2] = (hsv[:, 2] + shift).clamp(0, 1)
    return _to_uint8(_hsv_to_rgb(hsv))


def _contrast(images: torch.Tensor, factor: float, generators: _Generators) -> torch.Tensor:
    x = _unit(images)
    h, w = x.shape[-2:]
    # each channel's mean from its exact integer sum, so no reduction order (which may follow the batch size
    # on a GPU) can move a value across a rounding boundary
    means = images.sum((-2, -1), keepdim=True, dtype=torch.int64).to(x) / (255 * h * w)
    return _to_uint8((x - means) * factor + means)


def _sample(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Bilinear samples of x [N, C, H, W] at pixel coordinates rows, cols [N, H, W], the image mirrored
    beyond its border: about the outer pixels' centres (OpenCV's BORDER_REFLECT_101) with align_corners,
    about their outer edges (SciPy's mode="reflect") without."""
    h, w = x.shape[-2:]
    if align_corners:
        grid = torch.stack([2 * cols / max(w - 1, 1) - 1, 2 * rows / max(h - 1, 1) - 1], -1)
    else:
        grid = torch.stack([(2 * cols + 1) / w - 1, (2 * rows + 1) / h - 1], -1)
    return F.grid_sample(x, grid.to(x), mode="bilinear", padding_mode="reflection", align_corners=align_corners)


def _elastic_transform(images: torch.Tensor, params: tuple, generators: _Generators) -> torch.Tensor:
    x = _unit(images, torch.float32)
    h, w = x.shape[-2:]
    side = min(h, w)
    alpha, sigma, jitter = (share * side for share in params)
    # A random affine map moving three points of the centre square by up to `jitter` (OpenCV's warpAffine,
    # linear, BORDER_REFLECT_101), then a smooth random displacement field (SciPy's map_coordinates, linear,
    # mode "reflect").
    cx, cy, half = w // 2, h // 2, side // 3
    points = np.array([[cx + half, cy + half], [cx + half, cy - half], [cx - half, cy - half]], dtype=np.float32)
    inverse = _draw(generators, lambda rng: _inverse_affine(points, jitter, rng), x.device)  # [N, 3, 2]
    field = _draw(generators, lambda rng: rng.uniform(-1, 1, size=(2, h, w)), x.device)
    ys = torch.arange(h, dtype=torch.float64, device=x.device)[:, None]
    xs = torch.arange(w, dtype=torch.float64, device=x.device)[None, :]
    source = [inverse[:, 0, axis, None, None] * xs + inverse[:, 1, axis, None, None] * ys
              + inverse[:, 2, axis, None, None] for axis in (0, 1)]
    x = _sample(x, source[1], source[0], align_corners=True)
    shift = (_gaussian_filter(field, sigma, 3.0, "symmetric") * alpha).to(torch.float32)
    return _to_uint8(_sample(x, ys.to(x) + shift[:, 1], xs.to(x) + shift[:, 0], align_corners=False))


def _inverse_affine(points: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """The [3, 2] map A with [x, y, 1] @ A = source of output pixel (x, y), for the affine map that moves the
    three points by a uniform jitter each (the script's getAffineTransform(points, moved), inverted)."""
    moved = points + rng.uniform(-jitter, jitter, size=points.shape).astype(np.float32)
    return np.linalg.solve(np.concatenate([moved, np.ones((3, 1))], 1).astype(np.float64), points.astype(np.float64))


def _box_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's BOX resampling along one axis as [out_size, in_size] integer weights in units of 2^-22.

    As Pillow's precompute_coeffs: the box, widened by the scale when reducing, is evaluated at the centre
    of each input pixel, normalised, then fixed-point rounded (PRECISION_BITS = 22).
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    matrix = np.zeros((out_size, in_size))
    for out in range(out_size):
        centre = (out + 0.5) * scale
        low = max(int(centre - support + 0.5), 0)
        high = min(int(centre + support + 0.5), in_size)
        position = (np.arange(low, high) - centre + 0.5) / filter_scale
        weights = ((position > -0.5) & (position <= 0.5)).astype(np.float64)
        if weights.sum() != 0:
            weights /= weights.sum()
        matrix[out, low:high] = np.trunc(0.5 + weights * (1 << 22))
    return matrix


def _box_resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pillow's resize(..., BOX) of 0-255 integer-valued float64 images: a horizontal then a vertical pass,
    each rounded to 8 bits as Pillow rounds (exact: the integer sums stay far below 2^53)."""
    cols = torch.from_numpy(_box_resize_matrix(x.shape[-1], width)).to(x)
    rows = torch.from_numpy(_box_resize_matrix(x.shape[-2], height)).to(x)
    x = torch.floor((x @ cols.T + (1 << 21)) / (1 << 22)).clamp(0, 255)
    return torch.floor((rows @ x + (1 << 21)) / (1 << 22)).clamp(0, 255)


def _pixelate(images: torch.Tensor, share: float, generators: _Generators) -> torch.Tensor:
    h, w = images.shape[-2:]
    small = _box_resize(images.double(), max(1, int(h * share)), max(1, int(w * share)))
    return _box_resize(small, h, w).to(torch.uint8)


def _jpeg_compression(images: torch.Tensor, quality: int, generators: _Generators) -> torch.Tensor:
    decoded = []
    for image in images.permute(0, 2, 3, 1).cpu().numpy():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).contiguous().to(images.device)


_CORRUPT: dict[str, Callable[[torch.Tensor, object, _Generators], torch.Tensor]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur_corruption,
    "zoom_blur": _zoom_blur,
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "elastic_transform": _elastic_transform,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
}
