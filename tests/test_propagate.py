import numpy as np
import pytest

from engine.learning.selftrain.adapt import outlier_scores
from engine.learning.selftrain.config import RoundConfig
from engine.learning.neighbours import knn_graph
from engine.learning.selftrain.propagate import (affinity_matrix, ledoit_wolf, mcm_outlier_score, propagate_labels,
                                                 propagate_scores, rebalance, relative_mahalanobis)


def _two_clusters(n: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.concatenate([[1.0, 0.0, 0.0] + 0.05 * rng.standard_normal((n, 3)),
                        [0.0, 1.0, 0.0] + 0.05 * rng.standard_normal((n, 3))])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_knn_graph_finds_neighbours_in_the_same_cluster_and_never_the_image_itself():
    x = _two_clusters()
    neighbours, similarities = knn_graph(x, 5)
    assert neighbours.shape == similarities.shape == (40, 5)
    assert not (neighbours == np.arange(40)[:, None]).any()
    assert ((neighbours < 20) == (np.arange(40) < 20)[:, None]).all()
    assert (np.diff(similarities, axis=1) <= 1e-6).all()  # nearest first
    with pytest.raises(ValueError):
        knn_graph(x, 40)


def test_propagation_gives_each_cluster_the_label_of_its_one_labeled_image():
    x = _two_clusters()
    affinity = affinity_matrix(*knn_graph(x, 5))
    uninformed = np.full((40, 2), 0.5, np.float32)  # the classifier knows nothing
    refined = propagate_labels(affinity, uninformed, np.array([3, 27]), np.array([1, 0]), alpha=0.9)
    np.testing.assert_allclose(refined.sum(axis=1), 1.0, atol=1e-5)
    assert (refined[:20].argmax(axis=1) == 1).all() and (refined[20:].argmax(axis=1) == 0).all()
    np.testing.assert_allclose(refined[3], [0.0, 1.0])  # clamped rows keep their label


def test_propagation_outvotes_a_lone_wrong_prediction_in_a_cluster():
    x = _two_clusters()
    affinity = affinity_matrix(*knn_graph(x, 5))
    probs = np.where(np.arange(40)[:, None] < 20, [0.8, 0.2], [0.2, 0.8]).astype(np.float32)
    probs[5] = [0.3, 0.7]  # one image of the first cluster predicted wrong
    refined = propagate_labels(affinity, probs, np.zeros(0, int), np.zeros(0, int), alpha=0.8)
    assert refined[5].argmax() == 0
    with pytest.raises(ValueError):
        propagate_labels(affinity, probs, np.array([0]), np.array([2]))


def test_rebalancing_moves_a_skewed_prediction_to_the_prior():
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1], 50)
    # a classifier biased towards class 0: it ranks the images right, but most class-1 images still lean to class 0
    margin = np.where(truth == 1, rng.uniform(-0.05, 0.25, 100), rng.uniform(0.3, 0.6, 100))
    probs = np.stack([0.5 + margin / 2, 0.5 - margin / 2], axis=1)
    assert (probs.argmax(axis=1) == 0).mean() > 0.75
    balanced = rebalance(probs, np.array([0.5, 0.5]))
    np.testing.assert_allclose(balanced.sum(axis=1), 1.0, atol=1e-5)
    assert abs((balanced.argmax(axis=1) == 0).mean() - 0.5) < 0.05
    assert (balanced.argmax(axis=1) == truth).mean() > (probs.argmax(axis=1) == truth).mean()
    with pytest.raises(ValueError):
        rebalance(probs, np.array([1.0, 0.0, 0.0]))


def test_outlier_score_ranks_an_off_class_image_above_in_class_ones():
    text = np.eye(3, 4, dtype=np.float32)  # three class directions in 4-d
    images = np.array([[0.9, 0.1, 0, 0.4], [0.1, 0.95, 0, 0.3], [0, 0.1, 0.9, 0.4], [0.3, 0.3, 0.3, 0.85]])
    images /= np.linalg.norm(images, axis=1, keepdims=True)  # the last one matches no class direction
    cosines = images @ text.T
    score = mcm_outlier_score(cosines, temperature=0.05)
    assert score.argmax() == 3 and ((0 <= score) & (score <= 1)).all()
    # over a graph, a person's "none of these" on a neighbour lifts it further; their class labels pull to 0
    affinity = affinity_matrix(*knn_graph(images, 2))
    refined = outlier_scores(cosines, RoundConfig(outlier_temperature=0.05, outlier_score="mcm"), affinity=affinity,
                             fits=np.array([0]), fits_none=np.array([3]))
    assert refined[3] == pytest.approx(1.0) and refined[0] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        propagate_scores(affinity, np.array([0.1, 2.0, 0.1, 0.1]), np.zeros(0, int), np.zeros(0))


