"""Storage for large projects: vectors read by id in a given order, and ingest shards imported in one go."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.test_store import _image_rows, _store_with_images


def test_vectors_of_returns_the_asked_ids_in_the_asked_order():
    store, vectors = _store_with_images(20)
    ids = store.embedded_ids("m1")
    assert ids.tolist() == sorted(ids.tolist()) and len(ids) == 20
    wanted = ids[[7, 2, 19, 2]]
    np.testing.assert_array_equal(store.vectors_of("m1", wanted), vectors[[7, 2, 19, 2]])


def _shard(path, relpaths, vectors, status="ok"):
    rows = _image_rows(relpaths, status)
    vec = pa.array([None if v is None else v.astype(np.float16) for v in vectors], pa.list_(pa.float16(), 4))
    pq.write_table(rows.append_column("vec", vec), path)


def test_shards_import_in_one_transaction_and_the_newest_shard_wins(tmp_path):
    store, _ = _store_with_images(0)
    first, second = np.eye(4, dtype=np.float32), np.full((1, 4), 0.5, np.float32)
    _shard(tmp_path / "1-0000001.parquet", ["a.png", "b.png", "c.png"], [first[0], first[1], None])
    _shard(tmp_path / "1-0000002.parquet", ["b.png"], [second[0]])  # b changed after the first shard
    _shard(tmp_path / "1-0000003.parquet", ["gone.png"], [second[0]])  # deleted since: not asked for
    shards = [str(tmp_path / f"1-000000{n}.parquet") for n in (2, 3, 1)]
    store.import_ingest_shards(shards, "m1", ["a.png", "b.png", "c.png"])
    assert sorted(store.image_index()) == ["a.png", "b.png", "c.png"]
    by_path = {store.relpaths()[i]: v for i, v in zip(*store.embeddings("m1"))}
    assert sorted(by_path) == ["a.png", "b.png"]  # c's shard row carries no vector
    np.testing.assert_allclose(by_path["a.png"], first[0])
    np.testing.assert_allclose(by_path["b.png"], second[0])
