"""`resnet-cifar evaluate CHECKPOINT`: accuracy, loss, calibration, per-class figures, the confusion matrix
and the most confident mistakes of a split.

Settings come from, in order: the flags, the training run's config stored in the
checkpoint, the training defaults. That is what makes `--split val` the very
images training held out: same val_split, same seed, same labels. Images are
normalised with the checkpoint's own mean and std, never statistics of the
evaluated split, so evaluating the test split reads only the test files.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_cifar.choices import DATASETS, EXPORT_SUFFIXES, SPLITS, TTA_MODES
from resnet_cifar.config import default as training_default
from resnet_cifar.errors import UserError
from resnet_cifar.files import cannot_write, check_writable, make_folder
from resnet_cifar.runs.reader import checkpoint_to_use

if TYPE_CHECKING:
    import torch

    from resnet_cifar.evaluation import Metrics

HELP = ("measure a checkpoint on a dataset split: accuracy, calibration, per-class figures, confusion matrix, "
        "confident mistakes")
# The most confident mistakes shown in mistakes.png: a 4 x 4 grid.
MISTAKES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=checkpoint_to_use, metavar="CHECKPOINT",
                        help="a checkpoint written by `resnet-cifar train`, or its run folder (its best checkpoint), "
                             "or an .onnx file written by `resnet-cifar export` (run with onnxruntime on the CPU)")
    parser.add_argument("--dataset", choices=DATASETS,
                        help="dataset to evaluate on (default: the training run's)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="folder holding the dataset (default: the training run's)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="split to evaluate (default test)")
    parser.add_argument("--val-split", type=int, metavar="N",
                        help="images training held out for validation (default: the training run's, else 5000)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="seed that chose the validation images (default: the training run's, else 0)")
    parser.add_argument("--tta", nargs="?", const="flip", choices=TTA_MODES, metavar="MODE",
                        help=f"test-time augmentation: {', '.join(TTA_MODES)} (a bare --tta means flip; default: "
                             "the views the run validated with, so --split val gives the run's own figure)")
    parser.add_argument("--tta-fraction", type=float, metavar="F",
                        help="test-time views only for the fraction F (0 < F <= 1) of images the plain prediction is "
                             "least sure of (default: the run's, else 1)")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="write evaluation.json, confusion.csv, confusion.png, reliability.png and mistakes.png "
                             "into DIR")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N",
                        help="images per forward pass (default 256)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")


def settings(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    """Each data setting from its flag, else the checkpoint's training config, else (for the settings that
    choose images within the data, not the data itself) training's default, which an older or hand-made
    checkpoint without a config was trained with."""
    resolved = {}
    for key in ("dataset", "data_dir", "val_split", "seed", "labels", "tta", "tta_fraction"):
        flag = getattr(args, key, None)
        if flag is not None or key in config:
            resolved[key] = flag if flag is not None else config[key]
        elif key in ("dataset", "data_dir"):
            raise UserError(f"{args.checkpoint} does not record its {key.replace('_', ' ')}; pass --{key.replace('_', '-')}.")
        else:
            resolved[key] = training_default(key)
    return resolved


def run(args: argparse.Namespace) -> int:
    from resnet_cifar.checkpoint import build_model, read_checkpoint
    from resnet_cifar.data import Loader, load_dataset
    from resnet_cifar.evaluation import CALIBRATION_BINS, evaluate
    from resnet_cifar.world import resolve_device

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.tta_fraction is not None and not 0 < args.tta_fraction <= 1:
        raise UserError(f"--tta-fraction must be above 0 and at most 1 (1: views for every image), got {args.tta_fraction}.")
    if args.checkpoint.suffix.lower() in EXPORT_SUFFIXES["onnx"]:  # the same report of a file run by onnxruntime
        import torch

        from resnet_cifar.onnx_module import load_onnx_module

        model = load_onnx_module(args.checkpoint, args.device)
        config, device = model.run_settings, torch.device("cpu")
    else:
        checkpoint = read_checkpoint(args.checkpoint)
        config = checkpoint.get("config") or {}
        device = resolve_device(args.device)
        model = build_model(checkpoint).to(device).eval()
    if args.output:
        check_writable(args.output / "evaluation.json")  # now, not after the evaluation
    data = settings(args, config)
    preprocessing = model.preprocessing

    dataset = load_dataset(data["dataset"], data["data_dir"], splits=(args.split,), val_split=data["val_split"],
                           seed=data["seed"], image_size=preprocessing.image_size, labels=data["labels"])
    if dataset.classes != model.classes:
        raise UserError(
            f"{args.checkpoint} was trained on {len(model.classes)} classes ({', '.join(model.classes[:3])}, ...) "
            f"but {data['data_dir']} has {len(dataset.classes)} ({', '.join(dataset.classes[:3])}, ...); "
            "pass the --dataset and --data-dir it was trained on."
        )
    split = getattr(dataset, args.split)
    if split is None or len(split) == 0:
        raise UserError(f"The {args.split} split is empty (val_split {data['val_split']}); "
                        "choose another --split or pass --val-split N.")
    loader = Loader(split, batch_size=args.batch_size, device=device, preprocessing=preprocessing, train=False)
    metrics = evaluate(model, lambda: loader.epoch(0), len(model.classes), tta=data["tta"],
                       tta_fraction=data["tta_fraction"], mistakes=MISTAKES)

    report = {
        "checkpoint": str(args.checkpoint),
        "model": model.model_name,
        "weights": "ema" if model.uses_ema else "model",
        "dataset": data["dataset"],
        "data_dir": str(data["data_dir"]),
        "split": args.split,
        **({"val_split": data["val_split"], "seed": data["seed"]} if args.split != "test" else {}),
        "tta": data["tta"],
        "tta_fraction": data["tta_fraction"],
        "tta_from": tta_source(args, config),
        "images": metrics.count,
        "top1": metrics.accuracy,
        "top5": metrics.top5,
        "loss": metrics.loss,
        "classes": model.classes,
        "per_class_accuracy": dict(zip(model.classes, metrics.per_class_accuracy)),
        "per_class_precision": dict(zip(model.classes, metrics.per_class_precision)),
        "per_class_recall": dict(zip(model.classes, metrics.per_class_recall)),
        "per_class_f1": dict(zip(model.classes, metrics.per_class_f1)),
        "confusion": metrics.confusion.tolist(),
        "ece": metrics.ece,
        "calibration": {"bins": CALIBRATION_BINS, **metrics.reliability},
        # index: the image's position in the split (an evaluation loader keeps the split's order).
        "mistakes": [{"index": m.index, "true": model.classes[m.label], "predicted": model.classes[m.predicted],
                      "probability": m.probability} for m in metrics.mistakes],
    }
    print_report(report, metrics)
    if args.output:
        write_files(report, metrics, args.output, split.images[[m.index for m in metrics.mistakes]])
    return 0


def print_report(report: dict[str, Any], metrics: Metrics) -> None:
    weights = "EMA weights" if report["weights"] == "ema" else "trained weights (the checkpoint has no EMA)"
    print(f"{report['model']} from {report['checkpoint']}, {weights}")
    held_out = f", val_split {report['val_split']}, seed {report['seed']}" if "seed" in report else ""
    print(f"{report['dataset']} {report['split']} split of {report['data_dir']}: {report['images']} images{held_out}, "
          f"TTA {tta_words(report)} ({report['tta_from']})")
    print()
    print(f"top-1 accuracy  {report['top1']:7.2%}")
    print(f"top-5 accuracy  {report['top5']:7.2%}")
    print(f"loss            {report['loss']:7.4f}")
    print(f"ECE             {report['ece']:7.2%}  (expected calibration error, {report['calibration']['bins']} bins)")
    print()
    classes = report["classes"]
    width = max(len("class"), *(len(name) for name in classes))
    print(f"{'class':<{width}}  {'images':>6}  {'accuracy':>8}  {'precision':>9}  {'F1':>6}  most often mistaken for")
    confusion = metrics.confusion
    for index, name in enumerate(classes):
        row = confusion[index].clone()
        total = int(row.sum())
        row[index] = -1
        worst = int(row.argmax())
        mistaken = f"{classes[worst]} ({int(row[worst]) / max(total, 1):.1%})" if row[worst] > 0 else "-"
        print(f"{name:<{width}}  {total:>6}  {report['per_class_accuracy'][name]:>8.2%}  "
              f"{report['per_class_precision'][name]:>9.2%}  {report['per_class_f1'][name]:>6.3f}  {mistaken}")


def tta_source(args: argparse.Namespace, config: dict[str, Any]) -> str:
    """Where the test-time views came from: the flags, the run's validation, or the default."""
    flags = [flag for flag, value in (("--tta", args.tta), ("--tta-fraction", args.tta_fraction)) if value is not None]
    return ", ".join(flags) or ("the run's validation" if "tta" in config else "the default")


