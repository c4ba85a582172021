"""Inference latency and throughput on the CPU: PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime INT8, side by side.

For each network (default: fastresnet8, the `cpu` recipe's, and resnet20) the
three engines run the same model:
- PyTorch fp32: the model as `resnet_cifar.load_checkpoint` gives it (eval mode,
  default memory format), called under torch.inference_mode();
- ONNX Runtime fp32: the file `resnet-cifar export --format onnx` writes (made by
  the same code, resnet_cifar.export), CPUExecutionProvider, default graph optimisations;
- ONNX Runtime INT8: that file quantized as `export --int8` does (resnet_cifar.quantize:
  QDQ, per-channel int8 weights, uint8 activations, MinMax calibration).

The weights are a --checkpoint's (one per network; its network replaces the
default of that name) or random ones: the cost does not depend on them. INT8
calibration needs images: --calibration-images training images of --data-dir
(the 45,000 left by the default 5,000 validation images) when it holds CIFAR-10,
else random pixels, and the output says which; accuracy is not measured here
(`export --int8` reports it on the validation images).

Two figures per engine: the latency of one image (batch 1; median and 90th
percentile of --repeats calls per round over --rounds rounds) and the throughput
at batch --batch-size (images/s, median over the rounds). Engines take turns
within each round, after a warm-up call each, so load from other processes
falls on all alike. --threads sets both PyTorch's and ONNX Runtime's threads
(default 1: on a shared machine threads wait for each other whenever another
process takes a core).

    python bench/latency.py [--data-dir data] [--models fastresnet8 resnet20] [--checkpoint PATH ...]
                            [--batch-size 256] [--rounds 5] [--repeats 40] [--threads 1]

The last line is `RESULT <model>_int8_vs_ort=<INT8 / ORT fp32 images/s at batch 256> <model>_ort_vs_torch=<ORT fp32
/ PyTorch images/s> <model>_<engine>_img_s=... <model>_<engine>_ms_p50=... <model>_<engine>_ms_p90=...
<model>_fp32_mb=... <model>_int8_mb=... ... checkpoints=<models timed with a checkpoint's weights>|none
calibration=cifar10|random threads=N`.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime
import torch
from torch import nn

from resnet_cifar.checkpoint import load_checkpoint
from resnet_cifar.data import load_dataset
from resnet_cifar.data.preprocessing import Preprocessing
from resnet_cifar.errors import UserError
from resnet_cifar.export import metadata, model_bytes
from resnet_cifar.models import create_model
from resnet_cifar.quantize import quantize

ENGINES = ("torch", "ort", "int8")
# Normalisation of the random-weight models: CIFAR-10's training statistics, as a run measures them.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
Forward = Callable[[np.ndarray], object]


def random_model(name: str) -> nn.Module:
    """A model as load_checkpoint returns one, with random weights."""
    model = create_model(name).eval()
    model.classes = [str(c) for c in range(10)]
    model.preprocessing = Preprocessing(32, CIFAR10_MEAN, CIFAR10_STD)
    model.uses_ema = False
    model.model_name = name
    return model


def calibration_pixels(data_dir: str, count: int) -> tuple[np.ndarray, str]:
    """uint8 [count, 3, 32, 32] training images of CIFAR-10 in data_dir, else random pixels; and which."""
    try:
        train = load_dataset("cifar10", data_dir, splits=("train",)).train
    except UserError as error:
        print(f"calibration: {count} random images ({error})")
        return np.random.default_rng(0).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8), "random"
    chosen = np.sort(np.random.default_rng(0).permutation(len(train))[:count])
    print(f"calibration: {len(chosen)} CIFAR-10 training images of {data_dir}")
    return train.images.numpy()[chosen], "cifar10"


def session(content: bytes, threads: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])


def engines(model: nn.Module, pixels: np.ndarray, threads: int) -> tuple[dict[str, Forward], dict[str, float]]:
    """The three engines' forward passes on a normalised float32 batch, and the two files' sizes in MB."""
    fp32, _ = model_bytes(model, "onnx", metadata(model))
    int8 = quantize(fp32, model.preprocessing.prepare_array(pixels), metadata(model, precision="int8"))
    ort, ort_int8 = session(fp32, threads), session(int8, threads)

    def torch_forward(x: np.ndarray) -> object:
        with torch.inference_mode():
            return model(torch.from_numpy(x))

    return ({"torch": torch_forward,
             "ort": lambda x: ort.run(None, {"images": x}),
             "int8": lambda x: ort_int8.run(None, {"images": x})},
            {"fp32_mb": len(fp32) / 1e6, "int8_mb": len(int8) / 1e6})


def seconds(forward: Forward, x: np.ndarray) -> float:
    start = time.perf_counter()
    forward(x)
    return time.perf_counter() - start


def measure(forwards: dict[str, Forward], side: int, args: argparse.Namespace) -> dict[str, float]:
    """Per engine: images/s at --batch-size (median of rounds), batch-1 latency median and p90 in ms."""
    rng = np.random.default_rng(0)
    big = rng.standard_normal((args.batch_size, 3, side, side)).astype(np.float32)
    one = rng.standard_normal((1, 3, side, side)).astype(np.float32)
    for forward in forwards.values():  # warm-up: allocations, kernel choices
        forward(big)
        forward(one)
    throughput: dict[str, list[float]] = {name: [] for name in forwards}
    latency: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(args.rounds):
        for name, forward in forwards.items():
            throughput[name].append(args.batch_size / seconds(forward, big))
            latency[name] += [1000 * seconds(forward, one) for _ in range(args.repeats)]
    figures = {}
    for name in forwards:
        figures[f"{name}_img_s"] = statistics.median(throughput[name])
        figures[f"{name}_ms_p50"] = float(np.percentile(latency[name], 50))
        figures[f"{name}_ms_p90"] = float(np.percentile(latency[name], 90))
    figures["int8_vs_ort"] = figures["int8_img_s"] / figures["ort_img_s"]
    figures["ort_vs_torch"] = figures["ort_img_s"] / figures["torch_img_s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="folder holding CIFAR-10, whose training images calibrate "
                        "INT8 (default: data; random images when it holds none)")
    parser.add_argument("--models", nargs="+", default=["fastresnet8", "resnet20"],
                        help="networks to time with random weights (default: fastresnet8 resnet20)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                        help="a checkpoint to time instead of its network's random weights (repeatable)")
    parser.add_argument("--calibration-images", type=int, default=512, help="as export --int8 (default 512)")
    parser.add_argument("--batch-size", type=int, default=256, help="the throughput batch (default 256)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every engine, taking turns (default 5)")
    parser.add_argument("--repeats", type=int, default=40, help="batch-1 calls per engine per round (default 40)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch and ONNX Runtime threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    models = {name: random_model(name) for name in args.models}
    trained = []
    for path in args.checkpoint:
        model = load_checkpoint(path)
        models[model.model_name] = model
        trained.append(model.model_name)
        print(f"{model.model_name}: the weights of {path}")
    pixels, calibration = calibration_pixels(args.data_dir, args.calibration_images)
    results: dict[str, float] = {}
    print(f"{'':12} {'engine':15} {'batch ' + str(args.batch_size) + ' (images/s)':>20} {'batch 1 median (ms)':>20} "
          f"{'p90 (ms)':>9}")
    for name, model in models.items():
        forwards, sizes = engines(model, pixels, args.threads)
        figures = measure(forwards, model.preprocessing.model_input_size, args)
        for engine, words in zip(ENGINES, ("PyTorch fp32", "ORT fp32", "ORT INT8")):
            print(f"{name:12} {words:15} {figures[f'{engine}_img_s']:>20,.0f} {figures[f'{engine}_ms_p50']:>20.2f} "
                  f"{figures[f'{engine}_ms_p90']:>9.2f}")
        print(f"{name:12} INT8 / ORT fp32 {figures['int8_vs_ort']:.2f}x, "
              f"ORT fp32 / PyTorch {figures['ort_vs_torch']:.2f}x "
              f"at batch {args.batch_size}; files: fp32 {sizes['fp32_mb']:.2f} MB, INT8 {sizes['int8_mb']:.2f} MB "
              f"({sizes['int8_mb'] / sizes['fp32_mb']:.2f}x)", flush=True)
        results.update({f"{name}_{key}": value for key, value in {**figures, **sizes}.items()})
    ratios = [f"{key}={value:.2f}" for key, value in results.items() if key.endswith(("_vs_ort", "_vs_torch"))]
    rest = [f"{key}={value:.2f}" if "_ms_" in key or key.endswith("_mb") else f"{key}={value:.0f}"
            for key, value in results.items() if not key.endswith(("_vs_ort", "_vs_torch"))]
    print(f"RESULT {' '.join(ratios + rest)} checkpoints={','.join(trained) or 'none'} calibration={calibration} "
          f"threads={args.threads}")


if __name__ == "__main__":
    main()
