import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

import storage.store as store_module
from storage import Store
from storage.schema import SCHEMA_VERSION


def _image_rows(relpaths, status="ok"):
    n = len(relpaths)
    return pa.table({
        "relpath": pa.array(relpaths, pa.string()),
        "sha256": pa.array([f"sha-{p}" for p in relpaths], pa.string()),
        "size": pa.array([10] * n, pa.int64()), "mtime_ns": pa.array([1] * n, pa.int64()),
        "width": pa.array([4] * n, pa.int32()), "height": pa.array([4] * n, pa.int32()),
        "status": pa.array([status] * n, pa.string()), "error": pa.array([None] * n, pa.string()),
    })


def _store_with_images(n: int, dim: int = 4, store: Store | None = None) -> tuple[Store, np.ndarray]:
    store = store or Store.memory()
    store.register_model("m1", "test", dim)
    relpaths = [f"img{i:05d}.png" for i in range(n)]
    vectors = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    store.write_ingest_batch(_image_rows(relpaths), "m1", relpaths, vectors)
    return store, vectors


def test_new_database_is_at_the_current_schema_version():
    assert Store.memory().schema_version() == SCHEMA_VERSION


def test_opening_an_old_database_applies_the_missing_migrations(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    Store.open(path).close()
    extra = ["CREATE TABLE migration_probe (id INTEGER)"]
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + [extra])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION + 1
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM migration_probe").fetchall() == [(0,)]


def test_embeddings_survive_checkpoint_and_reopen_bit_exact(tmp_path):
    path = tmp_path / "emb.duckdb"
    store, vectors = _store_with_images(3000, dim=512, store=Store.open(path))
    vectors[0, :4] = [-0.0, 1e-45, np.finfo(np.float32).max, np.finfo(np.float32).tiny]  # sign, denormal, extremes
    relpaths = ["img00000.png"]
    store.write_ingest_batch(_image_rows(relpaths), "m1", relpaths, vectors[:1])
    store.checkpoint()
    store.close()
    with Store.open(path) as reopened:
        ids, loaded = reopened.embeddings("m1")
    assert len(ids) == 3000
    # DuckDB's float compression at checkpoint stores -0.0 as +0.0 (equal as numbers); every other bit is kept.
    expected = np.where(vectors == 0, np.float32(0.0), vectors)
    assert np.array_equal(loaded.view(np.uint32), expected.view(np.uint32))


def test_changed_content_drops_stale_vectors():
    store, _ = _store_with_images(2)
    changed = _image_rows(["img00000.png"]).set_column(1, "sha256", pa.array(["new"], pa.string()))
    store.write_ingest_batch(changed, "m1", [], np.zeros((0, 4), np.float32))
    assert store.paths_missing_embedding("m1") == ["img00000.png"]


def test_set_labels_appends_one_event_per_change():
    store, _ = _store_with_images(3)
    store.add_classes(["a", "b"], [None, None])
    assert store.set_labels([1, 2], [0, None], source="human", actor="t") == 2
    assert store.set_labels([1, 2], [0, None], source="human", actor="t") == 0  # nothing changed, nothing logged
    assert store.set_labels([1], [1], source="human", actor="t") == 1
    events = store.label_events(1)
    assert [(e["from_class"], e["to_class"]) for e in events] == [(None, 0), (0, 1)]
    assert store.counts()["labels"] == {"human": 2, "pseudo": 0, "none_of_these": 1}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["human", "pseudo"]), st.integers(0, 2)),
                min_size=1, max_size=25))
def test_a_human_label_is_never_overwritten_by_a_machine(operations):
    store, _ = _store_with_images(4)
    store.add_classes(["a", "b", "c"], [None] * 3)
    human: dict[int, int] = {}
    for image_id, source, class_id in operations:
        store.set_labels([image_id], [class_id], source=source, actor="t")
        if source == "human":
            human[image_id] = class_id
    snapshot = store.label_snapshot()
    rows = dict(zip(snapshot["image_id"].tolist(), zip(snapshot["class_id"].tolist(), snapshot["human"].tolist())))
    for image_id, class_id in human.items():
        assert rows[image_id] == (class_id, True)


def test_current_labels_prefers_human_then_newest_round():
    store, _ = _store_with_images(3)
    store.add_classes(["a", "b"], [None, None])
    ids = np.array([1, 2, 3])
    zero = np.array([[0.9, 0.1]] * 3, np.float32)
    teacher = np.array([[0.2, 0.8]] * 2, np.float32)
    from engine.learning.probabilities import prediction_stats  # the engine's stats; the test only needs valid ones

    store.replace_predictions(round_id=0, source="zeroshot", model_id="m1", image_ids=ids, class_ids=[0, 1],
                              probs=zero, stats=prediction_stats(zero), replace_all=True)
    round_id = store.start_round({})
    store.replace_predictions(round_id=round_id, source="teacher", model_id="m1", image_ids=ids[:2],
                              class_ids=[0, 1], probs=teacher, stats=prediction_stats(teacher), replace_all=True)
    store.end_round(round_id, "done")
    store.set_labels([1], [None], source="human", actor="t")
    rows = {r["path"]: r for r in store.current_labels().to_pylist()}
    assert (rows["img00000.png"]["label"], rows["img00000.png"]["source"]) == ("", "human")
    assert (rows["img00001.png"]["label"], rows["img00001.png"]["source"], rows["img00001.png"]["round"]) == \
        ("b", "teacher", 1)
    assert (rows["img00002.png"]["label"], rows["img00002.png"]["source"]) == ("a", "zeroshot")
    assert rows["img00002.png"]["confidence"] == pytest.approx(0.9)

    store.add_classes(["c"], [None])  # round 1 predicted over a, b only: export falls back to zero-shot, as the page
    rows = {r["path"]: r for r in store.current_labels().to_pylist()}
    assert (rows["img00001.png"]["label"], rows["img00001.png"]["source"], rows["img00001.png"]["round"]) == \
        ("a", "zeroshot", 0)


def test_reading_right_after_reopening_works(tmp_path):
    # DuckDB 2 refuses a relational query while an earlier execute() result is only partly fetched.
    Store.open(tmp_path / "db.duckdb").close()
    with Store.open(tmp_path / "db.duckdb") as store:
        assert store.current_labels().num_rows == 0


def test_a_snapshot_reads_one_moment_and_commits_its_writes_at_its_end(tmp_path):
    store = Store.open(tmp_path / "x.duckdb")
    store.set_meta(shown="before")
    with store.snapshot() as reader:
        store.set_meta(shown="after")  # the page writes while a CLI command reads
        assert reader.get_meta("shown") == "before"
        reader.record_export(fmt="csv", path="/out.csv", filters={}, counts={})
        assert store.exports() == []
    assert store.get_meta("shown") == "after" and [e["path"] for e in store.exports()] == ["/out.csv"]


def test_a_failed_snapshot_keeps_none_of_its_writes(tmp_path):
    store = Store.open(tmp_path / "x.duckdb")
    with pytest.raises(ValueError), store.snapshot() as reader:
        reader.record_export(fmt="csv", path="/out.csv", filters={}, counts={})
        raise ValueError("the export failed after recording")
    assert store.exports() == []
