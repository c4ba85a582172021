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

from resnet_cifar.choices import (CIFAR101_VERSIONS, DATASETS, EVALUATION_DATASETS, EXPORT_SUFFIXES,
                                  GENERATED_CORRUPTIONS, SPLITS, TTA_MODES)
from resnet_cifar.config import default as training_default
from resnet_cifar.errors import UserError
from resnet_cifar.files import cannot_write, check_writable, make_folder
from resnet_cifar.runs.reader import checkpoint_to_use

if TYPE_CHECKING:
    import torch

    from resnet_cifar.data import Split
    from resnet_cifar.evaluation import Metrics
    from resnet_cifar.robustness import CorruptionTable, Evaluator

HELP = ("measure a checkpoint on a dataset split: accuracy, calibration, per-class figures, confusion matrix, "
        "confident mistakes")
# The most confident mistakes shown in mistakes.png: a 4 x 4 grid.
MISTAKES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=checkpoint_to_use, metavar="CHECKPOINT",
                        help="a checkpoint written by `resnet-cifar train`, or its run folder (its best checkpoint), "
                             "or an .onnx file written by `resnet-cifar export` (run with onnxruntime on the CPU)")
    parser.add_argument("--dataset", choices=DATASETS + EVALUATION_DATASETS,
                        help="dataset to evaluate on (default: the training run's); cifar10.1 is a new CIFAR-10 test "
                             "set, cifar10-c and cifar100-c the published corrupted test splits (--data-dir: the "
                             "folder holding their files)")
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
    parser.add_argument("--cifar101-version", choices=CIFAR101_VERSIONS, default="v6",
                        help="with --dataset cifar10.1: which release of its files (default v6)")
    parser.add_argument("--download", action="store_true",
                        help="with --dataset cifar10.1, cifar10-c or cifar100-c: fetch the published files into "
                             "--data-dir when missing (checksum-verified)")
    parser.add_argument("--corruptions", metavar="NAMES",
                        help="also evaluate under generated CIFAR-10-C style corruptions: all, or names separated by "
                             "commas (gaussian_noise, ..., jpeg_compression); with --dataset cifar10-c or cifar100-c, "
                             "which published corruptions to read (default all)")
    parser.add_argument("--severities", default="1-5", metavar="LEVELS",
                        help="corruption severities: 1-5 (default), 3 or 1,3,5")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="write evaluation.json, confusion.csv, confusion.png, reliability.png and mistakes.png "
                             "(with corruptions: corruptions.png) into DIR")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N",
                        help="images per forward pass (default 256)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")


