"""CIFAR-10.1 and CIFAR-10-C / CIFAR-100-C read from small arrays in their published layouts, downloaded from a local
server, and their bad files refused in one sentence naming the file."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile

import numpy as np
import pytest

from resnet_cifar.data import shifted
from resnet_cifar.data.archive import file_md5
from resnet_cifar.data.shifted import corrupted_folder, read_cifar101, read_corrupted
from resnet_cifar.errors import UserError


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def write_cifar101(folder, n: int = 12, version: str = "v6", label_dtype=np.int32):
    """The published files: uint8 [N, 32, 32, 3] images and one 4-byte integer label each."""
    folder.mkdir(parents=True, exist_ok=True)
    data, labels = images(n), (np.arange(n) % 10).astype(label_dtype)
    np.save(folder / f"cifar10.1_{version}_data.npy", data)
    np.save(folder / f"cifar10.1_{version}_labels.npy", labels)
    return data, labels


def write_corrupted(folder, per_severity: int = 4, names=("gaussian_noise", "fog"), num_classes: int = 10):
    """CIFAR-10-C's layout: one [5 N, 32, 32, 3] file per corruption, severities in blocks, and 5 N labels."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.tile(np.arange(per_severity) % num_classes, 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    arrays = {}
    for seed, name in enumerate(names):
        arrays[name] = images(5 * per_severity, seed)
        np.save(folder / f"{name}.npy", arrays[name])
    return arrays, labels


def test_cifar101_reads_the_published_layout_in_both_versions(tmp_path):
    data, labels = write_cifar101(tmp_path, n=12)
    split = read_cifar101(tmp_path)
    assert split.images.shape == (12, 3, 32, 32) and split.images.is_contiguous()
    assert np.array_equal(split.images[5].permute(1, 2, 0).numpy(), data[5])
    assert split.labels.tolist() == labels.tolist()
    write_cifar101(tmp_path, n=7, version="v4", label_dtype=np.int64)
    assert len(read_cifar101(tmp_path, "v4")) == 7


def test_corrupted_reads_one_severity_block(tmp_path):
    arrays, labels = write_corrupted(tmp_path / "CIFAR-10-C")
    folder = corrupted_folder("cifar10-c", tmp_path)
    assert folder == tmp_path / "CIFAR-10-C" and corrupted_folder("cifar10-c", folder) == folder
    cell = read_corrupted(folder, "fog", 3, 10)
    assert cell.images.shape == (4, 3, 32, 32)
    assert np.array_equal(cell.images.permute(0, 2, 3, 1).numpy(), arrays["fog"][8:12])
    assert cell.labels.tolist() == labels[8:12].tolist()


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("damage, expected", [
    ("missing labels", "cifar10.1_v6_labels.npy is missing"),
    ("wrong shape", "holds uint8 images of shape (12, 3, 32, 32)"),
    ("wrong dtype", "holds float32 images"),
    ("label count", "has 11 labels for the 12 images beside it"),
    ("labels out of range", "labels outside 0..9"),
    ("pickled", "holds pickled objects"),
    ("truncated", "cifar10.1_v6_data.npy"),
])
def test_bad_cifar101_files_are_one_sentence_naming_the_file(tmp_path, damage, expected):
    write_cifar101(tmp_path)
    data, labels = tmp_path / "cifar10.1_v6_data.npy", tmp_path / "cifar10.1_v6_labels.npy"
    if damage == "missing labels":
        labels.unlink()
    elif damage == "wrong shape":
        np.save(data, images(12).transpose(0, 3, 1, 2))
    elif damage == "wrong dtype":
        np.save(data, images(12).astype(np.float32))
    elif damage == "label count":
        np.save(labels, np.zeros(11, dtype=np.int32))
    elif damage == "labels out of range":
        np.save(labels, np.full(12, 10, dtype=np.int32))
    elif damage == "pickled":
        np.save(data, np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)
    elif damage == "truncated":
        data.write_bytes(data.read_bytes()[:500])
    with pytest.raises(UserError) as error:
        read_cifar101(tmp_path)
    assert expected in one_line(error)


def test_bad_corrupted_files_are_one_sentence_naming_the_file(tmp_path):
    write_corrupted(tmp_path)
    with pytest.raises(UserError) as error:
        read_corrupted(tmp_path, "snow", 1, 10)
    assert "snow.npy is missing" in one_line(error)
    np.save(tmp_path / "fog.npy", images(21))
    with pytest.raises(UserError) as error:
        read_corrupted(tmp_path, "fog", 1, 10)
    assert "fog.npy holds 21 images, not five equal blocks" in one_line(error)
    np.save(tmp_path / "fog.npy", images(25))
    with pytest.raises(UserError) as error:
        read_corrupted(tmp_path, "fog", 1, 10)
    assert "labels.npy has 20 labels for the 25 images of fog.npy" in one_line(error)
    with pytest.raises(UserError) as error:
        corrupted_folder("cifar100-c", tmp_path / "nothing")
    assert "No CIFAR-100-C found" in one_line(error) and "--download" in str(error.value)


