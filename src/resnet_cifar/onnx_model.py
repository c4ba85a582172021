""".onnx files written by `resnet-cifar export`, read back and run with onnxruntime, without torch.

A file carries, as JSON values in its metadata_props, what running it needs
besides the weights: the class names and the preprocessing (image_size,
input_size, mean, std), the network's name, its weights (EMA or trained) and
precision (fp32 or int8), the source checkpoint's sha256, and the run's data
settings (dataset, val_split, seed, labels) and test-time views (tta,
tta_fraction), so that `evaluate` finds the very images training validated on.
`written_by` and `format_version` mark the file as ours; a file without them
is refused, since its input and outputs would be guesses.

`predict` on an .onnx file runs on this module, pixels.py and preprocessing.py
alone (numpy, Pillow, onnxruntime): it starts without torch's seconds of import.
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_cifar.data.pixels import load_image_array
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError
from resnet_cifar.prediction import Prediction, top_predictions

WRITTEN_BY = "resnet-cifar"
FORMAT_VERSION = 1
# The keys without which a file's input and outputs are unknown.
REQUIRED_KEYS = ("written_by", "format_version", "classes", "image_size", "input_size", "mean", "std", "network")
# The run's settings a file records: evaluate reads them as it reads a checkpoint's config.
RUN_KEYS = ("dataset", "val_split", "seed", "labels", "tta", "tta_fraction")
# What `predict` asks of a model: read an image file, and classify a batch of (file, pixels).
Reader = Callable[[Path], np.ndarray]
Classifier = Callable[[list[tuple[Path, np.ndarray]]], list[Prediction]]


def require(*modules: str, purpose: str) -> list[Any]:
    """The optional ONNX packages, imported, or a UserError naming the one missing and the extra that installs it."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as error:
        raise UserError(
            f"{purpose} needs the {error.name} package; install it with pip install 'resnet-cifar[export]'."
        ) from error


@dataclass
class OnnxModel:
    """An .onnx file of ours: onnxruntime's session on the CPU and the file's metadata, JSON values decoded."""

    path: Path
    session: Any  # onnxruntime.InferenceSession
    metadata: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.metadata)

    @property
    def network(self) -> str:
        return self.metadata["network"]

    @property
    def uses_ema(self) -> bool:
        return self.metadata.get("weights") == "ema"

    @property
    def run_settings(self) -> dict[str, Any]:
        """The run's data settings and test-time views that the file records, as a checkpoint's config holds them."""
        return {key: self.metadata[key] for key in RUN_KEYS if key in self.metadata}

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 logits [N, classes] of a normalised float32 batch [N, 3, side, side]."""
        name = self.session.get_inputs()[0].name
        return self.session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def predict(self, batch: list[tuple[Path, np.ndarray]], top_k: int) -> list[Prediction]:
        """The `top_k` classes of each (file, uint8 [3, image_size, image_size] pixels), as `predict` gives them."""
        if not batch:
            return []
        x = self.preprocessing.prepare_array(np.stack([pixels for _, pixels in batch]))
        return top_predictions(self.logits(x), self.classes, top_k, [str(path) for path, _ in batch])


def read_onnx(path: str | Path) -> OnnxModel:
    """The .onnx file at `path`, ready to run; a UserError in one sentence when it is missing, unreadable or not
    written by `resnet-cifar export`."""
    path = Path(path)
    [onnxruntime] = require("onnxruntime", purpose="Running an ONNX file")
    if path.is_dir():
        raise UserError(f"{path} is a folder; pass an .onnx file written by `resnet-cifar export`.")
    if not path.is_file():
        raise UserError(f"The ONNX model {path} does not exist; check the path.")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings would break the one-line rule of the command line
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime's own types (InvalidProtobuf, Fail, ...) derive from Exception alone
        raise UserError(f"{path} is not a readable ONNX model (truncated, corrupt or not ONNX at all); "
                        "export it again with `resnet-cifar export`.") from None
    return OnnxModel(path, session, _metadata(path, session.get_modelmeta().custom_metadata_map))


def _metadata(path: Path, props: dict[str, str]) -> dict[str, Any]:
    try:
        values = {key: json.loads(value) for key, value in props.items()}
    except json.JSONDecodeError:
        values = {}
    if values.get("written_by") != WRITTEN_BY or any(key not in values for key in REQUIRED_KEYS):
        raise UserError(f"{path} is an ONNX model without resnet-cifar's metadata (class names, preprocessing), so "
                        "its input and outputs are unknown; pass a file written by `resnet-cifar export`, or export "
                        "its checkpoint again.")
    if values["format_version"] > FORMAT_VERSION:
        raise UserError(f"{path} was written by a newer resnet-cifar (ONNX format {values['format_version']}); "
                        "upgrade to read it.")
    return values


def check_cpu(device: str, path: Path) -> None:
    """onnxruntime runs our files on the CPU: a --device asking for anything else is refused, not ignored."""
    if device not in ("auto", "cpu"):
        raise UserError(f"--device {device}: {path} runs on the CPU with onnxruntime; drop --device, or pass the "
                        "checkpoint to run on a GPU.")


def onnx_predictor(path: Path, top_k: int, explain: Path | None, device: str) -> tuple[Reader, Classifier]:
    """What `predict` needs of an .onnx file: how to read an image file, and how to predict a batch of them."""
    if explain is not None:
        raise UserError(f"--explain draws Grad-CAM maps from gradients, which {path} cannot give; pass the checkpoint "
                        "it was exported from.")
    check_cpu(device, path)
    model = read_onnx(path)
    size = model.preprocessing.image_size
    return (lambda file: load_image_array(file, size)), (lambda batch: model.predict(batch, top_k))
