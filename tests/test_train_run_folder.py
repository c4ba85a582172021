"""The run folder's metrics reach TensorBoard when it is installed."""
from __future__ import annotations

import pytest

from resnet_cifar.train.run_folder import METRICS, RunFolder


def test_metrics_are_logged_as_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = RunFolder(tmp_path / "run", enabled=True)
    rows = []
    for epoch, val_acc in ((1, 0.25), (2, 0.5)):
        rows.append({key: 0.1 * epoch for key in METRICS} | {"epoch": epoch, "val_acc": val_acc})
        folder.write_metrics(rows)
    folder.close()

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(METRICS[1:])
    assert [(s.step, s.value) for s in events.Scalars("val_acc")] == [(1, 0.25), (2, 0.5)]
