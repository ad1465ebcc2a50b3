"""engine.learning.quality_estimates against simulated audits of a known population: the 95 % intervals cover, the prior
is the audit's shares, a clearly worse round is flagged and an equal one is not."""

import numpy as np

from engine.learning.quality_estimates import (Summary, accuracy_estimate, class_prior, class_share_estimates,
                                               paired_difference, prediction_powered_mean, wilson_interval)


def _population(n=5000, classes=4, seed=0):
    """A known population: truth drawn from a long-tailed prior, and a model whose top probability tracks whether
    it is right (right 70 % of the time)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(classes, n, p=[0.55, 0.25, 0.15, 0.05])
    right = rng.random(n) < 0.7
    predicted = np.where(right, truth, (truth + rng.integers(1, classes, n)) % classes)
    confidence = np.clip(np.where(right, 0.75, 0.45) + rng.normal(0, 0.12, n), 0.3, 0.99)
    probs = np.full((n, classes), 0.0)
    probs[np.arange(n), predicted] = confidence
    probs += ((1 - confidence) / (classes - 1))[:, None] * (probs == 0)
    return truth, probs


def test_wilson_and_prediction_powered_intervals_cover_over_400_audits():
    truth, probs = _population()
    rng = np.random.default_rng(1)
    wilson_held = ppi_held = 0
    for _ in range(400):
        audit = rng.choice(len(truth), 60, replace=False)
        rest = np.setdiff1d(np.arange(len(truth)), audit)
        true_accuracy = float((probs[rest].argmax(1) == truth[rest]).mean())
        right = probs[audit].argmax(1) == truth[audit]
        low, high = wilson_interval(float(right.sum()), len(audit))
        wilson_held += low <= true_accuracy <= high
        estimate = accuracy_estimate(truth[audit], probs[audit], probs[rest])
        assert estimate["method"] == "prediction-powered"
        ppi_held += estimate["low"] <= true_accuracy <= estimate["high"]
    assert wilson_held / 400 >= 0.9 and ppi_held / 400 >= 0.9


def test_a_useless_guess_gives_the_audit_mean_and_a_good_one_a_narrower_interval():
    rng = np.random.default_rng(2)
    values = (rng.random(200) < 0.3).astype(float)
    useless = prediction_powered_mean(values, np.full(200, 0.5), Summary.of(np.full(1000, 0.5)))
    assert abs(useless["estimate"] - values.mean()) < 1e-9
    good = prediction_powered_mean(values, 0.1 + 0.8 * values,
                                   Summary.of(rng.choice([0.1, 0.9], 1000, p=[0.7, 0.3])))
    assert good["high"] - good["low"] < useless["high"] - useless["low"]


def test_prior_from_a_known_audit():
    truth = np.array([0] * 6 + [1] * 3 + [-1])  # 10 audited images: 6, 3, none of class 2, one of no class
    probs = np.full((10, 3), 1 / 3)
    shares = class_share_estimates(truth, probs, np.full((50, 3), 1 / 3))
    assert len(shares) == 4 and abs(shares[-1]["estimate"] - 0.1) < 1e-9  # "none of these"
    prior = class_prior(shares, 3)
    floor = 0.5 / 10  # a class the audit never met keeps half an audited image's share
    np.testing.assert_allclose(prior, np.array([0.6, 0.3, floor]) / (0.9 + floor))
    assert class_prior([], 3) is None


def test_paired_difference_flags_a_clearly_worse_round_and_not_an_equal_one():
    rng = np.random.default_rng(3)
    old = rng.random(200) < 0.8
    worse = old & (rng.random(200) < 0.8)  # loses a fifth of the right answers
    assert paired_difference(worse, old)["worse"]
    equal = old.copy()
    equal[np.flatnonzero(old)[:8]] = False  # as many right answers lost as gained
    equal[np.flatnonzero(~old)[:8]] = True
    assert not paired_difference(old, old)["worse"] and not paired_difference(equal, old)["worse"]


def test_a_summary_of_the_population_gives_the_estimate_its_array_gives():
    truth, probs = _population()
    audit, rest = np.arange(80), np.arange(80, len(truth))
    from_array = accuracy_estimate(truth[audit], probs[audit], probs[rest])
    from_summary = accuracy_estimate(truth[audit], probs[audit], Summary.of(probs[rest].max(axis=1)))
    assert from_array == from_summary
