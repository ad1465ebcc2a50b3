import numpy as np
import pytest

from engine.selftrain.selection import pseudo_labels_per_class, select_pseudo_labels

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
