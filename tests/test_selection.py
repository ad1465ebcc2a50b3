import numpy as np
import pytest

from engine.learning.selftrain.selection import prior_quotas, pseudo_labels_per_class, select_pseudo_labels

PROBS = np.array([
    [0.9, 0.1, 0.0],
    [0.8, 0.2, 0.0],
    [0.6, 0.4, 0.0],
    [0.1, 0.7, 0.2],
    [0.2, 0.5, 0.3],
    [0.0, 0.4, 0.6],
])


def test_balanced_takes_the_most_confident_per_predicted_class():
    indices, labels = select_pseudo_labels(PROBS, method="balanced", per_class=2)
    assert indices.tolist() == [0, 1, 3, 4, 5] and labels.tolist() == [0, 0, 1, 1, 2]


def test_balanced_respects_eligibility():
    eligible = np.array([False, True, True, True, True, True])
    indices, _ = select_pseudo_labels(PROBS, method="balanced", per_class=1, eligible=eligible)
    assert indices.tolist() == [1, 3, 5]


def test_threshold_takes_everything_confident_enough():
    indices, labels = select_pseudo_labels(PROBS, method="threshold", threshold=0.7)
    assert indices.tolist() == [0, 1, 3] and labels.tolist() == [0, 0, 1]


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: balanced, threshold"):
        select_pseudo_labels(PROBS, method="magic")


def test_schedule_grows_each_round_and_is_capped():
    counts = [pseudo_labels_per_class(r, 1000, 10, step=0.2, cap=2000) for r in range(1, 7)]
    assert counts == [20, 40, 60, 80, 100, 100]
    assert pseudo_labels_per_class(3, 10**6, 20, cap=2000) == 2000


def test_prior_quotas_follow_a_known_prior_and_grow_each_round():
    prior = np.array([0.5, 0.3, 0.15, 0.05])
    assert prior_quotas(1, 1000, prior, step=0.2).tolist() == [100, 60, 30, 10]
    assert prior_quotas(2, 1000, prior, step=0.2).tolist() == [200, 120, 60, 20]
    assert prior_quotas(9, 1000, prior, step=0.2, cap=300).tolist() == [300, 300, 150, 50]  # share tops out at 1
    assert prior_quotas(1, 10, np.array([0.999, 0.001]), step=0.2).tolist() == [2, 1]  # a rare class keeps one
    with pytest.raises(ValueError):
        prior_quotas(1, 1000, np.array([0.5, 0.2]))


def test_balanced_takes_per_class_quotas():
    indices, labels = select_pseudo_labels(PROBS, method="balanced", per_class=np.array([1, 2, 0]))
    assert indices.tolist() == [0, 3, 4] and labels.tolist() == [0, 1, 1]
