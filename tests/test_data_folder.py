"""Image-folder datasets: formats, resizing, the cache, splits and broken files."""
from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image

import resnet_cifar.data.folder as folder_module
from resnet_cifar.data import load_dataset
from resnet_cifar.data.folder import CACHE_FOLDER, image_pixels, load_image
from resnet_cifar.errors import UserError


def save(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def solid(colour, mode: str = "RGB", size=(32, 32)) -> Image.Image:
    return Image.new(mode, size, colour)


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """train/ with PNG, JPEG, grayscale, RGBA and a non-square image in two classes; test/ with one of each."""
    root = tmp_path / "images"
    save(root / "train" / "cat" / "red.png", solid((255, 0, 0)))
    save(root / "train" / "cat" / "gray.png", solid(77, mode="L"))
    save(root / "train" / "cat" / "alpha.png", solid((0, 0, 255, 128), mode="RGBA"))
    save(root / "train" / "dog" / "green.jpg", solid((0, 255, 0)))
    save(root / "train" / "dog" / "wide.bmp", solid((10, 20, 30), size=(64, 16)))
    (root / "train" / "dog" / "notes.txt").write_text("not an image, and not an image extension")
    save(root / "test" / "cat" / "t.png", solid((1, 2, 3)))
    save(root / "test" / "dog" / "t.png", solid((4, 5, 6)))
    return root


def test_every_format_becomes_rgb_at_the_set_size(mixed_folder):
    ds = load_dataset("folder", mixed_folder, splits=("train", "test"), val_split=0)
    assert ds.classes == ["cat", "dog"]
    assert ds.train.images.shape == (5, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    by_name = dict(zip(["alpha", "gray", "red", "green", "wide"], ds.train.images))  # sorted within each class
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1]
    assert (by_name["red"][0] == 255).all() and (by_name["red"][1:] == 0).all()
    assert (by_name["gray"] == 77).all()
    assert (by_name["alpha"][2] == 255).all() and (by_name["alpha"][:2] == 127).all()  # half-transparent, on white
    assert by_name["green"][1].float().mean() > 250 and by_name["green"][[0, 2]].float().mean() < 5  # JPEG: near
    assert (by_name["wide"].permute(1, 2, 0) == torch.tensor([10, 20, 30], dtype=torch.uint8)).all()
    assert ds.test.labels.tolist() == [0, 1]


def test_images_are_resized_to_image_size(mixed_folder):
    ds = load_dataset("folder", mixed_folder, splits=("train",), val_split=0, image_size=16)
    assert ds.train.images.shape == (5, 3, 16, 16)
    assert load_image(mixed_folder / "train" / "dog" / "wide.bmp", 8).shape == (3, 8, 8)


def test_a_second_load_comes_from_the_cache(mixed_folder, monkeypatch):
    first = load_dataset("folder", mixed_folder, splits=("train",), val_split=0)
    caches = list((mixed_folder / CACHE_FOLDER).iterdir())
    assert [p.name.split("-")[:2] for p in caches] == [["train", "32px"]]

    def no_decoding(*args):
        raise AssertionError("decoded an image although the cache is valid")

    monkeypatch.setattr(folder_module, "load_image", no_decoding)
    second = load_dataset("folder", mixed_folder, splits=("train",), val_split=0)
    assert np.array_equal(first.train.images.numpy(), second.train.images.numpy())
    assert np.array_equal(first.train.labels.numpy(), second.train.labels.numpy())


def test_a_changed_folder_is_decoded_again_and_replaces_the_old_cache(mixed_folder):
    load_dataset("folder", mixed_folder, splits=("train",), val_split=0)
    save(mixed_folder / "train" / "cat" / "red.png", solid((0, 0, 0)))  # same name, new content
    ds = load_dataset("folder", mixed_folder, splits=("train",), val_split=0)
    assert (ds.train.images[2] == 0).all()
    assert len(list((mixed_folder / CACHE_FOLDER).iterdir())) == 1  # the stale cache is gone, no temp files


def test_a_damaged_cache_is_ignored(mixed_folder):
    load_dataset("folder", mixed_folder, splits=("train",), val_split=0)
    (cache,) = (mixed_folder / CACHE_FOLDER).iterdir()
    cache.write_bytes(b"garbage")
    assert len(load_dataset("folder", mixed_folder, splits=("train",), val_split=0).train) == 5


@pytest.mark.parametrize("content, message", [
    (b"this is not a png", "Cannot read the image .*broken.png"),
    (b"", "The image .*broken.png is empty"),
])
def test_broken_or_empty_images_are_named_and_leave_no_cache(mixed_folder, content, message):
    (mixed_folder / "train" / "dog" / "broken.png").write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_dataset("folder", mixed_folder, splits=("train",), val_split=0)
    assert not (mixed_folder / CACHE_FOLDER).exists() or not list((mixed_folder / CACHE_FOLDER).iterdir())


def test_truncated_jpeg_is_named(mixed_folder):
    path = mixed_folder / "train" / "dog" / "photo.jpg"
    save(path, Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match="photo.jpg"):
        load_dataset("folder", mixed_folder, splits=("train",), val_split=0)


def test_own_val_folder_is_used_and_otherwise_val_is_carved(mixed_folder):
    carved = load_dataset("folder", mixed_folder, val_split=2)
    assert len(carved.train) == 3 and len(carved.val) == 2

    save(mixed_folder / "val" / "dog" / "v.png", solid((9, 9, 9)))
    own = load_dataset("folder", mixed_folder, val_split=2)
    assert len(own.train) == 5 and own.val.labels.tolist() == [1]


def test_test_split_is_read_only_when_requested(mixed_folder):
    (mixed_folder / "test" / "cat" / "t.png").write_bytes(b"broken, but never opened")
    assert load_dataset("folder", mixed_folder, val_split=0).test is None


@pytest.mark.parametrize("setup, message", [
    (lambda root: save(root / "test" / "bird" / "b.png", solid((0, 0, 0))), "bird is a class that train/ does not"),
    (lambda root: (root / "train" / "empty").mkdir(), "empty holds no images"),
])
def test_inconsistent_folders_are_named(mixed_folder, setup, message):
    setup(mixed_folder)
    with pytest.raises(UserError, match=message):
        load_dataset("folder", mixed_folder, splits=("train", "test"), val_split=0)


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("folder", tmp_path / "nowhere")
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match="no class sub-folders"):
        load_dataset("folder", tmp_path)


