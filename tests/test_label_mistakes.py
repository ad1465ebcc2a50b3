"""A person's wrong labels are found out of sample: plant 3 wrong labels, run a round, and "possible label mistake"
(the page's filter and the review queue) shows them (engine and storage level; the page reads the same functions)."""

import numpy as np
import pytest

from engine.learning.review_ranking import MISTAKE, label_quality
from engine.project.review_queue import fits_no_class, possible_label_mistakes, review_queue
from engine.learning.selftrain.config import RoundConfig
from engine.session.round_runner import run_round
from tests.synthetic import planted_embeddings, synthetic_project


@pytest.fixture
def labeled_project(tmp_path, tiny_model):
    x, y, text = planted_embeddings(2000, 32, 4, seed=5, spread=0.5)
    project = synthetic_project(tmp_path / "p", tmp_path / "images", tiny_model, x, text)
    class_ids = np.array([c["id"] for c in project.store.classes()])
    rows = np.random.default_rng(0).choice(len(y), 80, replace=False)
    given = y[rows].copy()
    given[:3] = (given[:3] + 1) % 4  # three wrong labels
    project.store.set_labels((rows + 1).tolist(), class_ids[given].tolist(), source="human", actor="person")
    yield project, rows[:3] + 1, rows[3:] + 1, class_ids, y
    project.close()


def test_a_round_flags_planted_wrong_labels_out_of_sample(labeled_project):
    project, wrong_ids, right_ids, class_ids, y = labeled_project
    store = project.store
    assert len(possible_label_mistakes(store)[0]) == 0  # nothing before a round has cross-fitted
    run_round(project, RoundConfig())

    flagged, margin = possible_label_mistakes(store)
    assert set(wrong_ids.tolist()) <= set(flagged[:6].tolist())  # among the first 2 x (number planted)
    assert (np.diff(margin) >= 0).all() and (margin <= 0).all()
    assert len(set(flagged.tolist()) & set(right_ids.tolist())) <= 15  # of 77 (a first round is ~0.9 right here)

    # the queue's mistake picks are the same rule, in the same order
    queue = review_queue(store, 5)
    relpaths = store.relpaths()
    assert [item["path"] for item in queue] == [relpaths[i] for i in flagged[:5].tolist()]
    assert all(item["reason"] == MISTAKE for item in queue[:len(flagged)])
    # each says what students that never trained on the label see (the shown prediction holds the label itself)
    assert all(item["without_label"]["predicted"] != item["label"] for item in queue if item["reason"] == MISTAKE)

    # SQL and numpy agree on the rule
    image_ids, stored_classes, probs = store.crossfit_matrix(store.shown_round())
    column = {class_id: c for c, class_id in enumerate(stored_classes)}
    labels = store.label_snapshot()
    given = dict(zip(labels["image_id"].tolist(), labels["class_id"].tolist()))
    _, mistake = label_quality(probs, np.array([column[given[i]] for i in image_ids.tolist()]))
    assert set(image_ids[mistake].tolist()) == set(flagged.tolist())

    # the person fixes one the round predicts right: no longer a possible mistake (the label is judged as it is now)
    predicted = dict(zip(image_ids.tolist(), np.asarray(stored_classes)[probs.argmax(axis=1)].tolist()))
    fixed = next(i for i in wrong_ids.tolist() if predicted[i] == class_ids[y[i - 1]])
    store.set_labels([fixed], [int(class_ids[y[fixed - 1]])], source="human", actor="person")
    assert fixed not in possible_label_mistakes(store)[0].tolist()


def test_every_image_gets_an_outlier_score_and_the_filter_reads_it(labeled_project):
    project = labeled_project[0]
    assert len(fits_no_class(project.store)[0]) == 0
    run_round(project, RoundConfig())
    image_ids, scores = project.store.outlier_scores(project.store.shown_round())
    assert len(image_ids) == 2000 and ((scores >= 0) & (scores <= 1)).all()
    outlying, outlying_scores = fits_no_class(project.store, threshold=float(np.quantile(scores, 0.9)))
    assert 150 <= len(outlying) <= 250 and (np.diff(outlying_scores) <= 0).all()


def test_a_label_the_person_confirms_is_no_longer_a_possible_mistake(labeled_project):
    """Pressing a flagged label's own class again confirms it: the filter and the queue drop it, this round and the
    next (the evidence does not change between rounds), and it counts as flagged again only in another class."""
    project, wrong_ids, right_ids, class_ids, y = labeled_project
    store = project.store
    run_round(project, RoundConfig())
    flagged = possible_label_mistakes(store)[0].tolist()
    confirmed = next(i for i in flagged if i in right_ids.tolist())  # a right label the round doubts
    kept = int(class_ids[y[confirmed - 1]])
    store.set_labels([confirmed], [kept], source="human", actor="import")  # a file that repeats it: no look
    assert confirmed in possible_label_mistakes(store)[0].tolist()
    events = len(store.label_events())
    assert store.confirm_labels([confirmed], [kept], actor="person") == [confirmed]  # as the page does
    assert store.set_labels([confirmed], [kept], source="human", actor="person") == 0  # no change...
    assert len(store.label_events()) == events  # ...so nothing for undo to revert
    assert confirmed not in possible_label_mistakes(store)[0].tolist()
    assert set(possible_label_mistakes(store)[0].tolist()) == set(flagged) - {confirmed}
    assert confirmed not in _queue_ids(store, len(flagged) + 5)

    run_round(project, RoundConfig())
    assert confirmed not in possible_label_mistakes(store)[0].tolist()
    assert set(wrong_ids.tolist()) <= set(possible_label_mistakes(store)[0].tolist())  # the others still shown

    # given another class, it is the person's new label, judged afresh
    other = int(class_ids[(y[confirmed - 1] + 1) % len(class_ids)])
    store.set_labels([confirmed], [other], source="human", actor="person")
    run_round(project, RoundConfig())
    assert confirmed in possible_label_mistakes(store)[0].tolist()


def _queue_ids(store, k: int) -> list[int]:
    by_path = {relpath: image_id for image_id, relpath in store.relpaths().items()}
    return [by_path[item["path"]] for item in review_queue(store, k)]


def test_undo_takes_a_confirmation_back(labeled_project):
    """A key pressed on a flagged label by mistake is one U away from the flag again."""
    from engine.views.gallery import GalleryView
    from engine.labels.labeling_session import LabelingSession

    project, wrong_ids, right_ids, class_ids, y = labeled_project
    store = project.store
    run_round(project, RoundConfig())
    view = GalleryView(project, lambda: None)
    labeling = LabelingSession(store, view)
    flagged = possible_label_mistakes(store)[0].tolist()
    kept = flagged[0]
    name = view.class_names()[list(class_ids).index(store.human_label_times([kept])[kept][0])]
    change = labeling.label([kept], name, actor="person")
    assert (change.changed, change.confirmed, change.undoable) == (0, 1, True)
    assert "already so: confirmed" in change.message
    assert kept not in possible_label_mistakes(store)[0].tolist()
    again = labeling.label([kept], name, actor="person")  # already confirmed: nothing to take back
    assert (again.confirmed, again.undoable) == (0, False)

    undone = labeling.undo(actor="person")
    assert undone.image_ids == [kept] and "no longer confirmed" in undone.message
    assert possible_label_mistakes(store)[0].tolist() == flagged
    assert labeling.undo(actor="person").message == "nothing to undo"
