"""Numbers a round reports. Pure functions over numpy arrays."""

from __future__ import annotations

import numpy as np


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    """Share of `predicted` (N,) equal to `truth` (N,); None when there is nothing to score."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    return float((predicted == truth).mean()) if len(truth) else None


def flip_share(previous: np.ndarray, current: np.ndarray) -> float | None:
    """Share of images whose predicted label changed between two rounds (N,) each; lower = the labels settle."""
    previous, current = np.asarray(previous), np.asarray(current)
    return float((previous != current).mean()) if len(previous) else None


def class_counts(labels: np.ndarray, n_classes: int) -> list[int]:
    """How many of `labels` (M,) fall in each of `n_classes`."""
    return np.bincount(np.asarray(labels, int), minlength=n_classes).tolist()
