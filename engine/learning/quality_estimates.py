"""Honest figures about a dataset from a random audit: accuracy, class shares, per-class precision and recall, each
with a 95 % interval, and the comparison of two rounds on the same audited images. Pure functions over numpy arrays.

The audit is a uniform random sample of the collection (engine.project.audit draws it); every figure here is about the
images no person labelled, judged out of sample (a round never trained on the audit label it is scored by).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
# Below this many audited images, a normal interval is not trusted (its coverage falls short near 0 or 1): the
# figure is then the plain audit share with Wilson's interval.
MIN_FOR_PREDICTION_POWERED = 30


def wilson_interval(successes: float, n: int, *, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (Wilson, "Probable inference, the law of succession, and
    statistical inference", 1927): unlike the normal interval it stays inside [0, 1] and covers near 0 and 1 with
    few samples. (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Summary:
    """What a prediction-powered estimate needs of the model's guesses over the population: their count, mean and
    sample variance (storage computes them in SQL at a million images; `of` from an array)."""

    size: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: np.ndarray) -> "Summary":
        values = np.asarray(values, np.float64)
        return cls(len(values), float(values.mean()) if len(values) else 0.0,
                   float(np.var(values, ddof=1)) if len(values) > 1 else 0.0)


def prediction_powered_mean(audit_values: np.ndarray, audit_predicted: np.ndarray, population: Summary, *,
                            z: float = Z95) -> dict:
    """The mean of a 0/1 quantity over a population, from its true values on a uniform random sample (the audit)
    and the model's guess of it everywhere: prediction-powered inference with power tuning (Angelopoulos et al.,
    "PPI++: Efficient Prediction-Powered Inference", 2023). The guess's mean over the population, corrected by
    the guess's mean error on the audit; lambda scales the guess by how well it tracks the truth on the audit, so
    a useless guess gives the plain audit mean back (never a wider interval than it, up to sampling noise).

    audit_values (n,) in {0, 1}; audit_predicted (n,) the model's probability of the value on those images, out of
    sample; population: the `Summary` of the same guess over the images the figure is about (the audit's
    excluded). Returns {"estimate", "low", "high", "n", "method"}: below MIN_FOR_PREDICTION_POWERED audited images,
    or without a population, the audit share with Wilson's interval.
    """
    values = np.asarray(audit_values, np.float64)
    guess = np.asarray(audit_predicted, np.float64)
    n, m = len(values), population.size
    if guess.shape != values.shape:
        raise ValueError(f"audit_values and audit_predicted must have the same shape, got {values.shape} and "
                         f"{guess.shape}")
    if n < MIN_FOR_PREDICTION_POWERED or m < 2:
        low, high = wilson_interval(float(values.sum()), n)
        return {"estimate": float(values.mean()) if n else None, "low": low, "high": high, "n": n,
                "method": "wilson"}
    guess_variance = float(np.var(guess, ddof=1))
    if guess_variance <= 1e-12:
        lam = 0.0
    else:
        covariance = float(np.cov(values, guess, ddof=1)[0, 1])
        lam = float(np.clip(covariance / ((1 + n / m) * guess_variance), 0.0, 1.0))
    estimate = lam * population.mean + float((values - lam * guess).mean())
    variance = float(np.var(values - lam * guess, ddof=1)) / n + lam * lam * population.variance / m
    half = z * math.sqrt(max(variance, 0.0))
    return {"estimate": float(np.clip(estimate, 0.0, 1.0)), "low": float(max(0.0, estimate - half)),
            "high": float(min(1.0, estimate + half)), "n": n, "method": "prediction-powered"}


def accuracy_estimate(truth: np.ndarray, audit_probs: np.ndarray, population: np.ndarray | Summary) -> dict:
    """The share of right labels among the images no person labelled, as an export writes them (the predicted
    class), from a uniform audit. truth (n,) class columns, -1 = "none of these" (never right: an export writes a
    class for every machine label); audit_probs (n, C) the predictions of the audited images, out of sample;
    population: the predictions (M, C) of the images the figure is about, or the `Summary` of their confidence
    (top probability). See `prediction_powered_mean`."""
    truth, audit_probs = np.asarray(truth, int), np.asarray(audit_probs)
    if not isinstance(population, Summary):
        population = np.asarray(population)
        population = Summary.of(population.max(axis=1) if len(population) else np.zeros(0))
    right = (audit_probs.argmax(axis=1) == truth) if len(truth) else np.zeros(0, bool)
    return prediction_powered_mean(right, audit_probs.max(axis=1) if len(truth) else np.zeros(0), population)


def class_share_estimates(truth: np.ndarray, audit_probs: np.ndarray,
                          population: np.ndarray | list[Summary]) -> list[dict]:
    """Each class's share of the collection and the share of "none of these" (the last entry), from a uniform
    audit: `prediction_powered_mean` of "the image is of class c" with the model's probability of c as the guess
    ("none of these" has no guess: its audit share with Wilson's interval). truth (n,), -1 = none; audit_probs
    (n, C); population: the probabilities (M, C) over the collection, or one `Summary` per class. Returns C + 1
    dicts."""
    truth, audit_probs = np.asarray(truth, int), np.asarray(audit_probs)
    if not isinstance(population, list):
        population = [Summary.of(column) for column in np.asarray(population).T]
    shares = [prediction_powered_mean(truth == c, audit_probs[:, c], population[c])
              for c in range(audit_probs.shape[1])]
    low, high = wilson_interval(float((truth < 0).sum()), len(truth))
    shares.append({"estimate": float((truth < 0).mean()) if len(truth) else None, "low": low, "high": high,
                   "n": len(truth), "method": "wilson"})
    return shares


def class_prior(shares: list[dict], n_classes: int) -> np.ndarray | None:
    """The class distribution (C,) summing to one that a round's pseudo-label quotas follow, from
    `class_share_estimates` (the "none of these" share left out: no quota is spent on it); None without an
    audit. A class the audit never met keeps a small floor (half of one audited image's share), so a rare class
    still gets a few of its surest pseudo-labels."""
    if not shares or not shares[0]["n"]:
        return None
    floor = 0.5 / shares[0]["n"]
    prior = np.array([max(float(share["estimate"] or 0.0), floor) for share in shares[:n_classes]])
    return prior / prior.sum()


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (C + 1, C): rows the audited truth (the last row "none of these"), columns the predicted class."""
    truth, predicted = np.asarray(truth, int), np.asarray(predicted, int)
    rows = np.where(truth < 0, n_classes, truth)
    matrix = np.zeros((n_classes + 1, n_classes), int)
    np.add.at(matrix, (rows, predicted), 1)
    return matrix


def precision_recall(matrix: np.ndarray) -> list[dict]:
    """Per class, from a `confusion_matrix`: precision (of the images predicted c, the share that are c) and
    recall (of the images that are c, the share predicted c), each with Wilson's interval and its count."""
    n_classes = matrix.shape[1]
    result = []
    for c in range(n_classes):
        hits, predicted, actual = int(matrix[c, c]), int(matrix[:, c].sum()), int(matrix[c].sum())
        precision_low, precision_high = wilson_interval(hits, predicted)
        recall_low, recall_high = wilson_interval(hits, actual)
        result.append({"precision": hits / predicted if predicted else None, "precision_low": precision_low,
                       "precision_high": precision_high, "predicted": predicted,
                       "recall": hits / actual if actual else None, "recall_low": recall_low,
                       "recall_high": recall_high, "audited": actual})
    return result


def paired_difference(right_new: np.ndarray, right_old: np.ndarray, *, z: float = Z95) -> dict:
    """How much more often a new round is right than an old one on the same audited images (n,) bool each, with a
    95 % interval of the paired differences: {"difference", "low", "high", "n", "worse"}; `worse` when the whole
    interval lies below zero (the new round is worse beyond its sampling noise)."""
    new, old = np.asarray(right_new, np.float64), np.asarray(right_old, np.float64)
    n = len(new)
    if n == 0:
        return {"difference": None, "low": None, "high": None, "n": 0, "worse": False}
    differences = new - old
    mean = float(differences.mean())
    spread = float(np.std(differences, ddof=1)) if n > 1 else 1.0
    # Differences that are all equal (often all zero) would give an interval of width zero; one discordant pair
    # more in either direction is the least the data cannot rule out.
    spread = max(spread, 1.0 / n)
    half = z * spread / math.sqrt(n)
    return {"difference": mean, "low": mean - half, "high": mean + half, "n": n, "worse": mean + half < 0}