def settings(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    """Each data setting from its flag, else the checkpoint's training config, else (for the settings that
    choose images within the data, not the data itself) training's default, which an older or hand-made
    checkpoint without a config was trained with."""
    resolved = {}
    if args.dataset in EVALUATION_DATASETS and args.data_dir is None:
        raise UserError(f"--dataset {args.dataset} needs --data-dir, the folder holding its files (or where --download "
                        "puts them).")
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
    from resnet_cifar.data import Loader
    from resnet_cifar.evaluation import CALIBRATION_BINS, evaluate
    from resnet_cifar.robustness import (accuracy_of, generated_table, header_line, parse_corruptions,
                                         parse_severities, summary_line)
    from resnet_cifar.world import resolve_device

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.tta_fraction is not None and not 0 < args.tta_fraction <= 1:
        raise UserError(f"--tta-fraction must be above 0 and at most 1 (1: views for every image), got {args.tta_fraction}.")
    corrupted_set = args.dataset in ("cifar10-c", "cifar100-c")
    corruptions = parse_corruptions(args.corruptions or "all") if args.corruptions or corrupted_set else None
    severities = parse_severities(args.severities)
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
    accuracy = accuracy_of(model, model.preprocessing, batch_size=args.batch_size, device=device, tta=data["tta"],
                           tta_fraction=data["tta_fraction"])
    header = {
        "checkpoint": str(args.checkpoint),
        "model": model.model_name,
        "weights": "ema" if model.uses_ema else "model",
        "dataset": data["dataset"],
        "data_dir": str(data["data_dir"]),
        "tta": data["tta"],
        "tta_fraction": data["tta_fraction"],
        "tta_from": tta_source(args, config),
    }
    if corrupted_set:
        return run_published_corruptions(args, header, model, config, corruptions, severities, accuracy)

    split_name, split = read_split(args, data, model)
    loader = Loader(split, batch_size=args.batch_size, device=device, preprocessing=model.preprocessing, train=False)
    metrics = evaluate(model, lambda: loader.epoch(0), len(model.classes), tta=data["tta"],
                       tta_fraction=data["tta_fraction"], mistakes=MISTAKES)
    report = {
        **header,
        "split": split_name,
        **({"val_split": data["val_split"], "seed": data["seed"]} if split_name in ("train", "val") else {}),
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
    table = None
    if corruptions is not None:
        print(f"\n{GENERATED_NOTE}")
        print(header_line(severities))
        table = generated_table(split, corruptions, severities, accuracy, metrics.accuracy, device, print_row)
        print(summary_line(table))
        report["corruptions"] = table.to_dict()
    if args.output:
        if table is not None:
            write_corruption_picture(table, args.output, f"{report['model']} on the {report['dataset']} "
                                                          f"{split_name} split")
        write_files(report, metrics, args.output, split.images[[m.index for m in metrics.mistakes]])
    return 0


def read_split(args: argparse.Namespace, data: dict[str, Any], model: torch.nn.Module) -> tuple[str, Split]:
    """The images to evaluate and the name they go by: a split of the run's dataset, or CIFAR-10.1 whole."""
    from resnet_cifar.data import load_dataset
    from resnet_cifar.data.shifted import classes_of, read_cifar101

    if data["dataset"] == "cifar10.1":
        check_classes(args, model, list(classes_of("cifar10.1")), data["data_dir"])
        return f"cifar10.1 {args.cifar101_version}", read_cifar101(data["data_dir"], args.cifar101_version,
                                                                  args.download)
    dataset = load_dataset(data["dataset"], data["data_dir"], splits=(args.split,), val_split=data["val_split"],
                           seed=data["seed"], image_size=model.preprocessing.image_size, labels=data["labels"])
    check_classes(args, model, dataset.classes, data["data_dir"])
    split = getattr(dataset, args.split)
    if split is None or len(split) == 0:
        raise UserError(f"The {args.split} split is empty (val_split {data['val_split']}); "
                        "choose another --split or pass --val-split N.")
    return args.split, split


def check_classes(args: argparse.Namespace, model: torch.nn.Module, classes: list[str], data_dir: str) -> None:
    if list(classes) != model.classes:
        raise UserError(
            f"{args.checkpoint} was trained on {len(model.classes)} classes ({', '.join(model.classes[:3])}, ...) "
            f"but {data_dir} has {len(classes)} ({', '.join(classes[:3])}, ...); "
            "pass the --dataset and --data-dir it was trained on."
        )


def run_published_corruptions(args: argparse.Namespace, header: dict[str, Any], model: torch.nn.Module,
                              config: dict[str, Any], corruptions: list[str], severities: list[int],
                              accuracy: Evaluator) -> int:
    """--dataset cifar10-c or cifar100-c: the published files, cell by cell, beside the clean test split."""
    from resnet_cifar.data.shifted import classes_of, corrupted_folder, read_corrupted
    from resnet_cifar.robustness import header_line, published_table, summary_line

    name = header["dataset"]
    check_classes(args, model, list(classes_of(name)), header["data_dir"])
    folder = corrupted_folder(name, header["data_dir"], args.download)
    clean, clean_note = clean_test_accuracy(config, accuracy)
    print(f"{header['model']} from {header['checkpoint']}, {weights_words(header)}")
    print(f"{name} (the published files) in {folder}, TTA {tta_words(header)} ({header['tta_from']}); "
          f"clean: {clean_note}")
    print()
    print(header_line(severities))
    table = published_table(f"{name} (published files)",
                            lambda corruption, severity: read_corrupted(folder, corruption, severity, len(model.classes)),
                            corruptions, severities, accuracy, clean, print_row)
    print(summary_line(table))
    report = {**header, "data_dir": str(folder), "clean": clean_note, "corruptions": table.to_dict()}
    if args.output:
        make_folder(args.output)
        file = args.output / "evaluation.json"
        try:
            file.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as error:
            raise cannot_write(file, error) from None
        write_corruption_picture(table, args.output, f"{header['model']} on {name}")
        print(f"\nWrote evaluation.json and corruptions.png to {args.output}")
    return 0


def clean_test_accuracy(config: dict[str, Any], accuracy: Evaluator) -> tuple[float | None, str]:
    """The accuracy on the uncorrupted test split the published sets were made from, when the run's data has it,
    and where it came from (or why there is none)."""
    from resnet_cifar.data import load_dataset

    if config.get("dataset") not in ("cifar10", "cifar100") or "data_dir" not in config:
        return None, "not measured (the checkpoint does not record a CIFAR training dataset)"
    try:
        test = load_dataset(config["dataset"], config["data_dir"], splits=("test",), labels=config.get("labels", "fine"),
                            val_split=0).test
    except UserError:
        return None, f"not measured (no {config['dataset']} test split in {config['data_dir']})"
    value = accuracy(test)
    return value, f"{value:.2%} on the {config['dataset']} test split of {config['data_dir']}"


def print_row(table: CorruptionTable, corruption: str) -> None:
    from resnet_cifar.robustness import row_line

    print(row_line(table, corruption), flush=True)


GENERATED_NOTE = (f"{GENERATED_CORRUPTIONS}: our code's corruptions with the published parameters, not the "
                  "published files; compare these figures only with each other.")


def write_corruption_picture(table: CorruptionTable, output: Path, title: str) -> None:
    from resnet_cifar.pictures import plot_corruptions

    make_folder(output)
    file = output / "corruptions.png"
    try:
        plot_corruptions(table, file, f"{title}: {table.source}")
    except OSError as error:
        raise cannot_write(file, error) from None


def weights_words(report: dict[str, Any]) -> str:
    return "EMA weights" if report["weights"] == "ema" else "trained weights (the checkpoint has no EMA)"


def print_report(report: dict[str, Any], metrics: Metrics) -> None:
    print(f"{report['model']} from {report['checkpoint']}, {weights_words(report)}")
    held_out = f", val_split {report['val_split']}, seed {report['seed']}" if "seed" in report else ""
    images = f"{report['dataset']} {report['split']} split" if report["split"] in SPLITS else report["split"]
    print(f"{images} of {report['data_dir']}: {report['images']} images{held_out}, "
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
    drawn = ", corruptions.png" if "corruptions" in report else ""
    print(f"\nWrote evaluation.json, confusion.csv, confusion.png, reliability.png{drawn} and mistakes.png to {output}")
