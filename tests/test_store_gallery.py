"""The gallery's kept rows (storage/gallery.py `gallery_rows`) always equal what the shown-round rule computes from
scratch, whatever sequence of writes came before: labels, undo, zero-shot, a round, re-ingest, missing files and
class edits."""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings, strategies as st

from engine.learning.probabilities import prediction_stats  # the stats are the engine's; the tests only need valid ones
from storage import Store
from storage.gallery import GALLERY_BUILT, GALLERY_COLUMNS

IMAGES = 6


def _image_rows(relpaths, sha="sha", status="ok"):
    n = len(relpaths)
    return pa.table({
        "relpath": pa.array(relpaths, pa.string()),
        "sha256": pa.array([f"{sha}-{p}" for p in relpaths], pa.string()),
        "size": pa.array([10] * n, pa.int64()), "mtime_ns": pa.array([1] * n, pa.int64()),
        "width": pa.array([4] * n, pa.int32()), "height": pa.array([4] * n, pa.int32()),
        "status": pa.array([status] * n, pa.string()),
        "error": pa.array([None if status == "ok" else "unreadable"] * n, pa.string()),
    })


def _store() -> Store:
    store = Store.memory()
    store.register_model("m1", "test", 4)
    relpaths = [f"img{i}.png" for i in range(IMAGES)]
    store.write_ingest_batch(_image_rows(relpaths), "m1", relpaths,
                             np.random.default_rng(0).standard_normal((IMAGES, 4)).astype(np.float32))
    store.add_classes(["a", "b", "c"], [None] * 3)
    _predict(store, 0, list(range(1, IMAGES + 1)), seed=0, replace_all=True)
    return store


def _probs(count: int, classes: int, seed: int) -> np.ndarray:
    raw = np.random.default_rng(seed).random((count, classes)).astype(np.float32) + 0.01
    return raw / raw.sum(axis=1, keepdims=True)


def _class_ids(store: Store) -> list[int]:
    return [c["id"] for c in store.classes()]


def _predict(store: Store, round_id: int, image_ids: list[int], *, seed: int, replace_all: bool) -> None:
    probs = _probs(len(image_ids), len(_class_ids(store)), seed)
    store.replace_predictions(round_id=round_id, source="zeroshot", model_id="m1", image_ids=np.array(image_ids),
                              class_ids=_class_ids(store), probs=probs, stats=prediction_stats(probs),
                              replace_all=replace_all)


def _round(store: Store, seed: int, crossfit: dict[int, list[float]] | None = None) -> None:
    """A finished round; `crossfit`: out-of-sample probabilities of some labelled images."""
    round_id = store.start_round({})
    ids = np.arange(1, IMAGES + 1)
    probs = _probs(IMAGES, len(_class_ids(store)), seed)
    pseudo = ids[probs.max(axis=1) > 0.4]
    store.finish_round(round_id, model_id="m1", image_ids=ids, class_ids=_class_ids(store), probs=probs,
                       stats=prediction_stats(probs), pseudo_ids=pseudo,
                       pseudo_classes=np.array(_class_ids(store))[probs[pseudo - 1].argmax(axis=1)], metrics={},
                       crossfit_ids=np.array(list(crossfit), np.int64) if crossfit else None,
                       crossfit_probs=np.array(list(crossfit.values())) if crossfit else None)


def _kept(store: Store) -> list[tuple]:
    rows = store.gallery_page(round_id=store.shown_round(), sort="name", limit=1000).rows
    return [tuple(row[column] for column in GALLERY_COLUMNS[:11]) for row in rows]


def _from_scratch(store: Store) -> list[tuple]:
    """The rows as the rule computes them anew: with the kept rows marked stale, the next read builds them all."""
    store.set_meta(**{GALLERY_BUILT: None})
    return _kept(store)


image = st.integers(1, IMAGES)
operations = st.one_of(
    st.tuples(st.just("human"), image, st.sampled_from([0, 1, 2, None])),
    st.tuples(st.just("pseudo"), image, st.sampled_from([0, 1, 2])),
    st.tuples(st.just("undo"), st.just(0), st.just(0)),
    st.tuples(st.just("zero-shot some"), image, st.integers(0, 9)),
    st.tuples(st.just("zero-shot all"), st.just(0), st.integers(0, 9)),
    st.tuples(st.just("round"), st.just(0), st.integers(0, 9)),
    st.tuples(st.just("changed file"), image, st.sampled_from(["ok", "error"])),
    st.tuples(st.just("missing"), image, st.just(0)),
    st.tuples(st.just("add class"), st.just(0), st.just(0)),
)


