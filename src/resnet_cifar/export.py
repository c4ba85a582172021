"""ONNX and TorchScript files of a trained model, checked against PyTorch before they are kept.

Each file carries what a deployment needs besides the weights, so it can be used
without this package: the class names and the preprocessing (image_size,
input_size, mean, std), and where it came from (the network, its weights and
precision, the checkpoint's sha256, the run's data settings and test-time views:
see onnx_model.py, which reads them back), as ONNX metadata_props or TorchScript
extra files, each value a JSON string. Both formats accept any batch size.
INT8 ONNX files are made from the fp32 one by quantize.py.

ONNX goes through torch.export (`dynamo=True`), the exporter PyTorch develops
and defaults to since 2.9; the older TorchScript-based one warns that it will be
removed. TorchScript is traced, because `torch.jit.script` cannot compile the
model's loop over stages; PyTorch has deprecated TorchScript too, so ONNX is the
format to prefer.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_cifar.choices import EXPORT_FORMATS, EXPORT_SUFFIXES
from resnet_cifar.config import default as training_default
from resnet_cifar.errors import UserError
from resnet_cifar.files import check_writable, make_folder, write_atomically
from resnet_cifar.onnx_model import FORMAT_VERSION, RUN_KEYS, WRITTEN_BY, require

# Largest logit difference allowed between the exported file and PyTorch (fp32, CPU), relative to the largest
# logit when that is above 1: fp32 rounding grows with the logits, and a barely trained deep network's reach 10^4.
TOLERANCE = 1e-4


def metadata(model: nn.Module, run: dict[str, Any] | None = None, precision: str = "fp32") -> dict[str, str]:
    """What a deployment needs to turn an image into the model's input and its outputs into names, and what the
    file is: the network, its weights and `precision`, and `run` (see run_metadata)."""
    values = {"classes": list(model.classes), **model.preprocessing.to_dict(),
              "written_by": WRITTEN_BY, "format_version": FORMAT_VERSION, "network": model.model_name,
              "weights": "ema" if model.uses_ema else "model", "precision": precision, **(run or {})}
    return {key: json.dumps(value) for key, value in values.items()}


def run_metadata(path: Path, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Where a file comes from: the sha256 of the checkpoint file at `path`, and the run's data settings and
    test-time views from its config (training's defaults for those it lacks, as evaluate assumes; the dataset
    only when recorded, since no default names the data a model was trained on)."""
    config = checkpoint.get("config") or {}
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    values: dict[str, Any] = {"checkpoint_sha256": digest.hexdigest()}
    for key in RUN_KEYS:
        if key in config or key != "dataset":
            values[key] = config.get(key, training_default(key))
    return values


def example_batch(model: nn.Module, batch_size: int) -> torch.Tensor:
    size = model.preprocessing.model_input_size
    return torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(batch_size))


def check_path(path: str | Path, fmt: str) -> Path:
    """`path` as a Path, or a UserError, before the slow part, when `fmt` is unknown or the file cannot be made."""
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"Unknown export format {fmt!r}; choose one of: {', '.join(EXPORT_FORMATS)}.")
    path = Path(path)
    if path.is_dir():
        example = path / f"model{EXPORT_SUFFIXES[fmt][0]}"
        raise UserError(f"--output {path} is a folder; name the file to write, such as {example}.")
    check_writable(path)
    return path


def export(model: nn.Module, path: str | Path, fmt: str, run: dict[str, Any] | None = None) -> float:
    """Write `model` (from load_checkpoint) to `path` as `fmt`, with `run` (see run_metadata) in its metadata;
    return the largest logit difference to PyTorch.

    The file is made and checked in memory, then written in one step (see
    resnet_cifar.files), so a failure at any point leaves `path` as it was.
    """
    path = check_path(path, fmt)
    data, difference = model_bytes(model, fmt, metadata(model, run))
    make_folder(path.parent)
    write_atomically(path, data)
    return difference


def model_bytes(model: nn.Module, fmt: str, values: dict[str, str]) -> tuple[bytes, float]:
    """The file's content with metadata `values`, and its largest logit difference to PyTorch (fp32, CPU).

    The check runs a batch of a different size than the one exported with, so
    it also proves the batch dimension is free. A file that disagrees by
    TOLERANCE or more raises a RuntimeError: that is a bug, not something the
    user can fix.
    """
    model = copy.deepcopy(model).cpu().float().eval()
    check_finite(model)
    data, difference = onnx_bytes(model, values) if fmt == "onnx" else torchscript_bytes(model, values)
    if not difference < TOLERANCE:
        raise RuntimeError(
            f"The {fmt} export differs from PyTorch by {difference:.2e} (limit {TOLERANCE:.0e}); no file was kept."
        )
    return data, difference


def check_finite(model: nn.Module) -> None:
    """Refuse a model whose logits are NaN or infinite: no file could be checked against them, and none would serve."""
    with torch.no_grad():
        logits = model(example_batch(model, 2))
    if not torch.isfinite(logits).all():
        raise UserError("This checkpoint's model gives NaN or infinite logits, so there is nothing to export; "
                        "train it again, with a lower --lr if its loss diverged.")


def onnx_bytes(model: nn.Module, values: dict[str, str]) -> tuple[bytes, float]:
    """The ONNX file's content with metadata `values`, and its largest logit difference to `model`."""
    onnx, onnxruntime, _ = require("onnx", "onnxruntime", "onnxscript", purpose="ONNX export")
    program = torch.onnx.export(
        model,
        (example_batch(model, 2),),
        dynamo=True,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    proto = program.model_proto
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = example_batch(model, 3)
    [onnx_logits] = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    return data, logit_difference(torch.from_numpy(onnx_logits), expected)


def torchscript_bytes(model: nn.Module, values: dict[str, str]) -> tuple[bytes, float]:
    """The TorchScript archive's content with extra files `values`, and its largest logit difference to `model`."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        with torch.no_grad():
            traced = torch.jit.trace(model, example_batch(model, 2), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files=values)
        loaded = torch.jit.load(io.BytesIO(buffer.getvalue()))
    x = example_batch(model, 3)
    with torch.no_grad():
        return buffer.getvalue(), logit_difference(loaded(x), model(x))


def logit_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest difference between two sets of logits, relative to the largest expected one if above 1."""
    return ((got - expected).abs().max() / expected.abs().max().clamp(min=1)).item()
