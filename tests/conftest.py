"""Shared test fixtures: tiny synthetic CIFAR releases written in the official format.

The images are learnable on purpose (each class has its own colour and a
class-dependent stripe, plus noise), so a few training steps on them must beat
chance; that lets end-to-end tests check that training really learns.
"""
from __future__ import annotations

import http.server
import io
import pickle
import struct
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

# A small SGD recipe with many moving parts (the `cpu` recipe's before it became fastresnet8's): resnet20,
# Nesterov SGD, warmup then linear decay, label smoothing, EMA, reflected crops and alternating flips,
# flip-translate TTA. Tests add their own sizes after it (later flags win).
SGD_RECIPE = ["--preset", "paper", "--model", "resnet20", "--batch-size", "256", "--optimizer", "sgd", "--nesterov",
              "--lr", "0.2", "--momentum", "0.9", "--weight-decay", "5e-4", "--no-weight-decay-bn-bias",
              "--epochs", "20", "--schedule", "linear", "--warmup-epochs", "1", "--label-smoothing", "0.1", "--ema",
              "--ema-decay", "0.99", "--crop-padding", "4", "--padding-mode", "reflect", "--flip", "alternate",
              "--tta", "flip-translate"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic_images(labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """uint8 [N, 32, 32, 3] images whose colour and stripe position depend on the label."""
    rng = np.random.default_rng(seed)
    hues = np.random.default_rng(1234).integers(30, 226, size=(num_classes, 3))
    images = rng.normal(0, 20, size=(len(labels), 32, 32, 3)) + hues[labels][:, None, None, :]
    for i, label in enumerate(labels):
        row = (label * 3) % 30
        images[i, row : row + 2, :, :] = 255 - hues[label]
    return np.clip(images, 0, 255).astype(np.uint8)


def _batch(images: np.ndarray, labels: np.ndarray, label_key: str, extra: dict | None = None) -> dict:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # rows of 1024 R, 1024 G, 1024 B
    batch = {"batch_label": "synthetic", label_key: labels.tolist(), "data": data,
             "filenames": [f"{i}.png" for i in range(len(labels))]}
    batch.update(extra or {})
    return batch


class _Python2Pickler(pickle._Pickler):
    """Pickles the way the official release was written, by Python 2.

    Python 2 byte strings (str) are SHORT_BINSTRING/BINSTRING opcodes, which
    Python 3 only reads back with encoding="latin1" or "bytes"; numpy lives
    under its old module name numpy.core.multiarray.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_string(self, obj) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_python2_string
    dispatch[bytes] = save_python2_string

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def _dump(obj, path: Path, python2: bool = False) -> None:
    with open(path, "wb") as f:
        if python2:
            _Python2Pickler(f, protocol=2).dump(obj)
        else:
            pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, n_train: int = 500, n_test: int = 100, seed: int = 0, archive: bool = False,
                  python2: bool = False) -> Path:
    """Write `root/cifar-10-batches-py` (or `root/cifar-10-python.tar.gz`); return what was written.

    python2=True writes the byte-string pickles of the official release.
    """
    rng = np.random.default_rng(seed)
    train_labels = rng.integers(0, 10, n_train)
    train_images = synthetic_images(train_labels, 10, seed)
    test_labels = rng.integers(0, 10, n_test)
    test_images = synthetic_images(test_labels, 10, seed + 1)
    return write_cifar10_arrays(root, train_images, train_labels, test_images, test_labels, archive, python2)


def write_cifar10_arrays(root: Path, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                         test_labels: np.ndarray, archive: bool = False, python2: bool = False) -> Path:
    """write_cifar10 with given uint8 [N, 32, 32, 3] images and labels (five training batches, one test batch)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for index, part in enumerate(np.array_split(np.arange(len(train_labels)), 5)):
        _dump(_batch(train_images[part], train_labels[part], "labels"), folder / f"data_batch_{index + 1}", python2)
    _dump(_batch(test_images, test_labels, "labels"), folder / "test_batch", python2)
    _dump({"label_names": CIFAR10_CLASSES, "num_cases_per_batch": len(train_labels) // 5, "num_vis": 3072},
          folder / "batches.meta", python2)
    return _archive(folder, Path(root) / "cifar-10-python.tar.gz") if archive else folder


def write_cifar100(root: Path, n_train: int = 500, n_test: int = 100, seed: int = 0, archive: bool = False,
                   python2: bool = False) -> Path:
    """Write `root/cifar-100-python` (train, test, meta) or its .tar.gz; fine label = 5 * coarse + k."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, count in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, 100, count)
        images = synthetic_images(fine, 100, seed + len(name))
        _dump(_batch(images, fine, "fine_labels", {"coarse_labels": (fine // 5).tolist()}), folder / name, python2)
    _dump({"fine_label_names": [f"fine{i}" for i in range(100)],
           "coarse_label_names": [f"coarse{i}" for i in range(20)]}, folder / "meta", python2)
    return _archive(folder, Path(root) / "cifar-100-python.tar.gz") if archive else folder


def foreign_onnx(path: Path) -> Path:
    """A valid ONNX model that resnet-cifar did not write: one Identity node and no metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["logits"])], "identity",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 10])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])])
    onnx.save(helper.make_model(graph), path)
    return path


def _archive(folder: Path, target: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    target.write_bytes(buffer.getvalue())
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    return target


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    """A data dir holding an extracted synthetic CIFAR-10 (500 train, 100 test images)."""
    write_cifar10(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Path:
    write_cifar100(tmp_path / "data100")
    return tmp_path / "data100"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (the real CIFAR-10 JPEG archive); tests using it skip where it is absent."""
    archive = SHARED_DATA / "cifar10-train-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 images not found at {archive}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_jpeg_folder(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder dataset of 300 real images, train/<class>/<n>.jpg, taken from ../shared/data.

    The archive is grouped by class, so the first two classes (150 images each)
    are the ones reachable without decompressing the whole archive.
    """
    root = tmp_path_factory.mktemp("shared-jpeg")
    taken: dict[str, int] = {}
    with tarfile.open(shared_data / "cifar10-train-jpeg.tar.gz", "r|gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3:
                continue
            if parts[1] not in taken and len(taken) == 2:
                break
            if taken.setdefault(parts[1], 0) < 150:
                target = root.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                taken[parts[1]] += 1
    return root


@pytest.fixture
def one_thread(monkeypatch):
    """Train on one thread: on a shared 2-core machine, two threads that spin waiting for a busy core are many times slower."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/served over http://127.0.0.1:PORT/ from a thread."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