def test_download_fetches_cifar101_and_checks_its_sha256(http_server, tmp_path, monkeypatch):
    served, url = http_server
    write_cifar101(served, n=5)
    files = tuple(shifted.RemoteFile(name, f"{url}/{name}", hashlib.sha256((served / name).read_bytes()).hexdigest())
                  for name in ("cifar10.1_v6_data.npy", "cifar10.1_v6_labels.npy"))
    monkeypatch.setitem(shifted.CIFAR101_FILES, "v6", files)
    with pytest.raises(UserError, match="add --download"):
        read_cifar101(tmp_path / "data")
    assert len(read_cifar101(tmp_path / "data", download_missing=True)) == 5

    monkeypatch.setitem(shifted.CIFAR101_FILES, "v6", (dataclasses.replace(files[0], sha256="0" * 64), files[1]))
    with pytest.raises(UserError) as error:
        read_cifar101(tmp_path / "other", download_missing=True)
    assert "sha256" in one_line(error) and not (tmp_path / "other" / "cifar10.1_v6_data.npy").exists()


def test_download_fetches_and_unpacks_the_corrupted_archive(http_server, tmp_path, monkeypatch):
    served, url = http_server
    write_corrupted(tmp_path / "make" / "CIFAR-10-C")
    archive = served / "CIFAR-10-C.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "make" / "CIFAR-10-C", arcname="CIFAR-10-C")
    release = shifted.CORRUPTED["cifar10-c"]
    monkeypatch.setitem(shifted.CORRUPTED, "cifar10-c",
                        dataclasses.replace(release, url=f"{url}/CIFAR-10-C.tar", md5=file_md5(archive)))
    folder = corrupted_folder("cifar10-c", tmp_path / "data", download_missing=True)
    assert folder == tmp_path / "data" / "CIFAR-10-C" and len(read_corrupted(folder, "gaussian_noise", 5, 10)) == 4


def test_evaluate_on_cifar101_matches_a_direct_computation(tmp_path, capsys):
    from checkpoints import write_checkpoint
    from resnet_cifar.cli import main
    from test_evaluate import direct_accuracy

    data, labels = write_cifar101(tmp_path / "c101", n=30)
    checkpoint = write_checkpoint(tmp_path / "model.pt", config={"dataset": "cifar10", "data_dir": str(tmp_path)})
    assert main(["evaluate", str(checkpoint), "--dataset", "cifar10.1", "--data-dir", str(tmp_path / "c101"),
                 "--output", str(tmp_path / "eval")]) == 0
    assert "cifar10.1 cifar10.1 v6 split" not in capsys.readouterr().out
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert (report["dataset"], report["split"], report["images"]) == ("cifar10.1", "cifar10.1 v6", 30)
    split = read_cifar101(tmp_path / "c101")
    assert report["top1"] == pytest.approx(direct_accuracy(checkpoint, split.images, split.labels))


def test_evaluate_on_the_published_corrupted_set(tmp_path, cifar10_dir, capsys):
    from checkpoints import write_checkpoint
    from resnet_cifar.cli import main

    write_corrupted(tmp_path / "c10c" / "CIFAR-10-C", per_severity=6)
    checkpoint = write_checkpoint(tmp_path / "model.pt", config={"dataset": "cifar10", "data_dir": str(cifar10_dir),
                                                                 "tta": "flip"})
    assert main(["evaluate", str(checkpoint), "--dataset", "cifar10-c", "--data-dir", str(tmp_path / "c10c"),
                 "--corruptions", "fog,gaussian_noise", "--severities", "1,3-4", "--output", str(tmp_path / "eval")]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith(("gaussian_noise", "fog"))]
    assert [row.split()[0] for row in rows] == ["gaussian_noise", "fog"] and all(len(row.split()) == 5 for row in rows)
    assert any("on the cifar10 test split of" in line for line in lines)
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    table = report["corruptions"]
    assert table["source"] == "cifar10-c (published files)" and table["images_per_cell"] == 6
    assert list(table["accuracy"]) == ["gaussian_noise", "fog"] and list(table["accuracy"]["fog"]) == ["1", "3", "4"]
    cells = [value for row in table["accuracy"].values() for value in row.values()]
    assert table["mean_accuracy"] == pytest.approx(sum(cells) / len(cells)) and table["clean_accuracy"] is not None
    assert (tmp_path / "eval" / "corruptions.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flags, expected", [
    (["--dataset", "cifar10.1"], "--dataset cifar10.1 needs --data-dir"),
    (["--dataset", "cifar10.1", "--data-dir", "{tmp}"], "cifar10.1_v6_data.npy is missing"),
    (["--dataset", "cifar100-c", "--data-dir", "{tmp}"], "trained on 10 classes"),
    (["--dataset", "cifar10-c", "--data-dir", "{tmp}", "--corruptions", "rain"], "Unknown corruption 'rain'"),
    (["--dataset", "cifar10-c", "--data-dir", "{tmp}", "--severities", "0-2"], "--severities '0-2' must name"),
])
def test_evaluate_refuses_bad_requests_in_one_sentence(tmp_path, capsys, flags, expected):
    from checkpoints import write_checkpoint
    from resnet_cifar.cli import main

    checkpoint = write_checkpoint(tmp_path / "model.pt")
    assert main(["evaluate", str(checkpoint), *(flag.format(tmp=tmp_path) for flag in flags)]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["cifar10.1", "cifar10-c", "cifar100-c"])
def test_train_refuses_the_evaluation_sets(tmp_path, capsys, name):
    from resnet_cifar.cli import main

    assert main(["train", "--dataset", name, "--data-dir", str(tmp_path), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "is a test set for evaluation only" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