def _write(store: Store, number: int, kind: str, image_id: int, value) -> None:
    if kind == "human":
        store.set_labels([image_id], [value], source="human", actor="t")
    elif kind == "pseudo":
        store.set_labels([image_id], [value], source="pseudo", actor="t", round_id=store.last_finished_round())
    elif kind == "undo":
        store.revert_label_events(0, store.last_label_event_id(), actor="t", by="t:undo")
    elif kind == "zero-shot some":
        _predict(store, 0, [image_id], seed=value, replace_all=False)
    elif kind == "zero-shot all":
        _predict(store, 0, list(range(1, IMAGES + 1)), seed=value, replace_all=True)
    elif kind == "round":
        _round(store, value)
    elif kind == "changed file":
        relpath = f"img{image_id - 1}.png"
        store.write_ingest_batch(_image_rows([relpath], sha=f"new{number}", status=value), "m1", [],
                                 np.zeros((0, 4), np.float32))
    elif kind == "missing":
        store.mark_missing([f"img{image_id - 1}.png"])
    elif kind == "add class":
        store.add_classes([f"new{number}"], [None])


@settings(max_examples=40, deadline=None)
@given(st.lists(operations, min_size=1, max_size=12))
def test_the_kept_gallery_rows_equal_the_rule_after_any_writes(steps):
    # The same writes to two projects: one keeps its rows through every write, the other builds them anew each time.
    kept, fresh = _store(), _store()
    assert _kept(kept) == _from_scratch(fresh)
    for number, (kind, image_id, value) in enumerate(steps):
        _write(kept, number, kind, image_id, value)
        _write(fresh, number, kind, image_id, value)
        assert _kept(kept) == _from_scratch(fresh), (kind, image_id, value)


def test_a_label_refreshes_its_row_without_rebuilding_the_rest():
    store = _store()
    _kept(store)
    store.set_labels([2], [1], source="human", actor="t")
    assert store.get_meta(GALLERY_BUILT) == 0  # still built: the write refreshed one row in place
    assert _kept(store) == _from_scratch(store)
    assert [row for row in _kept(store) if row[0] == 2][0][8:10] == (1, "human")


def test_a_page_filtered_on_mistakes_and_sorted_by_the_queue():
    store = _store()
    store.set_labels([1, 2, 3], [0, 1, 2], source="human", actor="t")
    # out of sample, image 1 looks like "b" and image 2 like "b": only image 1 is a possible mistake
    _round(store, 1, crossfit={1: [0.1, 0.8, 0.1], 2: [0.1, 0.8, 0.1]})
    shown_round = store.shown_round()
    mistakes = store.gallery_page(round_id=shown_round, mistakes=True)
    assert [(row["id"], row["doubted_as"]) for row in mistakes.rows] == [(1, 1)]  # seen as class 1
    assert (mistakes.total, mistakes.unfiltered) == (1, None)  # counted for a subset only
    subset = store.gallery_page(round_id=shown_round, mistakes=True, image_ids=[1, 2, 3, IMAGES + 1])
    assert (subset.total, subset.unfiltered) == (1, 3)  # image IMAGES + 1 is not in the project
    rows = store.gallery_page(round_id=shown_round, sort="queue", queue_ids=[5, 3]).rows
    assert [row["id"] for row in rows][:2] == [5, 3]
    doubted = {row["id"]: row["doubted_as"] for row in rows}
    assert doubted == {i: 1 if i == 1 else None for i in range(1, IMAGES + 1)}


def test_the_queue_order_is_the_same_however_much_of_the_queue_is_joined(monkeypatch):
    """The queue's images that pass the filters in its order, then the others by confidence, page after page,
    whether the joined prefix of the queue holds the page at once, grows to hold it, or is the whole queue."""
    import storage.gallery

    store = _store()
    store.set_labels([2, 3], [1, 1], source="human", actor="t")
    shown_round = store.shown_round()
    queue = [2, 3, 4, 6, 1]  # the first two no longer pass the filter: a prefix of two holds none of the page
    by_confidence = [row["id"] for row in store.gallery_page(round_id=shown_round, status="unlabeled",
                                                             sort="confidence_up", limit=IMAGES).rows]
    expected = [4, 6, 1] + [i for i in by_confidence if i not in queue]
    for prefix in (1, 4096):
        monkeypatch.setattr(storage.gallery, "QUEUE_PREFIX", prefix)
        pages = [store.gallery_page(round_id=shown_round, status="unlabeled", sort="queue", queue_ids=queue,
                                    offset=offset, limit=1) for offset in range(5)]
        assert [row["id"] for page in pages for row in page.rows] == expected
        assert {page.total for page in pages} == {4}