def test_real_jpeg_images_from_shared_data_load_as_a_folder(shared_jpeg_folder):
    ds = load_dataset("folder", shared_jpeg_folder, val_split=30)
    assert len(ds.classes) == 2 and len(ds.train) == 270 and len(ds.val) == 30
    assert ds.train.images.shape[1:] == (3, 32, 32)
    assert 0.3 < ds.mean[0] < 0.7 and 0.1 < ds.std[0] < 0.4  # real photographs, not blank or saturated images


def test_a_cache_that_cannot_be_written_costs_only_time(mixed_folder, monkeypatch, caplog):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(folder_module.torch, "save", disk_full)
    assert len(load_dataset("folder", mixed_folder, splits=("train",), val_split=0).train) == 5
    assert "Cannot write" in caplog.text and "the disk is full" in caplog.text
    assert list((mixed_folder / CACHE_FOLDER).iterdir()) == []  # no temporary file left behind


def twelve_bit_tiff(values: np.ndarray) -> bytes:
    """An uncompressed 12-bit gray TIFF (two pixels in three bytes), which Pillow cannot write itself."""
    height, width = values.shape
    pairs = values.astype(np.uint16).reshape(-1, 2)
    packed = np.stack([pairs[:, 0] >> 4, ((pairs[:, 0] & 15) << 4) | (pairs[:, 1] >> 8), pairs[:, 1] & 255], 1)
    data = packed.astype(np.uint8).tobytes()
    # (tag, type, value): width, height, bits per sample, no compression, black is zero, strip offset,
    # samples per pixel, rows per strip, strip byte count. Type 3 is a 16-bit value, 4 a 32-bit one.
    tags = [(256, 3, width), (257, 3, height), (258, 3, 12), (259, 3, 1), (262, 3, 1), (273, 4, 8), (277, 3, 1),
            (278, 3, height), (279, 4, len(data))]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *tag[:2], 1, tag[2]) for tag in tags)
    return b"II*\0" + struct.pack("<I", 8 + len(data)) + data + ifd + b"\0\0\0\0"


def encoded(image: Image.Image, image_format: str) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    buffer.seek(0)
    return Image.open(buffer)


GRAY = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
COLOUR = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
SIXTEEN = GRAY.astype(np.uint16) * 257  # 255 -> 65535: the same picture in 16 bits


