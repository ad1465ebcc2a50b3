import numpy as np
import pytest

from engine.learning.review_ranking import (AUDIT, DISAGREE, MISTAKE, NOT_REVIEWED, TYPICAL, UNCERTAIN, audit_needed,
                                            k_center_greedy, label_quality, rank_review_queue, typical_picks,
                                            uncertainty_order)


def test_k_center_greedy_spreads_out():
    points = np.array([[0.0], [0.1], [0.2], [5.0], [10.0]])
    picks = k_center_greedy(points, 3, covered=np.array([[0.0]]))
    assert picks.tolist() == [4, 3, 2]


def _case():
    teacher = np.array([[0.95, 0.05], [0.55, 0.45], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7]])
    zero = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.8, 0.2], [0.6, 0.4]])
    embeddings = np.eye(5)
    return teacher, zero, embeddings


def test_label_quality_flags_a_wrong_label_and_not_a_right_one():
    out_of_sample = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    given = np.array([1, 1, 0])  # row 0 is labeled 1 but a student that never saw it says 0 at 0.9
    margin, mistake = label_quality(out_of_sample, given)
    np.testing.assert_allclose(margin, [-0.8, 0.6, 0.4], atol=1e-6)
    assert mistake.tolist() == [True, False, False]
    with pytest.raises(ValueError):
        label_quality(out_of_sample, np.array([0, 2, 0]))


def test_possible_mistakes_come_first():
    teacher, zero, embeddings = _case()
    human = np.array([True, False, False, False, False])
    indices, reasons = rank_review_queue(teacher, zero, human, embeddings, k=3, mistakes=np.array([0]))
    assert indices[0] == 0 and reasons[0] == MISTAKE
    assert 0 not in indices[1:].tolist()


def test_uncertain_images_without_human_labels_follow_with_reasons():
    teacher, zero, embeddings = _case()
    human = np.array([True, False, False, False, False])
    indices, reasons = rank_review_queue(teacher, zero, human, embeddings, k=3, pool_factor=1,
                                         cold_start_per_class=0)
    assert 0 not in indices.tolist()
    assert set(indices.tolist()) == {1, 2, 4}  # the three smallest margins (4 counts as disagreeing)
    assert dict(zip(indices.tolist(), reasons))[4] == DISAGREE
    assert dict(zip(indices.tolist(), reasons))[2] == UNCERTAIN


def test_cold_start_picks_typical_images_of_every_predicted_class():
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    sizes = (60, 30, 10)  # imbalanced predicted classes
    x = np.concatenate([c + 0.05 * rng.standard_normal((n, 2)) for c, n in zip(centres, sizes)])
    x = np.vstack([x, [[3.0, 3.0]]])  # one far-away image predicted as class 0: never typical
    probs = np.eye(3)[np.concatenate([np.repeat([0, 1, 2], sizes), [0]])]
    picks = typical_picks(probs, x, np.arange(len(x)), 6)
    assert sorted(np.bincount(probs[picks].argmax(1), minlength=3).tolist()) == [2, 2, 2]
    assert set(probs[picks[:3]].argmax(1).tolist()) == {0, 1, 2}  # the first picks already cover every class
    assert len(x) - 1 not in picks.tolist()
    indices, reasons = rank_review_queue(probs, probs, np.zeros(len(x), bool), x, k=6,
                                         cold_start_per_class=1)
    assert reasons == [TYPICAL] * 6 and sorted(indices.tolist()) == sorted(picks.tolist())


def test_later_picks_spread_over_the_most_uncertain_pool():
    # margins rise with the row; rows 0 and 1 are the two most uncertain but the same picture
    teacher = np.array([[0.5 + 0.05 * i, 0.5 - 0.05 * i] for i in range(8)])
    embeddings = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]] + [[2.0, 2.0]] * 4)
    indices, _ = rank_review_queue(teacher, teacher, np.zeros(8, bool), embeddings, k=2, pool_factor=2,
                                   cold_start_per_class=0)
    assert set(indices.tolist()) <= {0, 1, 2, 3}  # only from the 2 x 2 most uncertain
    assert len({tuple(embeddings[i]) for i in indices}) == 2  # never both copies of the same picture
    indices, _ = rank_review_queue(teacher, teacher, np.zeros(8, bool), embeddings, k=2, pool_factor=1,
                                   cold_start_per_class=0)
    assert sorted(indices.tolist()) == [0, 1]  # a pool of k is the k most uncertain, copies and all


def _share(estimate, half, n):
    return {"estimate": estimate, "low": estimate - half, "high": estimate + half, "n": n}


def test_audit_is_needed_until_every_share_is_precise():
    assert audit_needed([])
    assert audit_needed([_share(0.0, 0.5, 0)])  # no audited image yet
    assert audit_needed([_share(0.6, 0.05, 80), _share(0.3, 0.12, 80), _share(0.1, 0.04, 80)], half_width=0.1)
    assert not audit_needed([_share(0.6, 0.05, 80), _share(0.3, 0.09, 80), _share(0.1, 0.04, 80)], half_width=0.1)


def test_audit_picks_come_after_the_mistakes_in_draw_order():
    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(3), 200)
    human = np.zeros(200, bool)
    human[:20] = True
    drawn = np.array([150, 40, 77, 23, 199, 61, 88, 120, 31, 45, 46])
    indices, reasons = rank_review_queue(teacher, teacher, human, rng.standard_normal((200, 4)), k=10,
                                         mistakes=np.array([3]), audit_picks=drawn)
    assert indices.tolist() == [3, *drawn[:9].tolist()] and reasons == [MISTAKE] + [AUDIT] * 9
    without, reasons = rank_review_queue(teacher, teacher, human, rng.standard_normal((200, 4)), k=10,
                                         audit_picks=np.zeros(0, int))
    assert AUDIT not in reasons and len(without) == 10


@pytest.mark.parametrize("cold_start_per_class", [0, 5])
def test_the_first_k_are_the_first_k_of_any_longer_queue(cold_start_per_class):
    rng = np.random.default_rng(3)
    teacher, zero = rng.dirichlet(np.full(4, 0.5), 300), rng.dirichlet(np.full(4, 0.5), 300)
    human = np.zeros(300, bool)
    human[rng.choice(300, 12, replace=False)] = True
    embeddings = rng.standard_normal((300, 8))
    options = dict(mistakes=np.flatnonzero(human)[:3], audit_picks=np.array([5, 77, 140]),
                   cold_start_per_class=cold_start_per_class)
    longest, reasons = rank_review_queue(teacher, zero, human, embeddings, k=300, **options)
    assert len(longest) == 291 and len(set(longest.tolist())) == 291  # 3 mistakes + the 288 unlabelled, once each
    for k in (1, 4, 7, 30, 100):
        indices, first_reasons = rank_review_queue(teacher, zero, human, embeddings, k=k, **options)
        assert indices.tolist() == longest[:k].tolist() and first_reasons == reasons[:k]


def test_low_margin_is_said_only_of_a_low_margin():
    teacher = np.array([[0.97, 0.02, 0.01], [0.8, 0.15, 0.05], [0.4, 0.35, 0.25], [0.9, 0.05, 0.05]])
    zero = teacher.copy()
    zero[3] = [0.1, 0.8, 0.1]  # zero-shot says class 1 where the teacher says 0
    order, reasons = uncertainty_order(teacher, zero, np.zeros(4, bool), np.eye(4))
    said = dict(zip(order.tolist(), reasons.tolist()))
    assert said == {0: NOT_REVIEWED, 1: NOT_REVIEWED, 2: UNCERTAIN, 3: DISAGREE}  # margins 0.95, 0.65, 0.05
