"""Bad input and faults (issue 19) through the command line, as a user meets them.

Each case runs `python -m resnet_cifar ...` in a subprocess of its own, in an
empty scratch folder, and must end with its exit code (2 for a user error;
predict reports each file it cannot use and goes on, with 1), no traceback,
the error in one line that holds the case's phrase, nothing left in the
scratch folder, and every file it was pointed at untouched.

The files the cases point at (a checkpoint trained for one epoch, its exports,
images, data, locked run folders, read-only and full folders where the test
may mount them) are made once. Each subprocess spends seconds importing torch,
so they all run before the first assertion, as many at a time as there are
cores. docs/reliability.md is the same table in words.
"""
from __future__ import annotations

import builtins
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from checkpoints import write_checkpoint
from conftest import foreign_onnx, synthetic_images, write_cifar10
from resnet_cifar.checkpoint import load_checkpoint
from resnet_cifar.cli import main
from resnet_cifar.data.folder import CACHE_FOLDER
from resnet_cifar.export import export
from resnet_cifar.models import create_model
from resnet_cifar.runs.writer import _process_start

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Case:
    args: str  # the command line after `resnet-cifar`; {name} is a shared file, {out} the case's scratch folder
    says: str  # a phrase the one-line message must hold
    code: int = 2
    needs: str | None = None  # "readonly", "full" or "proc": what only some machines can make


TRAIN = "train --data-dir {data} --val-split 10 --batch-size 16 --epochs 1 --device cpu --output {out}/run"
STEM = "--model resnet18 --stem imagenet"

