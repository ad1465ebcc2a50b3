"""engine.learning.agreement: kappas equal the reference implementations; consensus and accuracy estimates on
simulated people."""

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa as statsmodels_fleiss

from engine.learning.agreement import (MISSING, cohen_kappa, crowdlab, fleiss_kappa, fleiss_kappa_per_class,
                                       majority_vote, pair_confusion, pairwise_kappas, person_accuracy)


def _noisy_people(truth, n_classes, accuracies, seed):
    rng = np.random.default_rng(seed)
    labels = np.empty((len(truth), len(accuracies)), np.int64)
    for person, accuracy in enumerate(accuracies):
        wrong = rng.random(len(truth)) > accuracy
        labels[:, person] = np.where(wrong, (truth + rng.integers(1, n_classes, len(truth))) % n_classes, truth)
    return labels


@pytest.mark.parametrize("seed", range(5))
def test_kappas_equal_sklearn_and_statsmodels(seed):
    truth = np.random.default_rng(seed).integers(0, 4, 300)
    labels = _noisy_people(truth, 4, (0.9, 0.7, 0.5), seed)
    for a, b, kappa, n in pairwise_kappas(labels, 4):
        assert n == 300
        assert kappa == pytest.approx(cohen_kappa_score(labels[:, a], labels[:, b]), abs=1e-12)
    table, _ = aggregate_raters(labels, n_cat=4)
    assert fleiss_kappa(labels, 4) == pytest.approx(statsmodels_fleiss(table), abs=1e-12)


def test_per_class_fleiss_kappa_is_overall_kappa_of_that_class_against_the_rest():
    truth = np.random.default_rng(3).integers(0, 3, 200)
    labels = _noisy_people(truth, 3, (0.8, 0.6, 0.7), 3)
    per_class = fleiss_kappa_per_class(labels, 3)
    for k in range(3):
        binary = (labels == k).astype(np.int64)
        table, _ = aggregate_raters(binary, n_cat=2)
        assert per_class[k] == pytest.approx(statsmodels_fleiss(table), abs=1e-12)


def test_only_shared_images_count_and_missing_labels_are_skipped():
    labels = np.array([[0, 0, MISSING], [1, 1, 1], [2, MISSING, MISSING], [0, 1, MISSING]])
    pairs = {(a, b): (kappa, n) for a, b, kappa, n in pairwise_kappas(labels, 3)}
    assert pairs[(0, 1)][1] == 3 and pairs[(0, 2)] == (pytest.approx(float("nan"), nan_ok=True), 1)
    assert (1, 2) in pairs
    confusion = pair_confusion(labels[:, 0], labels[:, 1], 3)
    assert confusion.sum() == 3 and confusion[0, 1] == 1
    assert cohen_kappa(np.array([1, 1]), np.array([1, 1]), 3) != cohen_kappa(np.array([1, 1]), np.array([1, 1]), 3)
    assert np.isnan(fleiss_kappa(np.array([[0, MISSING], [1, MISSING]]), 2))  # nobody shares an image


def test_majority_vote_breaks_ties_by_the_model():
    labels = np.array([[0, 1], [2, 2], [MISSING, MISSING]])
    probs = np.array([[0.2, 0.7, 0.1], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    assert majority_vote(labels, 3, probs).tolist() == [1, 2, MISSING]
    assert majority_vote(labels, 3).tolist() == [0, 2, MISSING]


def test_model_aware_consensus_beats_majority_when_people_are_noisy_and_the_model_is_good():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 2000)
    labels = _noisy_people(truth, 5, (0.8, 0.65, 0.5), 0)
    probs = np.full((2000, 5), 0.05)
    probs[np.arange(2000), np.where(rng.random(2000) < 0.9, truth, (truth + 1) % 5)] = 0.8
    majority = np.mean(majority_vote(labels, 5, probs) == truth)
    consensus = crowdlab(labels, probs)
    assert np.mean(consensus.labels == truth) > majority
    assert np.allclose(consensus.posterior.sum(axis=1), 1.0)
    assert consensus.person_weights[0] > consensus.person_weights[1] > consensus.person_weights[2]


def test_person_accuracy_estimates_come_close_to_the_truth():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 6, 1500)
    accuracies = (0.9, 0.75, 0.6)
    labels = _noisy_people(truth, 6, accuracies, 1)
    labels[1000:, 1:] = MISSING  # the first person alone labels the rest: only shared images are judged
    probs = np.full((1500, 6), 0.1 / 5)
    probs[np.arange(1500), truth] = 0.9
    estimated = person_accuracy(labels, probs)
    true = (labels[:1000] == truth[:1000, None]).mean(axis=0)
    assert np.abs(estimated - true).max() < 0.05
    alone = person_accuracy(np.array([[0, MISSING], [1, 1]]), np.full((2, 2), 0.5))
    assert not np.isnan(alone).any()
    assert np.isnan(person_accuracy(np.array([[0, MISSING], [MISSING, 1]]), np.full((2, 2), 0.5))).all()
