"""Train/val/test splits for export: stratified by label, and the same split for the same rows and seed."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from engine.errors import LabelloopError

# "val", not "validation": YOLO classification needs `val/`, and Hugging Face reads `val/` as its validation split
SPLIT_NAMES = ("train", "val", "test")


def parse_split(value: str | Sequence[float]) -> tuple[float, ...]:
    """'0.8,0.1,0.1' (or a sequence of numbers) -> the fractions of train, val and (optionally) test. Refuses
    anything but two or three fractions in [0, 1] that sum to 1 with a non-empty train share."""
    try:
        fractions = tuple(float(part) for part in (value.split(",") if isinstance(value, str) else value))
    except ValueError:
        fractions = ()
    if not (2 <= len(fractions) <= 3 and all(0.0 <= f <= 1.0 for f in fractions)  # NaN fails this too
            and fractions[0] > 0 and math.isclose(sum(fractions), 1.0, abs_tol=1e-6)):
        raise LabelloopError(f"--split must be two or three fractions for train,val[,test] that sum to 1, "
                             f"such as 0.8,0.1,0.1; got {value!r}")
    return fractions


def stratified_split(labels: np.ndarray, fractions: Sequence[float], *, seed: int) -> np.ndarray:
    """Split index (N,) int, 0..len(fractions)-1, for rows with `labels` (N,) (any sortable values).

    Each label's rows are shuffled with `seed` and divided by largest remainder, so every class is split in
    the given proportions to within one image (a model evaluated on val sees each class as often as in train),
    and the same labels in the same order with the same seed give the same split."""
    rng = np.random.default_rng(seed)
    shares = np.asarray(fractions, float)
    assignment = np.empty(len(labels), np.int64)
    for value in np.unique(labels):  # sorted, so the shuffles are drawn in the same order every time
        rows = rng.permutation(np.flatnonzero(labels == value))
        exact = len(rows) * shares
        counts = np.floor(exact).astype(np.int64)
        leftover = len(rows) - counts.sum()
        counts[np.argsort(counts - exact, kind="stable")[:leftover]] += 1
        assignment[rows] = np.repeat(np.arange(len(shares)), counts)
    return assignment