CASES = {
    # models
    "models-input-size-0": Case("models --input-size 0", "--input-size must be a positive number of pixels"),
    "models-input-too-small": Case("models --input-size 8", "fastresnet8 cannot take 8x8 images"),
    "models-num-classes-0": Case("models resnet20 --num-classes 0", "--num-classes must be at least 1"),
    "models-unknown-name": Case("models resnet21", "Unknown model 'resnet21'"),
    # export: nothing overwritten
    "export-onto-its-checkpoint": Case("export {ckpt} --format onnx --output {ckpt}",
                                       "is the checkpoint being exported"),
    "export-onto-its-checkpoint-overwrite": Case("export {ckpt} --format torchscript --output {ckpt} --overwrite",
                                                 "is the checkpoint being exported"),
    "export-onto-a-hard-link-of-it": Case("export {ckpt} --format onnx --output {ckpt_link} --overwrite",
                                          "is the checkpoint being exported"),
    "export-onto-an-existing-file": Case("export {ckpt} --format onnx --output {existing}", "pass --overwrite"),
    "export-onnx-named-pt": Case("export {ckpt} --format onnx --output {out}/model.pt", "does not end in .onnx"),
    "export-torchscript-named-onnx": Case("export {ckpt} --format torchscript --output {out}/model.onnx",
                                          "does not end in .ts, .torchscript, .pt or .pth"),
    "export-output-a-folder": Case("export {ckpt} --format onnx --output {out}", "is a folder"),
    "export-under-a-file": Case("export {ckpt} --format onnx --output {text}/model.onnx", "is a file, not a folder"),
    "export-under-proc": Case("export {ckpt} --format onnx --output /proc/model.onnx", "/proc does not take new files"),
    "export-read-only-folder": Case("export {ckpt} --format onnx --output {readonly}/model.onnx", "Cannot write",
                                    needs="readonly"),
    "export-full-disk": Case("export {ckpt} --format onnx --output {full}/old.onnx --overwrite", "the disk is full",
                             needs="full"),
    "export-unknown-format": Case("export {ckpt} --format tflite --output {out}/m.tflite", "invalid choice: 'tflite'"),
    # export --int8
    "export-int8-torchscript": Case("export {ckpt} --format torchscript --int8 --output {out}/m.ts",
                                    "--int8 quantizes ONNX files only"),
    "export-int8-no-data-recorded": Case("export {bare_ckpt} --format onnx --int8 --output {out}/m.onnx",
                                         "does not record where they are; pass --data-dir DIR"),
    "export-int8-data-dir-without-data": Case("export {ckpt} --format onnx --int8 --data-dir {no_images} "
                                              "--output {out}/m.onnx", "No cifar10 found in"),
    "export-int8-calibration-images-0": Case("export {ckpt} --format onnx --int8 --calibration-images 0 "
                                             "--output {out}/m.onnx", "--calibration-images must be at least 1"),
    "export-int8-onto-its-checkpoint": Case("export {ckpt} --format onnx --int8 --output {ckpt} --overwrite",
                                            "is the checkpoint being exported"),
    "export-calibration-without-int8": Case("export {ckpt} --format onnx --calibration-images 64 --output {out}/m.onnx",
                                            "--calibration-images only applies to --int8's calibration"),
    # checkpoints that are not checkpoints
    "checkpoint-missing": Case("evaluate {missing}", "does not exist"),
    "checkpoint-a-folder": Case("export {no_images} --format onnx --output {out}/m.onnx",
                                "is a folder, and not a run folder with a checkpoint"),
    "checkpoint-onnx": Case("export {onnx} --format torchscript --output {out}/m.ts",
                            "is an ONNX model, not a checkpoint"),
    "checkpoint-torchscript": Case("evaluate {ts}", "is a TorchScript model, not a checkpoint"),
    "checkpoint-image": Case("predict {png} {png}", "is a PNG image, not a checkpoint"),
    "checkpoint-text": Case("evaluate {text}", "is a text file, not a checkpoint"),
    "checkpoint-empty": Case("export {empty} --format onnx --output {out}/m.onnx", "is an empty file"),
    "checkpoint-folder-cache": Case("predict {cache} {png}", "decoded images of a folder dataset"),
    "checkpoint-state-dict": Case("evaluate {state_dict}", "only weights (a state_dict)"),
    "checkpoint-cifar-batch": Case("predict {batch} {png}", "is a plain Python pickle"),
    "checkpoint-runs-code": Case("predict {evil} {png}", "could run code"),
    "checkpoint-truncated": Case("evaluate {truncated}", "truncated or corrupt"),
    # .onnx files given to predict and evaluate
    "predict-onnx-not-ours": Case("predict {foreign_onnx} {png}", "is an ONNX model without resnet-cifar's metadata"),
    "evaluate-onnx-not-ours": Case("evaluate {foreign_onnx} --data-dir {data}",
                                   "is an ONNX model without resnet-cifar's metadata"),
    "predict-onnx-truncated": Case("predict {onnx_truncated} {png}", "is not a readable ONNX model (truncated"),
    "evaluate-onnx-not-onnx": Case("evaluate {text_onnx} --data-dir {data}", "is not a readable ONNX model"),
    "predict-onnx-explain": Case("predict {onnx} {png} --explain {out}/cam", "--explain draws Grad-CAM maps"),
    "evaluate-onnx-on-a-gpu": Case("evaluate {onnx} --data-dir {data} --device cuda",
                                   "runs on the CPU with onnxruntime"),
    # evaluate
    "evaluate-data-dir-missing": Case("evaluate {ckpt} --data-dir {missing}", "does not exist"),
    # evaluate: the test sets beyond CIFAR's, corruptions and test-time views
    "evaluate-cifar101-without-data-dir": Case("evaluate {ckpt} --dataset cifar10.1", "needs --data-dir"),
    "evaluate-cifar101-files-missing": Case("evaluate {ckpt} --dataset cifar10.1 --data-dir {no_images}",
                                            "cifar10.1_v6_data.npy is missing"),
    "evaluate-cifar101-wrong-shape": Case("evaluate {ckpt} --dataset cifar10.1 --data-dir {c101_bad_shape}",
                                          "the published file holds uint8 images of shape (N, 32, 32, 3)"),
    "evaluate-cifar101-wrong-dtype": Case("evaluate {ckpt} --dataset cifar10.1 --data-dir {c101_bad_dtype}",
                                          "holds float64 images"),
    "evaluate-cifar101-label-count": Case("evaluate {ckpt} --dataset cifar10.1 --data-dir {c101_bad_labels}",
                                          "has 3 labels for the 4 images beside it"),
    "evaluate-cifar10c-missing": Case("evaluate {ckpt} --dataset cifar10-c --data-dir {no_images}",
                                      "No CIFAR-10-C found"),
    "evaluate-cifar10c-corruption-file-missing": Case("evaluate {ckpt} --dataset cifar10-c --data-dir {c10c} "
                                                      "--corruptions snow", "snow.npy is missing"),
    "evaluate-cifar100c-with-a-cifar10-model": Case("evaluate {ckpt} --dataset cifar100-c --data-dir {c10c}",
                                                    "trained on 10 classes"),
    "evaluate-unknown-corruption": Case("evaluate {ckpt} --data-dir {data} --corruptions rain",
                                        "Unknown corruption 'rain'"),
    "evaluate-severity-6": Case("evaluate {ckpt} --data-dir {data} --corruptions fog --severities 4-6",
                                "must name severities from 1 to 5"),
    "evaluate-tta-fraction-0": Case("evaluate {ckpt} --data-dir {data} --tta-fraction 0",
                                    "--tta-fraction must be above 0"),
    "evaluate-data-dir-a-text-file": Case("evaluate {ckpt} --data-dir {text}",
                                          "is a file, not a folder or a cifar10 archive"),
    "evaluate-empty-val-split": Case("evaluate {ckpt} --data-dir {data} --split val --val-split 0", "split is empty"),
    "evaluate-batch-size-0": Case("evaluate {ckpt} --batch-size 0", "--batch-size must be at least 1"),
    "evaluate-other-classes": Case("evaluate {ckpt} --dataset folder --data-dir {two_classes}",
                                   "was trained on 10 classes"),
    "evaluate-output-a-file": Case("evaluate {ckpt} --data-dir {data} --output {text}", "is a file, not a folder"),
    "evaluate-output-under-proc": Case("evaluate {ckpt} --data-dir {data} --output /proc/evaluation",
                                       "/proc does not take new files"),
    "evaluate-output-read-only": Case("evaluate {ckpt} --data-dir {data} --output {readonly}/evaluation",
                                      "Cannot write", needs="readonly"),
    # predict
    "predict-image-missing": Case("predict {ckpt} {missing}", "does not exist", code=1),
    "predict-image-a-text-file": Case("predict {ckpt} {text}", "Cannot read the image", code=1),
    "predict-folder-without-images": Case("predict {ckpt} {no_images}", "holds no image files", code=1),
    "predict-float-image": Case("predict {ckpt} {float_tif}", "floating-point pixels (mode F)", code=1),
    "predict-32-bit-image": Case("predict {ckpt} {int32_tif}", "32-bit or signed integer pixels (mode I)", code=1),
    "predict-top-k-0": Case("predict {ckpt} {png} --top-k 0", "--top-k must be at least 1"),
    "predict-unknown-device": Case("predict {ckpt} {png} --device cuda:99", "--device cuda:99"),
    # train: data
    "train-data-dir-missing": Case(TRAIN.replace("{data}", "{missing}"), "does not exist"),
    "train-data-dir-a-text-file": Case(TRAIN.replace("{data}", "{text}"),
                                       "is a file, not a folder or a cifar10 archive"),
    "train-archive-that-is-a-web-page": Case(TRAIN.replace("{data}", "{bad_download}"), "is not a tar archive"),
    "train-folder-of-one-class": Case(TRAIN.replace("{data}", "{one_class}") + " --dataset folder",
                                      "has one class sub-folder (ship)"),
    "train-folder-data-dir-a-file": Case(TRAIN.replace("{data}", "{text}") + " --dataset folder",
                                         "is a file, not a folder"),
    "train-val-split-too-large": Case(TRAIN + " --val-split 100000", "--val-split 100000 leaves no training images"),
    "train-evaluate-test-without-a-test-split": Case(TRAIN.replace("{data}", "{no_test}") + " --evaluate-test",
                                                     "test_batch is missing"),
    # train: settings, checked before any work
    "train-config-gives-a-key-twice": Case(TRAIN + " --config {yaml_twice}", "gives 'lr' twice (again on line 2)"),
    "train-config-not-utf8": Case(TRAIN + " --config {yaml_latin1}", "is not UTF-8 text"),
    "train-config-a-folder": Case(TRAIN + " --config {no_images}", "is a folder; pass a YAML file"),
    "train-config-lr-infinite": Case(TRAIN + " --config {yaml_inf}", "must be a finite float, got inf"),
    "train-lr-nan": Case(TRAIN + " --lr nan", "must be a finite float, got nan"),
    "train-lr-inf": Case(TRAIN + " --lr inf", "must be a finite float, got inf"),
    "train-label-smoothing-1.5": Case(TRAIN + " --label-smoothing 1.5", "must be in [0, 1); got 1.5"),
    "train-input-too-small": Case(TRAIN + " --input-size 8", "fastresnet8 cannot take 8x8 images"),
    # train: --init-from
    "init-from-with-cifar-stem": Case(TRAIN + " --model resnet18 --init-from {state_dict}", "--stem imagenet"),
    "init-from-a-paper-resnet": Case(TRAIN + " --model resnet20 --init-from {state_dict}", "--model NAME"),
    "init-from-onnx": Case(f"{TRAIN} {STEM} --init-from {{onnx}}", "is an ONNX model, not a weights file"),
    "init-from-a-checkpoint": Case(f"{TRAIN} {STEM} --init-from {{ckpt}}", "pass --resume instead"),
    "init-from-a-folder": Case(f"{TRAIN} {STEM} --init-from {{run}}", "is a folder, not a weights file"),
    "init-from-missing": Case(f"{TRAIN} {STEM} --init-from {{missing}}", "does not exist"),
    # train: run folders
    "train-output-a-file": Case(TRAIN.replace("{out}/run", "{text}"), "is a file"),
    "train-output-under-proc": Case(TRAIN.replace("{out}/run", "/proc/run"), "/proc does not take new files"),
    "train-output-read-only": Case(TRAIN.replace("{out}/run", "{readonly}/run"), "Cannot write", needs="readonly"),
    "train-resume-missing": Case("train --resume {missing}", "does not exist"),
    "train-resume-a-run-in-use": Case("train --resume {locked} --epochs 2", "to take the folder over"),
    "train-resume-with-a-stale-lock": Case("train --resume {stale} --epochs 1", "already trained 1 of 1 epochs",
                                           needs="proc"),
    "train-unknown-model": Case(TRAIN + " --model resnet21", "resnet21"),
    "train-preset-that-does-not-fit-the-model": Case(TRAIN + " --model resnet56 --preset fast",
                                                     "--preset fast sets whiten_stem, which resnet56 cannot take"),
    "train-whiten-stem-on-a-paper-network": Case(TRAIN + " --model resnet20 --whiten-stem",
                                                 "--model resnet20 cannot take --whiten-stem"),
    "train-epochs-0": Case(TRAIN + " --epochs 0", "epochs"),
    "train-on-cifar101": Case(TRAIN + " --dataset cifar10.1", "is a test set for evaluation only"),
    "train-tta-fraction-0": Case(TRAIN + " --tta-fraction 0", "'tta_fraction' must be in (0, 1]"),
}

