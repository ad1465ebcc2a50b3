import numpy as np

from engine.queue import DISAGREE, MISTAKE, UNCERTAIN, k_center_greedy, rank_review_queue


def test_k_center_greedy_spreads_out():
    points = np.array([[0.0], [0.1], [0.2], [5.0], [10.0]])
    picks = k_center_greedy(points, 3, covered=np.array([[0.0]]))
    assert picks.tolist() == [4, 3, 2]


def _case():
    teacher = np.array([[0.95, 0.05], [0.55, 0.45], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7]])
    zero = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.8, 0.2], [0.6, 0.4]])
    embeddings = np.eye(5)
    return teacher, zero, embeddings


def test_contradicted_label_comes_first():
    teacher, zero, embeddings = _case()
    labels = np.array([1, -1, -1, -1, -1])  # image 0 labeled class 1, the teacher says class 0 at 0.95
    human = np.array([True, False, False, False, False])
    indices, reasons = rank_review_queue(teacher, zero, labels, human, embeddings, k=3)
    assert indices[0] == 0 and reasons[0] == MISTAKE


def test_uncertain_images_without_human_labels_follow_with_reasons():
    teacher, zero, embeddings = _case()
    labels = np.array([0, -1, -1, -1, -1])
    human = np.array([True, False, False, False, False])
    indices, reasons = rank_review_queue(teacher, zero, labels, human, embeddings, k=3, pool_factor=1)
    assert 0 not in indices.tolist()
    assert set(indices.tolist()) == {1, 2, 4}  # the three smallest margins (4 counts as disagreeing)
    assert dict(zip(indices.tolist(), reasons))[4] == DISAGREE
    assert dict(zip(indices.tolist(), reasons))[2] == UNCERTAIN
