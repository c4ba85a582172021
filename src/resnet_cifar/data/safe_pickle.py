"""Read CIFAR batch files, which are pickles, without letting them run code.

A pickle can name any Python callable and have it called while loading, so an
ordinary `pickle.load` of a downloaded file runs whatever the file asks for.
The CIFAR batches only hold dicts, lists, strings, bytes, numbers and numpy
arrays of numbers. This unpickler admits exactly the few names those need, and
even for those it never calls numpy on the file's say-so: arrays, dtypes and
scalars come back as inert stand-ins that record their arguments, and are
rebuilt afterwards with `np.frombuffer` once their dtype is known to be a
plain number type.

Names a numpy array can be pickled under:
  - protocol 2 to 4: `numpy.core.multiarray._reconstruct` (or `numpy._core...` from
    numpy 2) plus a state tuple holding a `numpy.dtype` and the raw bytes;
  - protocol 5: `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)`;
  - numpy scalars: `numpy.core.multiarray.scalar(dtype, bytes)`.
Python 3 writes bytes under protocol 2 as `_codecs.encode(text, "latin1")`.
The official release was written by Python 2, whose byte strings we decode
as latin-1 (the encoding that maps bytes 0-255 to the same code points).
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

class RefusedPickle(pickle.UnpicklingError):
    """The file asks for something other than plain data (as opposed to being damaged)."""


# Number kinds an array may have: bool, signed and unsigned integers, floats.
_NUMBER_KINDS = "biuf"


class _Dtype:
    """Stand-in for `numpy.dtype(name, align, copy)`; BUILD later adds the byte order."""

    def __init__(self, name: Any, *_ignored: Any) -> None:
        self.name = name
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "=", b"<", b">", b"|", b"="):
            self.byteorder = _text(state[1])
        if isinstance(state, tuple) and len(state) > 4 and (state[3] is not None or state[4] is not None):
            raise RefusedPickle("structured numpy dtypes are not allowed")

    def build(self) -> np.dtype:
        name = _text(self.name)
        if not isinstance(name, str):
            raise RefusedPickle("a numpy dtype must be named by a string")
        dtype = np.dtype(name)
        if dtype.kind not in _NUMBER_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise RefusedPickle(f"numpy dtype {name!r} is not a number type")
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


class _Array:
    """Stand-in for an ndarray pickled with `_reconstruct`; BUILD supplies shape, dtype and bytes."""

    def __init__(self, cls: Any = None, *_ignored: Any) -> None:
        if cls is not np.ndarray:
            raise RefusedPickle("only plain numpy arrays are allowed")
        self.state: tuple | None = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def build(self) -> np.ndarray:
        if not (isinstance(self.state, tuple) and len(self.state) == 5):
            raise RefusedPickle("a numpy array has an unexpected state")
        _version, shape, dtype, fortran, data = self.state
        return _array(data, dtype, shape, "F" if fortran else "C")


class _BufferArray:
    """Stand-in for `_frombuffer(buffer, dtype, shape, order)`, numpy's protocol-5 form."""

    def __init__(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> None:
        self.args = (buffer, dtype, shape, order)

    def build(self) -> np.ndarray:
        buffer, dtype, shape, order = self.args
        return _array(buffer, dtype, shape, "F" if _text(order) == "F" else "C")


class _Scalar:
    """Stand-in for a numpy scalar, `scalar(dtype, bytes)`."""

    def __init__(self, dtype: Any, data: Any = b"") -> None:
        self.args = (dtype, data)

    def build(self) -> Any:
        dtype, data = self.args
        return _array(data, dtype, (), "C")[()]


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode` as Python 3 uses it to pickle bytes under protocol 2, and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedPickle("_codecs.encode is allowed only to rebuild bytes")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _Dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _package in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_package}.multiarray", "_reconstruct")] = _Array
    _ALLOWED[(f"{_package}.multiarray", "scalar")] = _Scalar
    _ALLOWED[(f"{_package}.numeric", "_frombuffer")] = _BufferArray


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickle(f"it asks to run {module}.{name}, which a data file never needs") from None


def _text(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, bytes) else value


def _array(data: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    if not isinstance(dtype, _Dtype):
        raise RefusedPickle("a numpy array has no dtype")
    built = dtype.build()
    if isinstance(data, str):  # a Python 2 byte string, decoded as latin-1 on the way in
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray)):
        raise RefusedPickle("a numpy array's data is not raw bytes")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise RefusedPickle("a numpy array has an invalid shape")
    count = int(np.prod(shape, dtype=np.int64))
    if count * built.itemsize != len(data):
        raise RefusedPickle("a numpy array's data does not match its shape")
    return np.frombuffer(data, dtype=built).reshape(shape, order=order).copy(order="C")


def _rebuild(value: Any) -> Any:
    """Swap the stand-ins for real numpy objects and byte-string keys for str keys."""
    if isinstance(value, (_Array, _BufferArray, _Scalar)):
        return value.build()
    if isinstance(value, _Dtype):
        return value.build()
    if isinstance(value, dict):
        return {_text(key): _rebuild(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rebuild(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_rebuild(item) for item in value)
    return value


def load_data_pickle(path: Path) -> Any:
    """The object pickled in `path`, provided it holds only plain data.

    Raises RefusedPickle when the file asks for anything else, and the usual
    pickle.UnpicklingError/EOFError/ValueError when it is damaged; the caller
    turns both into a message naming the file.
    """
    with open(path, "rb") as f:
        data = f.read()
    return _rebuild(_RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load())