def test_relative_mahalanobis_ranks_an_image_between_two_classes_above_their_members():
    rng = np.random.default_rng(0)
    x = np.concatenate([[1.0, 0.0, 0.0, 0.0] + 0.05 * rng.standard_normal((30, 4)),
                        [0.0, 1.0, 0.0, 0.0] + 0.05 * rng.standard_normal((30, 4)),
                        [[0.7, 0.7, 0.1, 0.0]]])  # the last image belongs to neither class
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    members = np.array([0, 1, 2, 30, 31, 32])  # three known images of each class
    distance = relative_mahalanobis(x, members, np.array([0, 0, 0, 1, 1, 1]))
    assert distance.shape == (61,) and distance.argmax() == 60
    np.testing.assert_allclose(relative_mahalanobis(x, members, np.array([0, 0, 0, 1, 1, 1]), batch=7), distance,
                               rtol=1e-4, atol=1e-3)  # chunking changes nothing
    with pytest.raises(ValueError):
        relative_mahalanobis(x, members, np.array([0, 1]))


def test_ledoit_wolf_keeps_a_covariance_that_is_already_a_multiple_of_the_identity():
    rows = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # sample covariance 0.5 I
    np.testing.assert_allclose(ledoit_wolf(rows), 0.5 * np.eye(2))
    spread = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 0.1], [0.0, -0.1]])  # unequal variances shrink together
    shrunk = np.diag(ledoit_wolf(spread))
    assert 4.5 > shrunk[0] > shrunk[1] > 0.005


def test_rmd_outlier_score_keeps_the_mcm_values_in_the_new_order():
    text = np.eye(2, 4, dtype=np.float32)
    x = _two_clusters_with_stray()
    cosines, probs = x @ text.T, np.repeat(np.eye(2, dtype=np.float32), [20, 21], axis=0)
    mcm = outlier_scores(cosines, RoundConfig(outlier_score="mcm"))
    rmd = outlier_scores(cosines, RoundConfig(outlier_score="rmd"), embeddings=x, probs=probs)
    np.testing.assert_allclose(np.sort(rmd), np.sort(mcm))
    assert rmd.argmax() == 40
    affinity = affinity_matrix(*knn_graph(x, 3))  # a person's labels still hold over the graph
    held = outlier_scores(cosines, RoundConfig(outlier_score="rmd"), embeddings=x, probs=probs, affinity=affinity,
                          fits=np.array([0, 25]), fits_label=np.array([0, 1]), fits_none=np.array([40]))
    assert held[40] == pytest.approx(1.0) and held[0] == pytest.approx(0.0) and held[25] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        outlier_scores(cosines, RoundConfig(outlier_score="rmd"))


def _two_clusters_with_stray(seed: int = 0) -> np.ndarray:
    """Two clusters of 20 around the first two axes of 4-d, and one image far from both (row 40)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([[1.0, 0.0, 0.3, 0.0] + 0.05 * rng.standard_normal((20, 4)),
                        [0.0, 1.0, 0.3, 0.0] + 0.05 * rng.standard_normal((20, 4)), [[0.6, 0.6, 0.0, 0.6]]])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_propagation_over_the_locality_ordered_graph_equals_the_plain_iteration_in_the_images_order():
    x = _two_clusters()
    affinity = affinity_matrix(*knn_graph(x, 5))
    assert sorted(affinity.order.tolist()) == list(range(40))
    position = np.argsort(affinity.order)
    s = affinity.matrix.toarray()[position][:, position]  # S with rows and columns in the images' own order
    np.testing.assert_allclose(s, s.T, atol=1e-6)
    prior = np.random.default_rng(1).dirichlet(np.ones(3), 40).astype(np.float32)
    clamped, label = np.array([5, 33]), np.array([2, 0])
    y = prior.copy()
    y[clamped] = np.eye(3)[label]
    f = y.copy()
    for _ in range(20):
        f = 0.8 * s @ f + 0.2 * y
        f[clamped] = y[clamped]
    expected = f / f.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(propagate_labels(affinity, prior, clamped, label, alpha=0.8), expected, atol=1e-5)
