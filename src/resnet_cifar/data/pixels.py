"""The one conversion of any picture into the uint8 RGB pixels a model sees, in numpy alone.

Folder datasets, `resnet_cifar.predict` and `resnet-cifar predict` all read
pictures through here (folder.py wraps these as tensors), so a model sees a
new picture the way it saw its training images. Nothing here imports torch:
predicting with an ONNX file needs only numpy, Pillow and onnxruntime.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from resnet_cifar.errors import UserError

# Transparent pixels show what they are drawn on: white, as on a page and in most image viewers.
BACKGROUND = (255, 255, 255)
# Full brightness of gray images with more than 8 bits, by the sample layout Pillow decodes them from:
# 16-bit PNG, TIFF and PGM files, and 12-bit TIFF files (held in 16 bits, so their mode alone would mislead).
_WHITE_BY_RAWMODE = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I;16R": 65535, "I;12": 4095}
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def load_image_array(path: str | Path, image_size: int) -> np.ndarray:
    """One image file as uint8 [3, image_size, image_size] RGB, exactly as the folder datasets store it."""
    try:
        with Image.open(path) as image:
            return image_array(image, image_size, str(path))
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UserError(f"Cannot read the image {path} ({error}); remove or replace that file.") from None


def image_array(image: Image.Image, image_size: int, source: str) -> np.ndarray:
    """uint8 [3, image_size, image_size] RGB: `image` as a model sees it, whatever its mode.

    - the EXIF orientation is applied, as viewers do;
    - gray images of 12 or 16 bits are scaled to 8 (65535 becomes 255), so a
      16-bit picture gives the pixels of its 8-bit twin, within rounding;
      32-bit integer (mode I) and floating-point (mode F) images are refused,
      because their files do not say which value is white;
    - transparency is composited on BACKGROUND (white);
    - every other mode (1, L, P, RGB, CMYK, YCbCr, LAB, HSV) is converted as Pillow converts it;
    then the picture is resized (bicubic) to image_size x image_size.
    """
    white = _white_level(image, source)  # before anything loads the pixels, which forgets how the file stored them
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if white is not None:
        values = np.asarray(image).astype(np.float64) * (255 / white)
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    elif image.mode in ("LA", "PA", "RGBA", "RGBa") or "transparency" in image.info:
        image = Image.alpha_composite(Image.new("RGBA", image.size, (*BACKGROUND, 255)), image.convert("RGBA"))
    image = image.convert("RGB")
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def _white_level(image: Image.Image, source: str) -> int | None:
    """The value of full brightness in a gray image of more than 8 bits: None for 8-bit modes, a UserError
    when nothing says."""
    if image.mode not in (*_SIXTEEN_BIT_MODES, "I", "F"):
        return None
    # How the file stores its samples: the decoder arguments of its first tile, (codec, extents, offset, args);
    # only files not yet loaded have tiles.
    tile = image.tile[0][3] if getattr(image, "tile", None) else None
    rawmode = tile if isinstance(tile, str) else tile[0] if tile else None
    if image.mode in _SIXTEEN_BIT_MODES:
        return _WHITE_BY_RAWMODE.get(rawmode, 65535)
    # Pillow reads 16-bit PGM files, and TIFF files of 16 unsigned bits in some layouts, as mode I.
    if image.mode == "I" and (rawmode in _WHITE_BY_RAWMODE or image.format == "PPM"):
        return _WHITE_BY_RAWMODE.get(rawmode, 65535)
    kind = "floating-point" if image.mode == "F" else "32-bit or signed integer"
    raise UserError(f"The image {source} has {kind} pixels (mode {image.mode}), and nothing says which value is white; "
                    "save it with 8 or 16 bits per channel.")
