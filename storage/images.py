"""SQL for images and their embeddings (mixed into Store)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from storage.schema import embeddings_table


class ImageQueries:
    def register_model(self, model_id: str, spec: str, dim: int) -> None:
        table = embeddings_table(model_id)
        with self.transaction() as con:
            con.execute("INSERT OR IGNORE INTO models (model_id, spec, dim) VALUES (?, ?, ?)", [model_id, spec, dim])
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} (image_id BIGINT PRIMARY KEY, vec FLOAT[{int(dim)}])")

    def model_dim(self, model_id: str) -> int | None:
        rows = self._query("SELECT dim FROM models WHERE model_id = ?", [model_id])
        return rows[0][0] if rows else None

    def embedding_count(self, model_id: str) -> int:
        if self.model_dim(model_id) is None:
            return 0
        return self._query(f"SELECT count(*) FROM {embeddings_table(model_id)}")[0][0]

    def embedded_shas(self, model_id: str) -> set[str]:
        table = embeddings_table(model_id)
        rows = self._query(f"SELECT DISTINCT i.sha256 FROM images i JOIN {table} e ON e.image_id = i.id")
        return {sha for (sha,) in rows}

    def paths_missing_embedding(self, model_id: str) -> list[str]:
        table = embeddings_table(model_id)
        rows = self._query(f"""SELECT relpath FROM images WHERE status = 'ok'
                               AND id NOT IN (SELECT image_id FROM {table}) ORDER BY relpath""")
        return [relpath for (relpath,) in rows]

    def fill_duplicate_embeddings(self, model_id: str) -> int:
        """Give every ok image without a vector the vector of an image with the same content; returns the count."""
        table = embeddings_table(model_id)
        with self.transaction() as con:
            return con.execute(f"""
                INSERT INTO {table}
                SELECT i.id, any_value(e.vec) FROM images i
                JOIN images j ON j.sha256 = i.sha256 AND j.id <> i.id
                JOIN {table} e ON e.image_id = j.id
                WHERE i.status = 'ok' AND i.id NOT IN (SELECT image_id FROM {table})
                GROUP BY i.id""").fetchall()[0][0]

    def write_embeddings(self, model_id: str, image_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace the vectors (N, d) of `image_ids` (N,) under a registered model, in one transaction."""
        table = embeddings_table(model_id)
        batch = pa.table({
            "image_id": pa.array(np.asarray(image_ids, np.int64)),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float32).ravel()), vectors.shape[1]),
        })
        with self._registered("batch_embeddings", batch), self.transaction() as con:
            con.execute(f"INSERT OR REPLACE INTO {table} SELECT image_id, vec FROM batch_embeddings")

    def embeddings(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(image ids (N,), vectors (N, d) float32) of every ok image that has a vector, by image id."""
        table = embeddings_table(model_id)
        dim = self.model_dim(model_id)
        result = self._arrow(f"""SELECT e.image_id, e.vec FROM {table} e JOIN images i ON i.id = e.image_id
                                 WHERE i.status = 'ok' ORDER BY e.image_id""")
        ids = result.column("image_id").to_numpy()
        flat = result.column("vec").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return ids, flat.astype(np.float32, copy=False).reshape(len(ids), dim or 0)

    def embedded_ids(self, model_id: str) -> np.ndarray:
        """The ids (N,) of the ok images that have a vector under `model_id`, ascending."""
        table = self._arrow(f"""SELECT e.image_id FROM {embeddings_table(model_id)} e
                                JOIN images i ON i.id = e.image_id WHERE i.status = 'ok' ORDER BY e.image_id""")
        return table.column("image_id").to_numpy()

    def vectors_of(self, model_id: str, image_ids: np.ndarray) -> np.ndarray:
        """The vectors (len(image_ids), d) float32 of `image_ids`, in their order (each must have one)."""
        wanted = pa.table({"image_id": pa.array(np.asarray(image_ids, np.int64)),
                           "position": pa.array(np.arange(len(image_ids), dtype=np.int64))})
        with self._registered("wanted_vectors", wanted):
            result = self._arrow(f"""SELECT e.vec FROM wanted_vectors w
                                     JOIN {embeddings_table(model_id)} e USING (image_id) ORDER BY w.position""")
        flat = result.column("vec").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return flat.astype(np.float32, copy=False).reshape(len(result), self.model_dim(model_id) or 0)

    def embeddings_version(self, model_id: str) -> tuple:
        """A value that changes whenever ingest adds, replaces or drops a vector under `model_id` or an image changes
        status, so a copy of the vectors in memory knows it is stale; its first item is the number of vectors. Two
        single-table aggregates (ms at 1M; a join of the two tables took 400 ms)."""
        if self.model_dim(model_id) is None:
            return (0,)
        vectors = self._query(f"""SELECT count(*), coalesce(max(image_id), 0), coalesce(sum(image_id), 0)
                                  FROM {embeddings_table(model_id)}""")[0]
        images = self._query("SELECT count(*) FILTER (status = 'ok'), max(updated_at) FROM images")[0]
        return (int(vectors[0]), int(vectors[1]), int(vectors[2]), int(images[0]), str(images[1]))

    def images_changed_at(self) -> str:
        """When ingest last wrote an image's row (a new file, a new content, a status): cheap (one aggregate), to
        know when what is derived from the images' content, such as which are changed since labelled, is stale."""
        return str(self._query("SELECT max(updated_at) FROM images")[0][0])

    def same_content(self) -> tuple[np.ndarray, np.ndarray]:
        """The ok images that share their content (sha256) with another ok image: (image ids (M,), a number per
        image, equal for equal content (M,)). Exact copies, found without reading every hash."""
        result = self._arrow("""
            SELECT id, dense_rank() OVER (ORDER BY sha256) AS content FROM images
            WHERE status = 'ok' AND sha256 IN (
                SELECT sha256 FROM images WHERE status = 'ok' GROUP BY sha256 HAVING count(*) > 1)""")
        return result.column("id").to_numpy(), result.column("content").to_numpy()

    def image_index(self) -> dict[str, tuple]:
        """relpath -> (id, sha256, size, mtime_ns, status) for every known image."""
        rows = self._query("SELECT relpath, id, sha256, size, mtime_ns, status FROM images")
        return {row[0]: row[1:] for row in rows}

    def write_ingest_batch(self, images: pa.Table, model_id: str, embedded_paths: Sequence[str],
                           vectors: np.ndarray) -> None:
        """Upsert image rows (relpath, sha256, size, mtime_ns, width, height, status, error) and the vectors of
        `embedded_paths`, in one transaction. A file whose content changed loses its stale vectors and predictions."""
        table = embeddings_table(model_id)
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        vec_table = pa.table({
            "relpath": pa.array(list(embedded_paths), pa.string()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float32).ravel()), dim),
        })
        with self._registered("batch_images", images), \
                self._registered("batch_vectors", vec_table), self.transaction() as con:
            self._upsert_ingested(con, table)

    def import_ingest_shards(self, shards: Sequence[str], model_id: str, relpaths: Sequence[str]) -> None:
        """Upsert the image rows and vectors of Parquet shards in one transaction, as write_ingest_batch does for
        one batch, for the files in `relpaths` (a file gone since its shard was written is left out). A shard has
        the columns of write_ingest_batch's images plus `vec` (the vector, null when the image has none to add);
        a path in several shards takes its row from the last shard by file name."""
        if not shards:
            return
        table = embeddings_table(model_id)
        files = ", ".join("'" + str(path).replace("'", "''") + "'" for path in shards)
        wanted = pa.table({"relpath": pa.array(list(relpaths), pa.string())})
        with self._registered("shard_relpaths", wanted), self.transaction() as con:
            con.execute(f"""CREATE TEMP TABLE batch_images AS
                            SELECT * EXCLUDE (filename) FROM read_parquet([{files}], filename = true)
                            WHERE relpath IN (SELECT relpath FROM shard_relpaths)
                            QUALIFY row_number() OVER (PARTITION BY relpath ORDER BY filename DESC) = 1""")
            con.execute(f"""CREATE TEMP VIEW batch_vectors AS SELECT relpath, vec::FLOAT[{self.model_dim(model_id)}]
                            AS vec FROM batch_images WHERE vec IS NOT NULL""")
            self._upsert_ingested(con, table)
            con.execute("DROP VIEW batch_vectors")
            con.execute("DROP TABLE batch_images")

    def _upsert_ingested(self, con, table: str) -> None:
        """The statements behind write_ingest_batch and import_ingest_shards, over `batch_images` and
        `batch_vectors` (relpath, vec) as the caller exposes them inside its transaction."""
        stale_filter = """SELECT i.id FROM images i JOIN batch_images b USING (relpath)
                          WHERE i.sha256 IS DISTINCT FROM b.sha256 OR b.status <> 'ok'"""
        model_tables = [embeddings_table(mid) for (mid,) in con.execute("SELECT model_id FROM models").fetchall()]
        for stale_table in model_tables:
            con.execute(f"DELETE FROM {stale_table} WHERE image_id IN ({stale_filter})")
        con.execute(f"DELETE FROM predictions WHERE image_id IN ({stale_filter})")
        con.execute("""
            INSERT INTO images (relpath, sha256, size, mtime_ns, width, height, status, error)
            SELECT relpath, sha256, size, mtime_ns, width, height, status, error FROM batch_images
            ON CONFLICT (relpath) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
                mtime_ns = excluded.mtime_ns, width = excluded.width, height = excluded.height,
                status = excluded.status, error = excluded.error, updated_at = now()""")
        if con.execute("SELECT count(*) FROM batch_vectors").fetchall()[0][0]:
            con.execute(f"""INSERT OR REPLACE INTO {table}
                            SELECT i.id, v.vec FROM batch_vectors v JOIN images i USING (relpath)""")
        self._refresh_gallery(con, "SELECT id FROM images WHERE relpath IN (SELECT relpath FROM batch_images)")

    def mark_missing(self, relpaths: Sequence[str]) -> None:
        if not relpaths:
            return
        paths = pa.table({"relpath": pa.array(list(relpaths), pa.string())})
        with self._registered("gone", paths), self.transaction() as con:
            con.execute("""UPDATE images SET status = 'missing', error = 'file no longer in the images folder',
                           updated_at = current_timestamp WHERE relpath IN (SELECT relpath FROM gone)""")
            self._refresh_gallery(con, "SELECT id FROM images WHERE relpath IN (SELECT relpath FROM gone)")

    def image_ids(self, relpaths: Sequence[str]) -> dict[str, tuple[int, str]]:
        """relpath -> (id, status) for those of `relpaths` the project knows."""
        paths = pa.table({"relpath": pa.array(list(relpaths), pa.string())})
        with self._registered("wanted", paths):
            rows = self._con.execute(
                "SELECT relpath, id, status FROM images WHERE relpath IN (SELECT relpath FROM wanted)").fetchall()
        return {relpath: (image_id, status) for relpath, image_id, status in rows}

    def relpaths(self) -> dict[int, str]:
        """image id -> relpath for every known image."""
        return dict(self._query("SELECT id, relpath FROM images"))

    def relpaths_of(self, image_ids: Sequence[int]) -> dict[int, str]:
        """image id -> relpath for those of `image_ids` the project knows."""
        wanted = pa.table({"id": pa.array(list(map(int, image_ids)), pa.int64())})
        with self._registered("wanted_ids", wanted):
            return dict(self._query("SELECT id, relpath FROM images WHERE id IN (SELECT id FROM wanted_ids)"))

    def image_errors(self) -> list[dict]:
        rows = self._query("SELECT relpath, error FROM images WHERE status = 'error' ORDER BY relpath")
        return [{"path": relpath, "reason": error} for relpath, error in rows]
