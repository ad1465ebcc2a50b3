import numpy as np
import pytest

from engine.learning.calibration import expected_calibration_error, fit_temperature
from engine.learning.probabilities import softmax


def test_fit_temperature_recovers_the_true_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (20000, 5))
    true_probs = softmax(logits / 2.5)
    labels = np.array([rng.choice(5, p=p / p.sum()) for p in true_probs])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_ece_known_answers():
    # all at confidence 0.8, 80% right: perfectly calibrated
    probs = np.tile([[0.8, 0.2]], (10, 1))
    labels = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    # all at confidence 0.9, half right: gap 0.4
    assert expected_calibration_error(np.tile([[0.9, 0.1]], (4, 1)), np.array([0, 0, 1, 1])) == pytest.approx(0.4)


def test_no_labels_means_no_temperature_change():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, int)) == 1.0