# Runs that must succeed; tests below look at what they printed.
SUCCESSES = {
    "predict-8-and-16-bit-twins": "predict {ckpt} {ship8} {ship16} {ship_alpha} --format json --top-k 10",
}


class CreatesFile:
    """Unpickling this calls open(path, "w"): the file appearing would prove code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "resnet_cifar", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def mount_tmpfs(folder: Path, *options: str) -> bool:
    """Mount a fresh tmpfs on `folder` (root only); False where this machine does not let us."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    folder.mkdir(exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def save_image(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The files the cases point at, by name.

    "readonly" and "full" are present only where this machine lets the test make
    them, and "proc" only where /proc tells when a process started.
    """
    root = tmp_path_factory.mktemp("world")
    files: dict[str, Path] = {"root": root, "missing": root / "no-such-file", "text": root / "notes.txt",
                              "empty": root / "empty.pt"}
    files["text"].write_text("a plain text file\n")
    files["empty"].touch()

    files["data"] = write_cifar10(root / "data", n_train=50, n_test=10).parent
    files["batch"] = files["data"] / "cifar-10-batches-py" / "data_batch_1"
    files["run"] = root / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--preset", "paper", "--data-dir", str(files["data"]), "--val-split", "10",
                     "--batch-size", "16", "--epochs", "1", "--device", "cpu", "--model", "resnet20",
                     "--output", str(files["run"])]) == 0
    finally:
        torch.set_num_threads(threads)
    files["ckpt"] = files["run"] / "checkpoints" / "best.pt"
    files["bare_ckpt"] = write_checkpoint(root / "bare.pt")  # no training config: where its data is, is unknown
    files["ckpt_link"] = root / "hard-link.pt"
    os.link(files["ckpt"], files["ckpt_link"])
    model = load_checkpoint(files["ckpt"])
    for name, fmt in (("onnx", "onnx"), ("ts", "torchscript")):
        files[name] = root / f"model.{name}"
        export(model, files[name], fmt)
    files["onnx_truncated"] = root / "truncated.onnx"
    files["onnx_truncated"].write_bytes(files["onnx"].read_bytes()[:5000])
    files["text_onnx"] = root / "notes.onnx"
    files["text_onnx"].write_text("a plain text file\n")
    files["foreign_onnx"] = foreign_onnx(root / "foreign.onnx")
    files["existing"] = root / "existing.onnx"
    files["existing"].write_bytes(b"an older export")
    files["truncated"] = root / "truncated.pt"
    files["truncated"].write_bytes(files["ckpt"].read_bytes()[:100_000])
    files["cache"] = root / "cache.pt"
    torch.save({"images": torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "labels": torch.zeros(2)}, files["cache"])
    files["state_dict"] = root / "state_dict.pt"
    torch.save(create_model("resnet20").state_dict(), files["state_dict"])
    files["evil"] = root / "evil.pt"
    torch.save({"model": CreatesFile(root / "pwned")}, files["evil"])
    files["no_test"] = root / "no-test"
    shutil.copytree(files["data"], files["no_test"])
    (files["no_test"] / "cifar-10-batches-py" / "test_batch").unlink()
    for name, text in (("yaml_twice", b"lr: 0.1\nlr: 0.2\n"), ("yaml_latin1", "model: r\xe9snet20\n".encode("latin-1")),
                       ("yaml_inf", b"lr: .inf\n")):
        files[name] = root / f"{name}.yaml"
        files[name].write_bytes(text)
    for name, data, labels in (("c101_bad_shape", np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, np.int32)),
                               ("c101_bad_dtype", np.zeros((4, 32, 32, 3)), np.zeros(4, np.int32)),
                               ("c101_bad_labels", np.zeros((4, 32, 32, 3), np.uint8), np.zeros(3, np.int32))):
        files[name] = root / name
        files[name].mkdir()
        np.save(files[name] / "cifar10.1_v6_data.npy", data)
        np.save(files[name] / "cifar10.1_v6_labels.npy", labels)
    files["c10c"] = root / "CIFAR-10-C"
    files["c10c"].mkdir()
    np.save(files["c10c"] / "labels.npy", np.zeros(10, np.uint8))
    np.save(files["c10c"] / "fog.npy", np.zeros((10, 32, 32, 3), np.uint8))
    files["bad_download"] = root / "bad-download"
    (root / "bad-download").mkdir()
    (root / "bad-download" / "cifar-10-python.tar.gz").write_text("<html>503 Service Unavailable</html>\n")

    ship = synthetic_images(np.array([8]), 10, seed=0)[0]  # [32, 32, 3] uint8, class "ship"
    gray = np.asarray(Image.fromarray(ship).convert("L"))
    files["png"] = save_image(root / "photo.png", Image.fromarray(ship))
    files["ship8"] = save_image(root / "ships" / "ship8.png", Image.fromarray(gray))
    files["ship16"] = save_image(root / "ships" / "ship16.png", Image.fromarray(gray.astype(np.uint16) * 257))
    alpha = np.dstack([gray, gray, gray, np.full_like(gray, 255)])  # opaque: must look like the others
    files["ship_alpha"] = save_image(root / "ships" / "ship-rgba.png", Image.fromarray(alpha))
    files["float_tif"] = save_image(root / "float.tif", Image.fromarray(gray.astype(np.float32) / 255))
    files["int32_tif"] = save_image(root / "int32.tif", Image.fromarray(gray.astype(np.int32) * 65536))
    files["no_images"] = root / "no-images"
    files["no_images"].mkdir()
    for index in range(3):
        save_image(root / "one-class" / "train" / "ship" / f"{index}.png", Image.fromarray(ship))
        save_image(root / "two-classes" / "test" / "ship" / f"{index}.png", Image.fromarray(ship))
        save_image(root / "two-classes" / "test" / "frog" / f"{index}.png", Image.fromarray(ship))
    files["one_class"], files["two_classes"] = root / "one-class", root / "two-classes"

    host = socket.gethostname()
    started = _process_start(os.getpid())
    for name, lock in (("locked", f"{host} {os.getpid()} {started or ''}"), ("stale", f"{host} {os.getpid()} 0/1")):
        shutil.copytree(files["run"], root / name)
        (root / name / ".lock").write_text(lock.strip() + "\n")
        files[name] = root / name
    if started is not None:
        files["proc"] = root

    mounted = []
    if mount_tmpfs(root / "readonly", "size=1m") and subprocess.run(
            ["mount", "-o", "remount,ro", str(root / "readonly")]).returncode == 0:
        mounted.append(root / "readonly")
        files["readonly"] = root / "readonly"
    elif os.geteuid() != 0:  # chmod binds everyone but root
        (root / "readonly").mkdir()
        (root / "readonly").chmod(0o555)
        files["readonly"] = root / "readonly"
    if mount_tmpfs(root / "full", "size=64k"):
        mounted.append(root / "full")
        (root / "full" / "old.onnx").write_bytes(b"an older export")
        files["full"] = root / "full"
    yield {name: str(path) for name, path in files.items()}
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)
    if (root / "readonly").exists():
        (root / "readonly").chmod(0o755)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under `root`, with each file's content hash and modification time.

    Folder datasets' caches are left out: any command reading a folder dataset may write one.
    """
    entries = {}
    for path in sorted(root.rglob("*")):
        if CACHE_FOLDER in path.parts:
            continue
        if path.is_file():
            entries[str(path)] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mtime_ns}"
        else:
            entries[str(path)] = "folder"
    return entries


