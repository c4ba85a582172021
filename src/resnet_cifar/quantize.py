"""INT8 ONNX files: ONNX Runtime's static quantization of the fp32 export, checked against it before it is kept.

Quantizing a ResNet in PyTorch and exporting the result to ONNX is still
unreliable (pytorch/pytorch #139718, #127167, #167063); quantizing the checked
fp32 ONNX file with onnxruntime.quantization.quantize_static is the sturdy path.
Each setting below is the one that measured best on the `cpu` recipe's
checkpoint (fastresnet8, 5,000 validation images, a 2-core AVX2 CPU without
VNNI; docs/experiments.md, 2026-12-07):
- QDQ format, which ONNX Runtime's CPU kernels fuse into integer convolutions;
- int8 weights per output channel (per tensor lost 1.6 points against 0.6),
  uint8 activations (int8 ones ran 1.1x fp32's speed against 2.6x);
- the first convolution, which reads the normalised image, stays fp32: quantizing
  it cost most of the loss (0.6 points against 0.1), for a small share of the FLOPs;
- activation ranges from Percentile calibration (99.999%) on N training images
  (never the validation images the result is judged on), prepared exactly as the
  checkpoint's Preprocessing says: 99.3% top-1 agreement with fp32 over four
  choices of 512 images against MinMax's 99.1%. onnxruntime's own pre-processing
  (quant_pre_process) changed nothing here, so it is not run.

The INT8 file is then run beside the fp32 one on the run's validation split
(the calibration images when the run has none) without test-time views: their
top-1 agreement and both accuracies are reported. An accuracy drop over
ACCURACY_DROP_WARNING is said plainly, but the file is kept: the user asked for it.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from resnet_cifar.data import load_dataset
from resnet_cifar.errors import UserError
from resnet_cifar.export import check_path, metadata, model_bytes
from resnet_cifar.files import make_folder, write_atomically
from resnet_cifar.onnx_model import require

ACCURACY_DROP_WARNING = 0.01  # a point of top-1 accuracy
# Images per forward pass, for calibration and for the check.
BATCH = 256


@dataclass
class Images:
    """uint8 images as stored [N, 3, S, S] and their labels [N]; `words` says which images they are."""

    pixels: np.ndarray
    labels: np.ndarray
    words: str


@dataclass
class Int8Export:
    """What export_int8 made and measured."""

    calibration: Images
    checked_on: Images
    fp32_bytes: int
    int8_bytes: int
    difference: float  # the fp32 export's largest logit difference to PyTorch
    agreement: float  # share of checked images whose top-1 class is the same in both files
    fp32_accuracy: float
    int8_accuracy: float

    @property
    def accuracy_drop(self) -> float:
        return self.fp32_accuracy - self.int8_accuracy


def export_int8(model: nn.Module, path: str | Path, run: dict[str, Any], data: dict[str, Any], count: int
                ) -> Int8Export:
    """Write `model` (from load_checkpoint) to `path` as an INT8 ONNX file, calibrated on `count` training
    images of the data settings `data` (dataset, data_dir, val_split, seed, labels), with `run` in its metadata.

    Like export(), the file is made and checked in memory and written in one step.
    """
    if count < 1:
        raise UserError(f"--calibration-images must be at least 1, got {count}.")
    path = check_path(path, "onnx")
    calibration, check = calibration_and_check_images(model, data, count)
    fp32, difference = model_bytes(model, "onnx", metadata(model, run))
    values = metadata(model, {**run, "calibration_images": len(calibration.labels)}, precision="int8")
    int8 = quantize(fp32, model.preprocessing.prepare_array(calibration.pixels), values)
    fp32_predicted, int8_predicted = (top1(content, model, check.pixels) for content in (fp32, int8))
    make_folder(path.parent)
    write_atomically(path, int8)
    return Int8Export(calibration, check, len(fp32), len(int8), difference,
                      float((fp32_predicted == int8_predicted).mean()),
                      float((fp32_predicted == check.labels).mean()), float((int8_predicted == check.labels).mean()))


def calibration_and_check_images(model: nn.Module, data: dict[str, Any], count: int) -> tuple[Images, Images]:
    """`count` training images (a fixed random choice, so a folder dataset's first class does not fill it) and
    the images to check on: the run's validation split, else the calibration images."""
    dataset = load_dataset(data["dataset"], data["data_dir"], splits=("train", "val"), val_split=data["val_split"],
                           seed=data["seed"], image_size=model.preprocessing.image_size, labels=data["labels"])
    if dataset.classes != model.classes:
        raise UserError(f"The checkpoint was trained on {len(model.classes)} classes "
                        f"({', '.join(model.classes[:3])}, ...) but {data['data_dir']} has {len(dataset.classes)} ({', '.join(dataset.classes[:3])}, ...); "
                        "pass the --dataset and --data-dir it was trained on.")
    train = dataset.train
    chosen = np.sort(np.random.default_rng(0).permutation(len(train))[:count])
    calibration = Images(train.images.numpy()[chosen], train.labels.numpy()[chosen],
                         f"{len(chosen)} training images of {data['data_dir']}")
    val = dataset.val
    if val is None or len(val) == 0:
        return calibration, calibration
    held_out = f"the {len(val)} validation images (val_split {data['val_split']}, seed {data['seed']})"
    return calibration, Images(val.images.numpy(), val.labels.numpy(), held_out)


def quantize(fp32: bytes, calibration: np.ndarray, values: dict[str, str]) -> bytes:
    """The INT8 file of the fp32 ONNX file `fp32`, calibrated on the normalised batch `calibration`, with
    metadata `values`."""
    onnx, _ = require("onnx", "onnxruntime", purpose="INT8 export")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(calibration, -(-len(calibration) // BATCH)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    graph = onnx.load_from_string(fp32).graph
    inputs = {value.name for value in graph.input} - {weight.name for weight in graph.initializer}
    first = [node.name for node in graph.node if inputs & set(node.input)]
    with tempfile.TemporaryDirectory(prefix="resnet-cifar-int8-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(fp32)
        disabled = logging.root.manager.disable
        logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger, for every file
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the Percentile calibrator prints its progress
                quantize_static(source, target, Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                nodes_to_exclude=first, calibrate_method=CalibrationMethod.Percentile)
        finally:
            logging.disable(disabled)
        proto = onnx.load(target)
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def top1(content: bytes, model: nn.Module, pixels: np.ndarray) -> np.ndarray:
    """The top-1 class of each image of `pixels` (uint8, as stored) by the ONNX file `content`."""
    [onnxruntime] = require("onnxruntime", purpose="INT8 export")
    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    prepare = model.preprocessing.prepare_array
    return np.concatenate([session.run(None, {"images": prepare(pixels[start:start + BATCH])})[0].argmax(1)
                           for start in range(0, len(pixels), BATCH)])
