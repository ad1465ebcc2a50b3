"""The one object that talks to a project's DuckDB file.

Every SQL statement of labelloop lives in this module. Functions take and return plain Python values, numpy
arrays or Arrow tables. Bulk writes go through registered Arrow tables (`INSERT ... SELECT`), never row by row.
"""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from storage.schema import MIGRATIONS, SCHEMA_VERSION, embeddings_table


class ProjectLocked(Exception):
    """The database file is held by another process (DuckDB allows one writer per file)."""

    def __init__(self, path: Path, pid: int | None, command: str | None):
        self.path, self.pid, self.command = path, pid, command
        holder = f"process {pid}" if pid else "another process"
        if command:
            holder += f" ({command})"
        super().__init__(f"{path} is in use by {holder}; stop it, or use the page it serves, then try again")


def _lock_holder(message: str) -> tuple[int | None, str | None]:
    match = re.search(r"\(PID (\d+)\)", message)
    if not match:
        return None, None
    pid = int(match.group(1))
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
        command = command if len(command) <= 80 else command[:77] + "..."
    except OSError:
        command = None
    return pid, command


class Store:
    """A project's database connection. Build one explicitly at start-up and pass it in; `:memory:` in unit tests."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        # The server's worker threads share one connection; DuckDB connections are not safe for concurrent use.
        self._lock = threading.RLock()
        self._migrate()

    @classmethod
    def open(cls, path: str | Path) -> "Store":
        path = Path(path)
        try:
            con = duckdb.connect(str(path))
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise ProjectLocked(path, *_lock_holder(str(error))) from None
            raise
        return cls(con)

    @classmethod
    def memory(cls) -> "Store":
        return cls(duckdb.connect(":memory:"))

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def checkpoint(self) -> None:
        with self._lock:
            self._con.execute("CHECKPOINT")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    @contextmanager
    def _registered(self, name: str, table: pa.Table) -> Iterator[None]:
        """Expose an Arrow table to SQL as `name`; enter before `transaction()` so it outlives a rollback."""
        with self._lock:
            self._con.register(name, table)
            try:
                yield
            finally:
                self._con.unregister(name)

    def _query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params or []).fetchall()

    def _arrow(self, sql: str, params: Sequence | None = None) -> pa.Table:
        with self._lock:
            return self._con.sql(sql, params=params).to_arrow_table() if params else self._con.sql(sql).to_arrow_table()

    # ---- schema ---------------------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock:
            exists = self._con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'").fetchall()[0][0]
            version = 0
            if exists:
                row = self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
                version = int(json.loads(row[0][0])) if row else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"database schema version {version} is newer than this labelloop "
                                   f"({SCHEMA_VERSION}); upgrade labelloop")
            for number in range(version, SCHEMA_VERSION):
                with self.transaction() as con:
                    for statement in MIGRATIONS[number]:
                        con.execute(statement)
                    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [json.dumps(number + 1)])

    def schema_version(self) -> int:
        return int(self.get_meta("schema_version"))

    # ---- meta -----------------------------------------------------------------------------------------------

    def get_meta(self, key: str, default=None):
        rows = self._query("SELECT value FROM meta WHERE key = ?", [key])
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, **values) -> None:
        with self.transaction() as con:
            for key, value in values.items():
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, json.dumps(value)])

    # ---- classes --------------------------------------------------------------------------------------------

    def add_classes(self, names: Sequence[str], prompts: Sequence[list[str] | None]) -> None:
        with self.transaction() as con:
            next_id = con.execute("SELECT coalesce(max(id) + 1, 0) FROM classes").fetchall()[0][0]
            for offset, (name, class_prompts) in enumerate(zip(names, prompts)):
                con.execute("INSERT INTO classes VALUES (?, ?, ?)", [next_id + offset, name, class_prompts])

    def classes(self) -> list[dict]:
        rows = self._query("SELECT id, name, prompts FROM classes ORDER BY id")
        return [{"id": cid, "name": name, "prompts": prompts} for cid, name, prompts in rows]

    # ---- models and embeddings ------------------------------------------------------------------------------

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

    def embeddings(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(image ids (N,), vectors (N, d) float32) of every ok image that has a vector, by image id."""
        table = embeddings_table(model_id)
        dim = self.model_dim(model_id)
        result = self._arrow(f"""SELECT e.image_id, e.vec FROM {table} e JOIN images i ON i.id = e.image_id
                                 WHERE i.status = 'ok' ORDER BY e.image_id""")
        ids = result.column("image_id").to_numpy()
        flat = result.column("vec").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return ids, flat.astype(np.float32, copy=False).reshape(len(ids), dim or 0)

    # ---- images ---------------------------------------------------------------------------------------------

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
        stale_filter = """SELECT i.id FROM images i JOIN batch_images b USING (relpath)
                          WHERE i.sha256 IS DISTINCT FROM b.sha256 OR b.status <> 'ok'"""
        model_tables = [embeddings_table(mid) for (mid,) in self._query("SELECT model_id FROM models")]
        with self._registered("batch_images", images), \
                self._registered("batch_vectors", vec_table), self.transaction() as con:
            for stale_table in model_tables:
                con.execute(f"DELETE FROM {stale_table} WHERE image_id IN ({stale_filter})")
            con.execute(f"DELETE FROM predictions WHERE image_id IN ({stale_filter})")
            con.execute("""
                INSERT INTO images (relpath, sha256, size, mtime_ns, width, height, status, error)
                SELECT relpath, sha256, size, mtime_ns, width, height, status, error FROM batch_images
                ON CONFLICT (relpath) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
                    mtime_ns = excluded.mtime_ns, width = excluded.width, height = excluded.height,
                    status = excluded.status, error = excluded.error, updated_at = now()""")
            if len(vec_table):
                con.execute(f"""INSERT OR REPLACE INTO {table}
                                SELECT i.id, v.vec FROM batch_vectors v JOIN images i USING (relpath)""")

    def mark_missing(self, relpaths: Sequence[str]) -> None:
        if not relpaths:
            return
        paths = pa.table({"relpath": pa.array(list(relpaths), pa.string())})
        with self._registered("gone", paths), self.transaction() as con:
            con.execute("""UPDATE images SET status = 'missing', error = 'file no longer in the images folder',
                           updated_at = current_timestamp WHERE relpath IN (SELECT relpath FROM gone)""")

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

    def image_errors(self) -> list[dict]:
        rows = self._query("SELECT relpath, error FROM images WHERE status = 'error' ORDER BY relpath")
        return [{"path": relpath, "reason": error} for relpath, error in rows]

    # ---- predictions ----------------------------------------------------------------------------------------

    def replace_predictions(self, *, round_id: int, source: str, model_id: str, image_ids: np.ndarray,
                            class_ids: Sequence[int], probs: np.ndarray, stats: dict[str, np.ndarray],
                            replace_all: bool) -> None:
        """Write one round's predictions in one transaction. `replace_all` first drops the round's older rows."""
        n, c = probs.shape
        batch = pa.table({
            "image_id": pa.array(image_ids, pa.int64()),
            "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.astype(np.float32).ravel()), c),
            "label": pa.array(np.asarray(class_ids, dtype=np.int32)[stats["label"]], pa.int32()),
            "confidence": pa.array(stats["confidence"].astype(np.float32)),
            "margin": pa.array(stats["margin"].astype(np.float32)),
            "entropy": pa.array(stats["entropy"].astype(np.float32)),
        })
        with self._registered("batch_predictions", batch), self.transaction() as con:
            if replace_all:
                con.execute("DELETE FROM predictions WHERE round = ?", [round_id])
            con.execute("""INSERT OR REPLACE INTO predictions
                           SELECT image_id, ?, ?, ?, ?::INTEGER[], probs::FLOAT[], label, confidence, margin, entropy
                           FROM batch_predictions""", [round_id, source, model_id, list(map(int, class_ids))])

    def image_ids_without_prediction(self, round_id: int) -> set[int]:
        rows = self._query("""SELECT id FROM images WHERE status = 'ok'
                              AND id NOT IN (SELECT image_id FROM predictions WHERE round = ?)""", [round_id])
        return {image_id for (image_id,) in rows}

    # ---- labels ---------------------------------------------------------------------------------------------

    def set_labels(self, image_ids: Sequence[int], class_ids: Sequence[int | None], *, source: str, actor: str,
                   round_id: int | None = None) -> int:
        """Set the current label of each image (class id None = "none of these") and append a `label_events` row
        for each change, in one transaction. A machine (`pseudo`) label never replaces a human one.
        Returns the number of labels that changed."""
        if source not in ("human", "pseudo"):
            raise ValueError(f"unknown label source {source!r}; valid: human, pseudo")
        batch = pa.table({"image_id": pa.array(list(image_ids), pa.int64()),
                          "class_id": pa.array(list(class_ids), pa.int32())})
        with self._registered("batch_labels", batch), self.transaction() as con:
            con.execute("""CREATE OR REPLACE TEMP TABLE label_changes AS
                SELECT b.image_id, l.class_id AS from_class, l.source AS from_source, b.class_id AS to_class
                FROM batch_labels b LEFT JOIN labels l USING (image_id)
                WHERE (l.image_id IS NULL OR l.class_id IS DISTINCT FROM b.class_id OR l.source <> ?)
                  AND NOT (? = 'pseudo' AND l.source IS NOT DISTINCT FROM 'human')""", [source, source])
            changed = con.execute("SELECT count(*) FROM label_changes").fetchall()[0][0]
            con.execute("""INSERT INTO label_events (image_id, from_class, from_source, to_class, to_source, actor)
                           SELECT image_id, from_class, from_source, to_class, ?, ? FROM label_changes""",
                        [source, actor])
            con.execute("""INSERT OR REPLACE INTO labels (image_id, class_id, source, round, updated_at)
                           SELECT image_id, to_class, ?, ?, current_timestamp FROM label_changes""",
                        [source, round_id])
            con.execute("DROP TABLE label_changes")
        return changed

    def label_events(self, image_id: int | None = None) -> list[dict]:
        where, params = ("WHERE image_id = ?", [image_id]) if image_id is not None else ("", [])
        rows = self._query(f"""SELECT id, image_id, from_class, from_source, to_class, to_source, actor, changed_at
                               FROM label_events {where} ORDER BY id""", params)
        keys = ("id", "image_id", "from_class", "from_source", "to_class", "to_source", "actor", "changed_at")
        return [dict(zip(keys, row)) for row in rows]

    # ---- reading the dataset --------------------------------------------------------------------------------

    def current_labels(self) -> pa.Table:
        """One row per ok image: relpath, label (class name, '' = none of these), source (human | teacher |
        zeroshot | NULL when nothing predicted yet), confidence and round. Human beats the newest round's teacher
        prediction, which beats zero-shot."""
        return self._arrow("""
            WITH newest AS (
                SELECT p.* FROM predictions p
                QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY round DESC) = 1)
            SELECT i.relpath AS path,
                   CASE WHEN h.image_id IS NOT NULL THEN coalesce(hc.name, '') ELSE pc.name END AS label,
                   CASE WHEN h.image_id IS NOT NULL THEN 'human' ELSE n.source END AS source,
                   CASE WHEN h.image_id IS NOT NULL THEN NULL ELSE n.confidence END AS confidence,
                   CASE WHEN h.image_id IS NOT NULL THEN NULL ELSE n.round END AS round,
                   i.sha256, i.width, i.height
            FROM images i
            LEFT JOIN labels h ON h.image_id = i.id AND h.source = 'human'
            LEFT JOIN classes hc ON hc.id = h.class_id
            LEFT JOIN newest n ON n.image_id = i.id
            LEFT JOIN classes pc ON pc.id = n.label
            WHERE i.status = 'ok'
            ORDER BY i.relpath""")

    def counts(self) -> dict:
        images = dict(self._query("SELECT status, count(*) FROM images GROUP BY status"))
        labels = dict(self._query("SELECT source, count(*) FROM labels GROUP BY source"))
        none_of_these = self._query("SELECT count(*) FROM labels WHERE source = 'human' AND class_id IS NULL")[0][0]
        predictions = dict(self._query("SELECT source, count(DISTINCT image_id) FROM predictions GROUP BY source"))
        duplicates = self._query("""SELECT coalesce(sum(n - 1), 0) FROM (
            SELECT count(*) AS n FROM images WHERE status = 'ok' GROUP BY sha256)""")[0][0]
        rounds = self._query("""SELECT id, started_at, finished_at, metrics FROM rounds
                                WHERE status = 'done' ORDER BY id DESC LIMIT 1""")
        last_round = None
        if rounds:
            rid, started, finished, metrics = rounds[0]
            last_round = {"id": rid, "started_at": str(started), "finished_at": str(finished),
                          "metrics": json.loads(metrics) if metrics else {}}
        return {
            "images": {status: images.get(status, 0) for status in ("ok", "error", "missing")},
            "duplicates": int(duplicates),
            "labels": {"human": labels.get("human", 0), "pseudo": labels.get("pseudo", 0),
                       "none_of_these": none_of_these},
            "predictions": {"zeroshot": predictions.get("zeroshot", 0), "teacher": predictions.get("teacher", 0)},
            "last_round": last_round,
        }
