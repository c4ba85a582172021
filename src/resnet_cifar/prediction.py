"""What predicting an image gives, whichever way the model runs: a checkpoint with torch, an ONNX file without.

Kept apart from inference.py, which imports torch, so that predicting with an
ONNX file can make the same results without it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """The `top_k` most likely classes of one image, most likely first."""

    source: str  # the file path, or "image N" for in-memory images
    classes: list[str]
    probabilities: list[float]


def top_predictions(logits: np.ndarray, classes: Sequence[str], top_k: int, sources: Sequence[str]) -> list[Prediction]:
    """One Prediction per row of `logits` [N, C]: the softmax's `top_k` classes (capped at C), in float32 as
    torch computes them."""
    logits = logits.astype(np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :min(top_k, len(classes))]
    return [Prediction(source, [classes[i] for i in row], [float(p) for p in probabilities[n, row]])
            for n, (source, row) in enumerate(zip(sources, order))]
