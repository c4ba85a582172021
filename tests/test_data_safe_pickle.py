"""The restricted unpickler: plain data of every pickle protocol loads, anything else is refused."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from resnet_cifar.data.safe_pickle import RefusedPickle, load_data_pickle


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_reads_plain_data_of_any_protocol(tmp_path, protocol):
    value = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "floats": np.linspace(0, 1, 5),
             "labels": [1, 2, 3], "scalar": np.int64(7), b"raw": b"\x00\xff", "text": "t", "nested": (1.5, None)}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = load_data_pickle(path)
    assert np.array_equal(loaded["data"], value["data"]) and loaded["data"].dtype == np.uint8
    assert np.array_equal(loaded["floats"], value["floats"])
    assert loaded["labels"] == [1, 2, 3] and loaded["scalar"] == 7 and loaded["raw"] == b"\x00\xff"
    assert loaded["nested"] == (1.5, None)


def test_restricted_unpickler_refuses_object_arrays(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": np.array([None, 1], dtype=object)}, protocol=2))
    with pytest.raises(RefusedPickle, match="not a number type"):
        load_data_pickle(path)


class _RunsAShellCommand:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_a_pickle_naming_any_other_callable_is_refused(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": _RunsAShellCommand()}, protocol=2))
    with pytest.raises(RefusedPickle, match=r"asks to run (posix|os)\.system"):
        load_data_pickle(path)
