"""Which teacher predictions become pseudo-labels for the next student. Pure functions over numpy arrays."""

from __future__ import annotations

import math

import numpy as np

STRATEGIES = ("balanced", "threshold")


def select_pseudo_labels(probs: np.ndarray, *, method: str = "balanced", eligible: np.ndarray | None = None,
                         per_class: int | np.ndarray = 0, threshold: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Pick pseudo-labels from teacher probabilities `probs` (N, C).

    method="balanced": for each class, the `per_class` images the teacher is most confident belong to it (among
        those it predicts as that class). Class balance keeps a confident majority class from swallowing the
        rest, the failure mode of plain thresholding on CLIP (Menghini et al., "Enhancing CLIP with CLIP:
        Exploring Pseudolabeling for Limited-Label Prompt Tuning", 2023, the iterative GRIP strategy).
        `per_class` is one count for every class or (C,) counts (`prior_quotas`).
    method="threshold": every image whose top probability is at least `threshold` (the classic baseline).

    `eligible` (N,) bool excludes images (for example those a person labeled). Returns (indices, labels), both
    (M,) int, indices ascending.
    """
    probs = np.asarray(probs)
    if method not in STRATEGIES:
        raise ValueError(f"unknown selection method {method!r}; valid: {', '.join(STRATEGIES)}")
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, C), got shape {probs.shape}")
    eligible = np.ones(len(probs), bool) if eligible is None else np.asarray(eligible, bool)
    return _balanced(probs, eligible, per_class) if method == "balanced" else _threshold(probs, eligible, threshold)


def _balanced(probs: np.ndarray, eligible: np.ndarray,
              per_class: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted = probs.argmax(axis=1)
    quotas = np.broadcast_to(np.asarray(per_class, int), (probs.shape[1],))
    chosen = []
    for label in range(probs.shape[1]):
        candidates = np.flatnonzero(eligible & (predicted == label))
        order = np.argsort(-probs[candidates, label], kind="stable")
        chosen.append(candidates[order[:quotas[label]]])
    indices = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, int)
    return indices, predicted[indices]


def _threshold(probs: np.ndarray, eligible: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    indices = np.flatnonzero(eligible & (probs.max(axis=1) >= threshold))
    return indices, probs[indices].argmax(axis=1)


def pseudo_labels_per_class(round_number: int, n_images: int, n_classes: int, *, step: float = 0.2,
                            cap: int = 2000) -> int:
    """GRIP's growing schedule: round r takes the top `step * r` share of an even split of the images per class,
    so early rounds trust only the teacher's surest picks; `cap` bounds the training set on very large projects
    (a linear head over 512-d features gains little past a few thousand examples per class)."""
    share = min(1.0, step * max(1, round_number))
    return int(min(cap, math.ceil(round(share * n_images / max(1, n_classes), 6))))


def prior_quotas(round_number: int, n_images: int, prior: np.ndarray, *, step: float = 0.2,
                 cap: int = 2000) -> np.ndarray:
    """GRIP's growing schedule over a known class prior (C,) summing to one (from a random audit,
    engine.learning.quality_estimates.class_prior): round r takes the top `step * r` share of each class's expected
    count prior[c] * n_images instead of the even split's n_images / C, so a rare class is not padded with the teacher's
    wrong picks nor a common one starved (the even split's failure on long-tailed collections). (C,) ints, each at
    least 1 and at most `cap`."""
    prior = np.asarray(prior, np.float64)
    if prior.ndim != 1 or (prior < 0).any() or not np.isclose(prior.sum(), 1.0, atol=1e-6):
        raise ValueError(f"prior must be (C,) non-negative and sum to one, got {prior}")
    share = min(1.0, step * max(1, round_number))
    return np.clip(np.ceil(np.round(share * n_images * prior, 6)), 1, cap).astype(int)
