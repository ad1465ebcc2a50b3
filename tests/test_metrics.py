import numpy as np

from engine.learning.round_metrics import accuracy, class_counts, flip_share


def test_accuracy_known_answers():
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
    assert accuracy(np.array([], int), np.array([], int)) is None  # nothing scored is not 0% or 100%


def test_flip_share_counts_changed_predictions():
    assert flip_share(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 2])) == 0.4
    assert flip_share(np.array([3, 3]), np.array([3, 3])) == 0.0
    assert flip_share(np.array([], int), np.array([], int)) is None


def test_class_counts_include_empty_classes():
    assert class_counts(np.array([2, 0, 2, 2]), 4) == [1, 0, 3, 0]
    assert class_counts(np.array([], int), 3) == [0, 0, 0]
