"""torch.load without running code, and a sentence for each way a file can be wrong.

Checkpoints and torchvision weight files are both read through here; a file
torch.save did not write is named by what it is (an ONNX model, an image, ...).
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from resnet_cifar.errors import UserError


def load_without_code(path: Path, *, what: str, expected: str, if_corrupt: str) -> Any:
    """torch.load(weights_only=True) of `path`, each way it can fail told in one sentence naming the file.

    `what` names the file for the user ("checkpoint"), `expected` says what to pass
    instead of a wrong file and `if_corrupt` what to do about a damaged one.
    A file torch.save did not write is named by what it is (an ONNX model, an
    image, ...), because "corrupt" would send the user looking for a fresh copy
    of the wrong file.
    """
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a {what}; {expected}.")
    if not path.is_file():
        raise UserError(f"The {what} {path} does not exist; check the path.")
    try:
        kind = _not_written_by_torch_save(path)
    except OSError as error:
        raise UserError(f"Cannot read the {what} {path} ({error.strerror or error}).") from None
    if kind is not None:
        raise UserError(f"{path} is {kind}, not a {what}; {expected}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"{path} holds Python objects other than tensors and plain values, so it was not loaded "
            f"(it could run code); {expected}."
        ) from error
    # A damaged pickle fails in many ways; a corrupt length field can even ask for terabytes (MemoryError).
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError,
            MemoryError, OverflowError) as error:
        raise UserError(f"{path} is not a readable {what} (truncated or corrupt); {if_corrupt}.") from error


# What torch.save wrote before PyTorch 1.6 made it a zip archive: a pickle of this magic number first.
_LEGACY_TORCH_SAVE = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[:-1]
# An ONNX model is a protobuf message whose first field is ir_version (field 1, a varint: tag 0x08),
# followed by producer_name, producer_version, domain or the graph (tags 0x12, 0x1a, 0x22, 0x3a).
_ONNX_SECOND_TAGS = b"\x12\x1a\x22\x3a"


def _not_written_by_torch_save(path: Path) -> str | None:
    """What the file is ("an ONNX model") when its first bytes show torch.save did not write it, else None."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return None  # a torch.save file cut short, most likely: torch.load says it is corrupt
        if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
            return "a TorchScript model"
        return None if any(name.endswith("/data.pkl") for name in names) else "a zip archive"
    if head.startswith(_LEGACY_TORCH_SAVE):
        return None
    if path.suffix.lower() == ".onnx" or (head[:1] == b"\x08" and len(head) > 2 and head[2] in _ONNX_SECOND_TAGS):
        return "an ONNX model"
    image_format = _image_format(path)
    if image_format is not None:
        return f"a {image_format} image"
    if head.startswith(b"\x80"):
        return "a plain Python pickle (such as a CIFAR batch file)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if _is_text(head):
        return "a text file"
    return "a file torch.save did not write"


def _image_format(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            return image.format
    except Exception:  # not an image, or one Pillow cannot read: either way not what we look for
        return None


def _is_text(head: bytes) -> bool:
    """Whether `head`, the first bytes of a file, read as UTF-8 text (its last character may be cut off)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:
            return False
        text = head[: error.start].decode("utf-8")
    return all(char.isprintable() or char in "\t\n\r\f" for char in text)
