import numpy as np
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from engine.learning.probabilities import cosine_probs, prediction_stats, softmax


@given(arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 6)),
              elements=st.floats(-1e4, 1e4, allow_nan=False)))
def test_softmax_rows_are_probabilities(logits):
    probs = softmax(logits)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_prediction_stats_known_answers():
    stats = prediction_stats(np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]]))
    assert stats["label"].tolist() == [0, 0]
    np.testing.assert_allclose(stats["confidence"], [0.7, 0.5])
    np.testing.assert_allclose(stats["margin"], [0.5, 0.0])
    expected = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    np.testing.assert_allclose(stats["entropy"], [expected, np.log(2)], rtol=1e-6)


def test_cosine_probs_prefers_the_nearest_class():
    classes = np.eye(3, dtype=np.float32)
    images = np.array([[0.0, 1.0, 0.0], [0.6, 0.0, 0.8]], dtype=np.float32)
    probs = cosine_probs(images, classes, logit_scale=100.0)
    assert probs.argmax(axis=1).tolist() == [1, 2]