@dataclass
class Outcome:
    result: subprocess.CompletedProcess
    left_behind: list[str]  # what the command left in its scratch folder


@dataclass
class Runs:
    outcomes: dict[str, Outcome]  # by case name; a case this machine cannot set up is absent
    changed: list[str]  # the shared files and folders that differ after the runs


@pytest.fixture(scope="module")
def runs(world, tmp_path_factory) -> Runs:
    """Every case and success run, as many at a time as there are cores."""
    scratch = tmp_path_factory.mktemp("cases")
    commands = {name: case.args for name, case in CASES.items() if case.needs is None or case.needs in world}
    commands.update(SUCCESSES)

    def run(name: str) -> Outcome:
        folder = scratch / name
        folder.mkdir()
        args = [arg.format(**world, out=folder) for arg in shlex.split(commands[name])]
        result = run_cli(args, folder)
        return Outcome(result, sorted(str(path.relative_to(folder)) for path in folder.rglob("*")))

    before = snapshot(Path(world["root"]))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        outcomes = dict(zip(commands, pool.map(run, commands)))
    after = snapshot(Path(world["root"]))
    return Runs(outcomes, sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path)))


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """stderr without argparse's usage lines and the loader's warning that the synthetic CIFAR files differ
    from the official ones."""
    return [line for line in result.stderr.splitlines()
            if not (line.startswith(("usage:", " ")) or "release (md5); loading them anyway" in line)]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_ends_in_one_sentence(name, runs):
    case = CASES[name]
    if name not in runs.outcomes:
        pytest.skip(f"this machine cannot make the {case.needs} case (a tmpfs mount needs root, a start time /proc)")
    outcome = runs.outcomes[name]
    result = outcome.result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == case.code, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"resnet-cifar {case.args.split()[0]}: "), lines[0]
    assert case.says in lines[0], lines[0]
    assert outcome.left_behind == [], f"left behind: {outcome.left_behind}"


def test_no_case_changed_a_file_it_was_given(runs):
    assert runs.changed == []


def test_16_bit_and_opaque_rgba_images_predict_as_their_8_bit_twin(runs):
    result = runs.outcomes["predict-8-and-16-bit-twins"].result
    assert result.returncode == 0, result.stderr
    eight, sixteen, rgba = json.loads(result.stdout)
    for other in (sixteen, rgba):
        assert [p["class"] for p in other["predictions"]] == [p["class"] for p in eight["predictions"]]
        assert [p["probability"] for p in other["predictions"]] == pytest.approx(
            [p["probability"] for p in eight["predictions"]], abs=1e-6)