@pytest.mark.parametrize("make, reference, tolerance", [
    (lambda: encoded(Image.fromarray(SIXTEEN), "PNG"), GRAY, 0),
    (lambda: encoded(Image.fromarray(GRAY.astype(np.uint16) << 8), "PNG"), GRAY, 2),  # shifted, not scaled
    (lambda: encoded(Image.fromarray(SIXTEEN), "TIFF"), GRAY, 0),
    (lambda: encoded(Image.fromarray(SIXTEEN), "PPM"), GRAY, 0),  # opens as mode I, from 16-bit samples
    (lambda: Image.open(io.BytesIO(twelve_bit_tiff(GRAY.astype(np.uint32) * 4095 // 255))), GRAY, 0),
    (lambda: Image.frombytes("I;16B", (40, 40), SIXTEEN.astype(">u2").tobytes()), GRAY, 0),
    (lambda: Image.frombytes("I;16L", (40, 40), SIXTEEN.astype("<u2").tobytes()), GRAY, 0),
    (lambda: Image.frombytes("I;16N", (40, 40), SIXTEEN.astype("=u2").tobytes()), GRAY, 0),
    (lambda: Image.fromarray(GRAY).convert("P"), GRAY, 0),
    (lambda: Image.fromarray(GRAY).convert("LA"), GRAY, 0),
    (lambda: Image.fromarray(COLOUR).convert("RGBA"), COLOUR, 0),
    (lambda: Image.fromarray(COLOUR).convert("CMYK"), COLOUR, 0),
    # Converted as Pillow converts them (its round trip from RGB is itself a little lossy).
    *[(lambda mode=mode: Image.fromarray(COLOUR).convert(mode),
       np.asarray(Image.fromarray(COLOUR).convert(mode).convert("RGB")), 0) for mode in ("YCbCr", "HSV", "LAB")],
], ids=["I;16-png", "I;16-png-shifted", "I;16-tiff", "I-pgm", "I;12-tiff", "I;16B", "I;16L", "I;16N", "P", "LA",
        "RGBA", "CMYK", "YCbCr", "HSV", "LAB"])
def test_every_mode_gives_the_pixels_of_its_8_bit_twin(make, reference, tolerance):
    expected = image_pixels(Image.fromarray(reference), 32, "reference").int()
    assert (image_pixels(make(), 32, "twin").int() - expected).abs().max() <= tolerance


@pytest.mark.parametrize("make, message", [
    (lambda: encoded(Image.fromarray(GRAY.astype(np.int32) * 65536), "TIFF"),
     r"32-bit or signed integer pixels \(mode I\)"),
    (lambda: Image.fromarray(GRAY.astype(np.int32)), r"mode I"),
    (lambda: encoded(Image.fromarray(GRAY.astype(np.float32) / 255), "TIFF"), r"floating-point pixels \(mode F\)"),
], ids=["I-tiff", "I-in-memory", "F-tiff"])
def test_images_without_a_known_white_are_refused(make, message):
    with pytest.raises(UserError, match=message):
        image_pixels(make(), 32, "x.tif")


def test_transparency_is_composited_on_white():
    pixels = image_pixels(Image.new("RGBA", (32, 32), (0, 0, 255, 0)), 32, "clear")
    assert (pixels == 255).all()
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([10, 20, 30] * 256)
    palette.info["transparency"] = 0
    assert (image_pixels(encoded(palette, "PNG"), 32, "clear palette") == 255).all()


def test_the_exif_orientation_is_applied(tmp_path):
    upright = np.zeros((32, 32, 3), dtype=np.uint8)
    upright[:, :16] = 255  # white left half
    image = Image.fromarray(np.rot90(upright, k=1).copy())  # stored turned a quarter anticlockwise...
    exif = image.getexif()
    exif[ExifTags.Base.Orientation] = 6  # ...and tagged "turn 90 degrees clockwise to view"
    image.save(tmp_path / "photo.png", exif=exif.tobytes())
    assert torch.equal(load_image(tmp_path / "photo.png", 32), torch.from_numpy(upright).permute(2, 0, 1))


def test_a_folder_of_one_class_is_refused(tmp_path):
    save(tmp_path / "train" / "ship" / "a.png", solid((1, 2, 3)))
    with pytest.raises(UserError, match=r"has one class sub-folder \(ship\), and a classifier needs at least two"):
        load_dataset("folder", tmp_path)


def test_a_file_as_data_dir_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(UserError, match="is a file, not a folder"):
        load_dataset("folder", tmp_path / "notes.txt")


def test_temporaries_of_killed_cache_writes_are_removed(mixed_folder):
    cache = mixed_folder / CACHE_FOLDER
    cache.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = cache / f".train-32px-0123.pt.tmp{int(dead.stdout)}"
    stale.write_bytes(b"half a cache")
    load_dataset("folder", mixed_folder, splits=("train",), val_split=0)
    assert not stale.exists() and len(list(cache.iterdir())) == 1
