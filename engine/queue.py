"""The review queue: which images a person should look at next, best first, each with its reason.
Pure functions over numpy arrays."""

from __future__ import annotations

import numpy as np

MISTAKE, DISAGREE, UNCERTAIN = "likely label mistake", "zero-shot and teacher disagree", "low margin"
MISTAKE_CONFIDENCE = 0.9  # the page's "possible label mistake" filter (storage.gallery) applies the same rule


def likely_label_mistakes(predicted: np.ndarray, confidence: np.ndarray, labels: np.ndarray, *,
                          min_confidence: float = MISTAKE_CONFIDENCE) -> np.ndarray:
    """(N,) bool: the image has a class label (`labels` (N,), -1 = none) and the shown prediction `predicted`
    (N,) contradicts it with `confidence` (N,) at least `min_confidence`. One rule for the queue and the page."""
    labels = np.asarray(labels)
    return (labels >= 0) & (np.asarray(predicted) != labels) & (np.asarray(confidence) >= min_confidence)


def k_center_greedy(points: np.ndarray, k: int, *, covered: np.ndarray | None = None) -> np.ndarray:
    """Pick `k` rows of `points` (N, D) that spread over the space: each pick is the point farthest from every
    earlier pick and from the `covered` points (M, D) (Sener & Savarese, "Active Learning for Convolutional
    Neural Networks: A Core-Set Approach", 2018). Returns indices in pick order."""
    points = np.asarray(points, np.float32)
    k = min(k, len(points))
    if k <= 0:
        return np.zeros(0, int)
    nearest = np.full(len(points), np.inf, np.float32)
    if covered is not None and len(covered):
        for start in range(0, len(covered), 4096):
            chunk = np.asarray(covered[start:start + 4096], np.float32)
            nearest = np.minimum(nearest, _squared_distances(points, chunk).min(axis=1))
    squared_norms = (points * points).sum(1)  # once, not per pick: each pick is then one matrix-vector product
    picks = []
    for _ in range(k):
        pick = int(np.argmax(nearest)) if np.isfinite(nearest).any() else 0
        picks.append(pick)
        to_pick = np.maximum(squared_norms + squared_norms[pick] - 2 * (points @ points[pick]), 0)
        nearest = np.minimum(nearest, to_pick)
        nearest[pick] = -1.0
    return np.array(picks)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0)


def rank_review_queue(teacher_probs: np.ndarray, zeroshot_probs: np.ndarray, labels: np.ndarray,
                      human: np.ndarray, embeddings: np.ndarray, *, k: int, mistake_confidence: float = MISTAKE_CONFIDENCE,
                      pool_factor: int = 10, disagreement_bonus: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """Rank images for review; returns (indices (<= k,), reasons).

    teacher_probs, zeroshot_probs: (N, C). labels: (N,) current label per image, -1 = none. human: (N,) bool,
    the label came from a person. embeddings: (N, D), used to spread picks.

    First, likely label mistakes: a label the teacher contradicts with at least `mistake_confidence`, lowest
    self-confidence p[label] first (the label-quality score of Northcutt et al., "Confident Learning", 2021;
    lower = more likely mislabeled). Then, among images no person labeled, the most uncertain ones (small
    top-1 minus top-2 margin, less `disagreement_bonus` when zero-shot and teacher disagree), thinned to a pool of
    `pool_factor * k` and chosen by k-center greedy so the picks cover different regions instead of `k`
    near-copies of one confusing case.
    """
    teacher_probs = np.asarray(teacher_probs)
    labels, human = np.asarray(labels), np.asarray(human, bool)
    predicted = teacher_probs.argmax(axis=1)
    labeled = labels >= 0
    self_confidence = np.where(labeled, teacher_probs[np.arange(len(labels)), np.maximum(labels, 0)], 1.0)
    contradicted = likely_label_mistakes(predicted, teacher_probs.max(axis=1), labels,
                                         min_confidence=mistake_confidence)
    mistakes = np.flatnonzero(contradicted)
    mistakes = mistakes[np.argsort(self_confidence[mistakes], kind="stable")][:k]
    reasons = [MISTAKE] * len(mistakes)

    remaining = k - len(mistakes)
    candidates = np.flatnonzero(~human & ~contradicted)
    if remaining > 0 and len(candidates):
        top_two = -np.sort(-teacher_probs[candidates], axis=1)[:, :2]
        margin = top_two[:, 0] - (top_two[:, 1] if teacher_probs.shape[1] > 1 else 0)
        disagree = np.asarray(zeroshot_probs)[candidates].argmax(axis=1) != predicted[candidates]
        priority = margin - disagreement_bonus * disagree
        pool = candidates[np.argsort(priority, kind="stable")[:pool_factor * remaining]]
        picks = pool[k_center_greedy(embeddings[pool], remaining, covered=embeddings[human])]
        disagrees = np.asarray(zeroshot_probs)[picks].argmax(axis=1) != predicted[picks]
        mistakes = np.concatenate([mistakes, picks])
        reasons += [DISAGREE if d else UNCERTAIN for d in disagrees]
    return mistakes.astype(int), reasons
