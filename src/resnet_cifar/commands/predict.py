"""`resnet-cifar predict CHECKPOINT IMAGE_OR_DIR...`: the most likely classes of image files.

Files are read a batch at a time, so a folder of any size fits in memory. A
file that cannot be read costs one line on stderr and a non-zero exit code,
but never the predictions (or, with --explain, the Grad-CAM overlays) for the other files.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_cifar.choices import EXPORT_SUFFIXES
from resnet_cifar.errors import UserError
from resnet_cifar.runs.reader import checkpoint_to_use

if TYPE_CHECKING:
    import torch

    from resnet_cifar.prediction import Prediction

HELP = "classify image files (or folders of them) with a trained checkpoint or its .onnx export"
FORMATS = ("table", "json", "csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=checkpoint_to_use, metavar="CHECKPOINT",
                        help="a checkpoint written by `resnet-cifar train`, or its run folder (its best checkpoint), "
                             "or an .onnx file written by `resnet-cifar export` (run with onnxruntime on the CPU)")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE_OR_DIR",
                        help="image files, or folders searched recursively for image files")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="classes to show per image (default 5)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    parser.add_argument("--explain", type=Path, metavar="DIR",
                        help="write a Grad-CAM overlay of the predicted class per image into DIR (checkpoints only)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default 64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")


def image_files(paths: list[Path]) -> Iterator[Path | UserError]:
    """Each file named, and each image file under each folder named (sorted); a UserError for paths to report.

    Inside folders, hidden files and folders are skipped, as the folder datasets
    skip them: macOS's "._photo.jpg" companions are not images.
    """
    from PIL import Image

    extensions = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in extensions
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                yield UserError(f"{path} holds no image files.")
            yield from found
        elif path.exists():
            yield path
        else:
            yield UserError(f"{path} does not exist; check the path.")


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}.")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.checkpoint.suffix.lower() in EXPORT_SUFFIXES["onnx"]:  # run with onnxruntime, without importing torch
        from resnet_cifar.onnx_model import onnx_predictor

        load, classify = onnx_predictor(args.checkpoint, args.top_k, args.explain, args.device)
    else:
        load, classify = checkpoint_predictor(args)
    predictions: list[Prediction] = []
    failures = 0
    batch: list[tuple[Path, Any]] = []
    for item in image_files(args.images):
        if isinstance(item, UserError):
            failures += report(item)
            continue
        try:
            batch.append((item, load(item)))
        except UserError as error:
            failures += report(error)
        if len(batch) == args.batch_size:
            predictions += classify(batch)
            batch = []
    predictions += classify(batch)
    {"table": print_table, "json": print_json, "csv": print_csv}[args.format](predictions)
    return 1 if failures else 0


def checkpoint_predictor(
    args: argparse.Namespace,
) -> tuple[Callable[[Path], torch.Tensor], Callable[[list[tuple[Path, torch.Tensor]]], list[Prediction]]]:
    """How to read an image file for the checkpoint's model, and how to predict (and explain) a batch of them."""
    from resnet_cifar.checkpoint import load_checkpoint
    from resnet_cifar.data.folder import load_image
    from resnet_cifar.world import resolve_device

    if args.explain is not None:
        if args.explain.exists() and not args.explain.is_dir():
            raise UserError(f"--explain {args.explain} is a file; pass a folder for the Grad-CAM pictures.")
        args.explain.mkdir(parents=True, exist_ok=True)
    model = load_checkpoint(args.checkpoint, device=resolve_device(args.device))
    explained: set[str] = set()
    image_size = model.preprocessing.image_size
    return ((lambda path: load_image(path, image_size)),
            (lambda batch: predict_batch(model, batch, args.top_k, args.explain, explained)))


def report(error: UserError) -> int:
    print(f"resnet-cifar predict: {error}", file=sys.stderr)
    return 1


def predict_batch(model, batch: list[tuple[Path, torch.Tensor]], top_k: int, explain: Path | None,
                  explained: set[str]) -> list[Prediction]:
    from resnet_cifar.gradcam import write_explanations
    from resnet_cifar.inference import predict

    results = predict(model, [image for _, image in batch], top_k=top_k, batch_size=max(len(batch), 1))
    if explain is not None:
        write_explanations(model, batch, explain, explained)
    return [replace(result, source=str(path)) for (path, _), result in zip(batch, results)]


def print_table(predictions: list[Prediction]) -> None:
    if not predictions:
        return
    cells = [[f"{name} {p:.1%}" for name, p in zip(pred.classes, pred.probabilities)] for pred in predictions]
    file_width = max(len("file"), *(len(pred.source) for pred in predictions))
    width = max(len(cell) for row in cells for cell in row)
    header = [f"top-{rank + 1}" for rank in range(len(cells[0]))]
    print("  ".join([f"{'file':<{file_width}}", *(f"{h:<{width}}" for h in header)]).rstrip())
    for pred, row in zip(predictions, cells):
        print("  ".join([f"{pred.source:<{file_width}}", *(f"{cell:<{width}}" for cell in row)]).rstrip())


def print_json(predictions: list[Prediction]) -> None:
    rows = [
        {"file": pred.source,
         "predictions": [{"class": name, "probability": p} for name, p in zip(pred.classes, pred.probabilities)]}
        for pred in predictions
    ]
    print(json.dumps(rows, indent=2))


def print_csv(predictions: list[Prediction]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["file", "rank", "class", "probability"])
    for pred in predictions:
        for rank, (name, p) in enumerate(zip(pred.classes, pred.probabilities), start=1):
            writer.writerow([pred.source, rank, name, f"{p:.6f}"])
