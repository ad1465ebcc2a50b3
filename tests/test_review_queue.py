"""The review queue of a project: one order for the page and the CLI, whatever k; what a person labels since the
last round leaves it; every reason it gives is true of its image. On the demo project (1,500 images)."""

import numpy as np
import pytest

from engine.views.gallery import PAGE_SIZE, GalleryQuery, GalleryView
from engine.labels.labeling_session import LabelingSession
from engine.project.folder import open_project
from engine.learning.review_ranking import DISAGREE, LOW_MARGIN, UNCERTAIN
from engine.project.review_queue import review_queue
from engine.learning.selftrain.config import RoundConfig
from engine.session.round_runner import run_round
from tests.browser import copy_project


@pytest.fixture
def demo(demo_template, tmp_path):
    root = copy_project(demo_template, tmp_path / "project")
    with open_project(root) as project:
        yield project


def _paths(store, k: int) -> list[str]:
    return [item["path"] for item in review_queue(store, k)]


def _page_paths(view: GalleryView, pages: int) -> list[str]:
    return [item.relpath for page in range(pages)
            for item in view.gallery(GalleryQuery(sort="queue", offset=page * PAGE_SIZE)).items]


def test_the_page_and_the_cli_show_one_order_whatever_k(demo, cli_json):
    store = demo.store
    everything = _paths(store, 100_000)
    assert len(everything) == 1500  # no person labelled any: every image is to review
    for k in (1, 5, 48, 200):
        assert _paths(store, k) == everything[:k]
    view = GalleryView(demo, lambda: None)
    assert _page_paths(view, 3) == everything[:3 * PAGE_SIZE]
    tiles = view.gallery(GalleryQuery(sort="queue")).items
    assert [tile.reason for tile in tiles] == [f"review queue #{rank}: {item['reason']}" for rank, item
                                               in enumerate(review_queue(store, PAGE_SIZE), start=1)]
    listed = cli_json("queue", demo.root, "--k", "48")
    assert [item["path"] for item in listed] == everything[:48]


def test_no_reason_is_false_of_its_image(demo):
    store = demo.store
    image_ids, class_ids, probs = store.prediction_matrix(store.shown_round())
    zero_ids, _, zero_probs = store.prediction_matrix(0)
    relpaths = store.relpaths()
    row_of = {relpaths[image_id]: row for row, image_id in enumerate(image_ids.tolist())}
    top_two = -np.sort(-probs, axis=1)[:, :2]
    queue = review_queue(store, 100_000)
    for item in queue:
        row = row_of[item["path"]]
        if item["reason"] == UNCERTAIN:
            assert top_two[row, 0] - top_two[row, 1] < LOW_MARGIN, item
            assert item["confidence"] < 0.95, item
        disagree = zero_probs[row].argmax() != probs[row].argmax()
        assert (item["reason"] == DISAGREE) == disagree, item
    assert any(item["reason"] == UNCERTAIN for item in queue) and any(item["confidence"] >= 0.95 for item in queue)


def _label(labeling: LabelingSession, view: GalleryView, paths: list[str]) -> None:
    by_path = {relpath: image_id for image_id, relpath in view.store.relpaths().items()}
    for path in paths:
        labeling.label([by_path[path]], view.class_names()[0], actor="person")


def test_images_labelled_since_the_last_round_leave_the_queue(demo):
    store = demo.store
    view = GalleryView(demo, lambda: None)
    labeling = LabelingSession(store, view)
    before = _paths(store, 300)
    assert _page_paths(view, 1) == before[:PAGE_SIZE]  # the page has ranked its queue
    labelled = [before[0], before[7], before[30]]
    _label(labeling, view, labelled)
    after = [path for path in before if path not in labelled]
    assert _paths(store, 200) == after[:200]  # the rest keep their order
    assert _page_paths(view, 2) == after[:2 * PAGE_SIZE]
    assert all(tile.reason is None for tile in view.items([tile.image_id for tile in view.gallery(
        GalleryQuery(sort="name", status="human")).items]))

    run_round(demo, RoundConfig())
    ranked = _paths(store, 300)
    assert not set(labelled) & set(ranked)  # labelled before the round: no longer to review
    since = [ranked[2], ranked[40]]
    _label(labeling, view, since)
    assert _paths(store, 200) == [path for path in ranked if path not in since][:200]
    assert _page_paths(view, 2) == _paths(store, 2 * PAGE_SIZE)


def test_turning_the_page_after_labels_skips_no_image(demo):
    store = demo.store
    view = GalleryView(demo, lambda: None)
    labeling = LabelingSession(store, view)
    order = _paths(store, 3 * PAGE_SIZE)
    first = view.gallery(GalleryQuery(sort="queue"))
    _label(labeling, view, [order[3], order[10], order[47]])
    offset = view.next_offset(GalleryQuery(sort="queue"), [tile.image_id for tile in first.items])
    second = view.gallery(GalleryQuery(sort="queue", offset=offset))
    assert [tile.relpath for tile in second.items] == order[PAGE_SIZE:2 * PAGE_SIZE]
