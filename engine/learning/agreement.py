"""Agreement between people who labelled the same images, and one consensus label per image, over arrays.

`labels` is always an (N images, P people) integer matrix of class indices 0..K-1, MISSING where that person did
not label that image; `probs` an (N, K) matrix of the model's out-of-sample class probabilities.

- Cohen's kappa (Cohen, 1960) for a pair of people, Fleiss' kappa (Fleiss, 1971) over everyone, overall and per
  class; with a varying number of people per image, Fleiss' per-image agreement is averaged over the images at least
  two people labelled (the same figure as Fleiss' when every image has the same number).
- `majority_vote`, and `crowdlab`: the model-aware consensus of CROWDLAB (Goh, Tkachenko and Mueller, "CROWDLAB:
  Supervised learning to infer consensus labels and quality scores for data with multiple annotators", 2022), where
  each person's labels and the model's probabilities are weighted by how much better than always answering the
  commonest class each of them agrees with the others (a person's label weighed by their own estimated accuracy).
- `person_accuracy`: each person's estimated accuracy (Dawid and Skene's EM, the model's probabilities as prior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MISSING = -1  # no label from this person for this image
_SMALLEST_WEIGHT = 1e-6  # CROWDLAB's floor: a weight is never zero or negative


def cohen_kappa(first: np.ndarray, second: np.ndarray, n_classes: int) -> float:
    """Cohen's kappa of two people's labels of the same images (1 = always agree, 0 = as often as chance would);
    nan when chance alone predicts full agreement (both always gave one and the same class)."""
    first, second = np.asarray(first), np.asarray(second)
    observed = float(np.mean(first == second))
    expected = float(np.bincount(first, minlength=n_classes) @ np.bincount(second, minlength=n_classes)) / len(first) ** 2
    return float("nan") if expected == 1.0 else (observed - expected) / (1.0 - expected)


def pairwise_kappas(labels: np.ndarray, n_classes: int) -> list[tuple[int, int, float, int]]:
    """(person a, person b, Cohen's kappa, images both labelled) for every pair of people with an image in common."""
    pairs = []
    for a in range(labels.shape[1]):
        for b in range(a + 1, labels.shape[1]):
            both = (labels[:, a] != MISSING) & (labels[:, b] != MISSING)
            if both.any():
                pairs.append((a, b, cohen_kappa(labels[both, a], labels[both, b], n_classes), int(both.sum())))
    return pairs


def pair_confusion(first: np.ndarray, second: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts of the images both labelled: row = the first person's class, column = the second's."""
    both = (first != MISSING) & (second != MISSING)
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (first[both], second[both]), 1)
    return matrix


def rater_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, K): how many people gave each image each class."""
    counts = np.zeros((labels.shape[0], n_classes), np.int64)
    rows, people = np.nonzero(labels != MISSING)
    np.add.at(counts, (rows, labels[rows, people]), 1)
    return counts


def _shared(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (rater_counts) of the images at least two people labelled."""
    counts = rater_counts(labels, n_classes)
    return counts[counts.sum(axis=1) >= 2]


def fleiss_kappa(labels: np.ndarray, n_classes: int) -> float:
    """Fleiss' kappa over the images at least two people labelled; nan without any, or when chance alone predicts
    full agreement."""
    counts = _shared(labels, n_classes)
    if not len(counts):
        return float("nan")
    raters = counts.sum(axis=1)
    agreement = np.mean((counts * (counts - 1)).sum(axis=1) / (raters * (raters - 1)))
    shares = counts.sum(axis=0) / counts.sum()
    expected = float(shares @ shares)
    return float("nan") if expected == 1.0 else float((agreement - expected) / (1.0 - expected))


def fleiss_kappa_per_class(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) Fleiss' kappa of each class against all the others (Fleiss, 1971, eq. 13: one minus the disagreement
    about it over the disagreement chance would give); nan for a class nobody gave."""
    counts = _shared(labels, n_classes)
    raters = counts.sum(axis=1, keepdims=True)
    shares = counts.sum(axis=0) / max(counts.sum(), 1)
    disagreement = (counts * (raters - counts)).sum(axis=0)
    by_chance = (raters * (raters - 1)).sum() * shares * (1 - shares)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(by_chance > 0, 1.0 - disagreement / by_chance, np.nan)


def majority_vote(labels: np.ndarray, n_classes: int, probs: np.ndarray | None = None) -> np.ndarray:
    """(N,) the class most people gave each image, MISSING where nobody labelled it; a tie goes to the tied class
    the model finds likeliest (with `probs`), else to the lowest class index."""
    counts = rater_counts(labels, n_classes)
    votes = counts + probs * 1e-3 if probs is not None else counts  # below one vote: decides between tied classes
    return np.where(counts.sum(axis=1) > 0, votes.argmax(axis=1), MISSING)


@dataclass(frozen=True)
class Consensus:
    labels: np.ndarray  # (N,) the consensus class of each image
    confidence: np.ndarray  # (N,) its posterior probability (CROWDLAB's consensus quality score)
    posterior: np.ndarray  # (N, K)
    person_weights: np.ndarray  # (P,)
    model_weight: float
    person_accuracy: np.ndarray  # (P,) each person's estimated accuracy (`person_accuracy`)


def _others_agreement(labels: np.ndarray, counts: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """(P,) for each person, the share of the other people's labels of the same images that equal theirs (nan for
    a person who shares no image)."""
    agreement = np.full(labels.shape[1], np.nan)
    raters = counts.sum(axis=1)
    for person in range(labels.shape[1]):
        mine = shared & (labels[:, person] != MISSING)
        if mine.any():
            same = counts[mine, labels[mine, person]] - 1
            agreement[person] = float(same.sum() / (raters[mine] - 1).sum())
    return agreement


def crowdlab(labels: np.ndarray, probs: np.ndarray) -> Consensus:
    """CROWDLAB's consensus (Goh et al., 2022, section 3): start from the majority vote; weigh the model by
    1 - its error against that vote over the error of always answering the commonest class, times the square root
    of the mean number of labels an image has, and each person the same way by their agreement with the others;
    the posterior is the weighted mean of the model's probabilities and each person's likelihood of their label.
    One change, measured better on both sets of benchmarks/bench_teams.py (docs/benchmarks.md, "Teams"): a person's
    label counts as the class with that person's own estimated accuracy (`person_accuracy`), the rest spread evenly,
    where CROWDLAB gives every person the one rate at which two people agree."""
    n_images, n_classes = probs.shape
    counts = rater_counts(labels, n_classes)
    raters = counts.sum(axis=1)
    shared = raters >= 2
    initial = majority_vote(labels, n_classes, probs)
    labelled = raters > 0
    commonest_error = 1.0 - np.bincount(initial[labelled], minlength=n_classes).max() / max(labelled.sum(), 1)
    commonest_error = max(commonest_error, _SMALLEST_WEIGHT)
    if shared.any():
        agreement = float((counts[shared] * (counts[shared] - 1)).sum() / (raters[shared] * (raters[shared] - 1)).sum())
        person_agreement = _others_agreement(labels, counts, shared)
        model_error = float(np.mean(probs[shared].argmax(axis=1) != initial[shared]))
    else:  # nobody shares an image: nothing says who is better; the model is judged against the labels it has
        agreement, person_agreement = 1.0 - commonest_error / 2, np.full(labels.shape[1], np.nan)
        model_error = float(np.mean(probs[labelled].argmax(axis=1) != initial[labelled])) if labelled.any() else 1.0
    person_agreement = np.where(np.isnan(person_agreement), agreement, person_agreement)
    person_weights = np.maximum(1.0 - (1.0 - person_agreement) / commonest_error, _SMALLEST_WEIGHT)
    model_weight = max(1.0 - model_error / commonest_error, _SMALLEST_WEIGHT) * np.sqrt(raters[labelled].mean()
                                                                                         if labelled.any() else 1.0)
    accuracy = person_accuracy(labels, probs)
    accuracy = np.where(np.isnan(accuracy), agreement, accuracy)
    posterior = _posterior(labels, probs, person_weights, model_weight, accuracy)
    consensus = posterior.argmax(axis=1)
    return Consensus(labels=consensus, confidence=posterior[np.arange(n_images), consensus], posterior=posterior,
                     person_weights=person_weights, model_weight=float(model_weight), person_accuracy=accuracy)


def _posterior(labels: np.ndarray, probs: np.ndarray, person_weights: np.ndarray, model_weight: float,
               accuracy: np.ndarray) -> np.ndarray:
    """(N, K) the weighted mean of the model's probabilities and each person's likelihood of their label (their
    `accuracy` for the class they gave, the rest spread evenly over the other classes)."""
    n_classes = probs.shape[1]
    total = model_weight * probs.astype(np.float64)
    weights = np.full(len(probs), model_weight)
    for person, weight in enumerate(person_weights):
        gave = labels[:, person] != MISSING
        likelihood = np.full((int(gave.sum()), n_classes), (1.0 - accuracy[person]) / max(n_classes - 1, 1))
        likelihood[np.arange(len(likelihood)), labels[gave, person]] = accuracy[person]
        total[gave] += weight * likelihood
        weights[gave] += weight
    return total / weights[:, None]


def person_accuracy(labels: np.ndarray, probs: np.ndarray, *, iterations: int = 20) -> np.ndarray:
    """(P,) each person's estimated accuracy, by expectation-maximisation in the manner of Dawid and Skene
    ("Maximum likelihood estimation of observer error-rates using the EM algorithm", 1979) with one accuracy per
    person (a wrong label spread evenly over the other classes) and the model's probabilities as each image's prior:
    the posterior of each image's class is the prior times every person's likelihood of their label, and a person's
    accuracy the mean posterior probability of the classes they gave, over the images they share with someone; nan
    for a person who shares no image."""
    n_classes = probs.shape[1]
    given = labels != MISSING
    shared = given.sum(axis=1) >= 2
    accuracy = np.full(labels.shape[1], 0.7)  # a start between chance and perfect; EM moves it
    log_prior = np.log(np.clip(probs, 1e-6, 1.0))
    for _ in range(iterations):
        log_posterior = log_prior.copy()
        for person, rate in enumerate(accuracy):
            rows = np.flatnonzero(given[:, person])
            log_posterior[rows] += np.log((1.0 - rate) / max(n_classes - 1, 1))
            log_posterior[rows, labels[rows, person]] += np.log(rate) - np.log((1.0 - rate) / max(n_classes - 1, 1))
        posterior = np.exp(log_posterior - log_posterior.max(axis=1, keepdims=True))
        posterior /= posterior.sum(axis=1, keepdims=True)
        for person in range(labels.shape[1]):
            mine = np.flatnonzero(shared & given[:, person])
            if len(mine):
                accuracy[person] = np.clip(posterior[mine, labels[mine, person]].mean(), 0.01, 0.99)
    return np.where((shared[:, None] & given).any(axis=0), accuracy, np.nan)