def tta_words(report: dict[str, Any]) -> str:
    """The test-time views as the report's header says them: "flip-translate", "flip on the 25% least sure"."""
    if report["tta"] == "none" or report["tta_fraction"] >= 1:
        return report["tta"]
    return f"{report['tta']} on the {report['tta_fraction']:.0%} least sure"


def write_confusion_csv(confusion: torch.Tensor, classes: list[str], path: Path) -> None:
    """Rows are true classes, columns predicted classes, cells image counts."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, confusion.tolist()):
            writer.writerow([name, *row])


def write_files(report: dict[str, Any], metrics: Metrics, output: Path, mistake_images: torch.Tensor) -> None:
    """The report's files; `mistake_images` (uint8 [N, 3, H, W]) are the images of report["mistakes"], in order."""
    from resnet_cifar.pictures import plot_confusion, plot_mistakes, plot_reliability

    make_folder(output)
    split = f"{report['model']} on the {report['dataset']} {report['split']} split"
    file = output / "evaluation.json"
    try:
        file.write_text(json.dumps(report, indent=2) + "\n")
        file = output / "confusion.csv"
        write_confusion_csv(metrics.confusion, report["classes"], file)
        file = output / "confusion.png"
        plot_confusion(metrics.confusion, report["classes"], file,
                       f"{split}\n{report['top1']:.2%} top-1, {report['images']} images")
        file = output / "reliability.png"
        plot_reliability(report["calibration"], report["ece"], file, split)
        file = output / "mistakes.png"
        plot_mistakes(mistake_images, report["mistakes"], file, f"{split}: the most confident mistakes")
    except OSError as error:  # the disk filled up while writing, say
        raise cannot_write(file, error) from None
    print(f"\nWrote evaluation.json, confusion.csv, confusion.png, reliability.png and mistakes.png to {output}")
