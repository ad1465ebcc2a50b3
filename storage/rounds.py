"""SQL for rounds, predictions as matrices, the zero-shot classifier and background jobs (mixed into Store)."""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pyarrow as pa


_INSERT_PREDICTIONS = """INSERT OR REPLACE INTO predictions
    SELECT image_id, ?, ?, ?, ?::INTEGER[], probs::FLOAT[], label, confidence, margin, entropy
    FROM batch_predictions"""


def _prediction_batch(image_ids: np.ndarray, class_ids: Sequence[int], probs: np.ndarray,
                      stats: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({
        "image_id": pa.array(np.asarray(image_ids, np.int64)),
        "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.astype(np.float32).ravel()), probs.shape[1]),
        "label": pa.array(np.asarray(class_ids, dtype=np.int32)[stats["label"]], pa.int32()),
        "confidence": pa.array(stats["confidence"].astype(np.float32)),
        "margin": pa.array(stats["margin"].astype(np.float32)),
        "entropy": pa.array(stats["entropy"].astype(np.float32)),
    })


def _probs_batch(image_ids: np.ndarray, probs: np.ndarray) -> pa.Table:
    probs = np.asarray(probs, np.float32)
    return pa.table({"image_id": pa.array(np.asarray(image_ids, np.int64)),
                     "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), max(1, probs.shape[1]))})


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.astype(np.float32, copy=False).reshape(-1, width)


class RoundQueries:
    # ---- the zero-shot classifier --------------------------------------------------------------------------

    def save_class_weights(self, model_id: str, class_ids: Sequence[int], weights: np.ndarray,
                           logit_scale: float) -> None:
        batch = pa.table({"class_id": pa.array(list(map(int, class_ids)), pa.int32()),
                          "vec": pa.array(list(np.asarray(weights, np.float32)), pa.list_(pa.float32()))})
        with self._registered("batch_weights", batch), self.transaction() as con:
            con.execute("DELETE FROM class_weights WHERE model_id = ?", [model_id])
            con.execute("INSERT INTO class_weights SELECT ?, class_id, vec FROM batch_weights", [model_id])
            con.execute("UPDATE models SET logit_scale = ? WHERE model_id = ?", [float(logit_scale), model_id])

    def class_weights(self, model_id: str) -> tuple[list[int], np.ndarray, float] | None:
        """(class ids, (C, D) unit text weights, logit scale) of the last zero-shot run, or None."""
        table = self._arrow("SELECT class_id, vec FROM class_weights WHERE model_id = ? ORDER BY class_id",
                            [model_id])
        scale = self._query("SELECT logit_scale FROM models WHERE model_id = ?", [model_id])
        if not table.num_rows or not scale or scale[0][0] is None:
            return None
        dim = len(table.column("vec")[0])
        return table.column("class_id").to_pylist(), _matrix(table.column("vec"), dim), float(scale[0][0])

    # ---- predictions ----------------------------------------------------------------------------------------

    def replace_predictions(self, *, round_id: int, source: str, model_id: str, image_ids: np.ndarray,
                            class_ids: Sequence[int], probs: np.ndarray, stats: dict[str, np.ndarray],
                            replace_all: bool) -> None:
        """Write one round's predictions in one transaction. `replace_all` first drops the round's older rows."""
        batch = _prediction_batch(image_ids, class_ids, probs, stats)
        with self._registered("batch_predictions", batch), self.transaction() as con:
            if replace_all:
                con.execute("DELETE FROM predictions WHERE round = ?", [round_id])
            con.execute(_INSERT_PREDICTIONS, [round_id, source, model_id, list(map(int, class_ids))])
            if replace_all:
                self._gallery_stale(con)
            else:
                self._refresh_gallery(con, "SELECT image_id FROM batch_predictions")

    def image_ids_without_prediction(self, round_id: int) -> set[int]:
        rows = self._query("""SELECT id FROM images WHERE status = 'ok'
                              AND id NOT IN (SELECT image_id FROM predictions WHERE round = ?)""", [round_id])
        return {image_id for (image_id,) in rows}

    def prediction_matrix(self, round_id: int) -> tuple[np.ndarray, list[int], np.ndarray] | None:
        """(image ids (N,), class ids, probs (N, C)) of one round for ok images, by image id; None if empty."""
        table = self._arrow("""SELECT p.image_id, p.class_ids, p.probs FROM predictions p
                               JOIN images i ON i.id = p.image_id
                               WHERE p.round = ? AND i.status = 'ok' ORDER BY p.image_id""", [round_id])
        if not table.num_rows:
            return None
        class_ids = table.column("class_ids")[0].as_py()
        return table.column("image_id").to_numpy(), class_ids, _matrix(table.column("probs"), len(class_ids))

    def label_snapshot(self) -> dict[str, np.ndarray]:
        """Current labels as arrays: image_id, class_id (-1 = none of these), human (bool)."""
        table = self._arrow("SELECT image_id, coalesce(class_id, -1) AS class_id, source = 'human' AS human "
                            "FROM labels ORDER BY image_id")
        return {"image_id": table.column("image_id").to_numpy(),
                "class_id": table.column("class_id").to_numpy(),
                "human": table.column("human").to_numpy(zero_copy_only=False).astype(bool)}

    # ---- rounds ---------------------------------------------------------------------------------------------

    def last_finished_round(self) -> int:
        """The newest finished round that is not held back (a round the audit measured worse than the one before
        it stays held until the person chooses it): the teacher of the next round; 0 when none."""
        return self._query("SELECT coalesce(max(id), 0) FROM rounds WHERE status = 'done' "
                           "AND NOT coalesce(held, FALSE)")[0][0]

    def shown_round(self) -> int:
        """The round whose predictions the page shows and export writes: the newest finished round not held back
        if it predicted over today's classes, else 0 (zero-shot, which a class change runs again)."""
        newest = self.last_finished_round()
        if newest and self.round_class_ids(newest) == [c["id"] for c in self.classes()]:
            return newest
        return 0

    def start_round(self, config: dict) -> int:
        with self.transaction() as con:
            round_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM rounds").fetchall()[0][0]
            con.execute("INSERT INTO rounds (id, started_at, status, config) VALUES (?, now(), 'running', ?)",
                        [round_id, json.dumps(config)])
        return round_id

    def end_round(self, round_id: int, status: str, error: str | None = None) -> None:
        with self.transaction() as con:
            con.execute("UPDATE rounds SET status = ?, finished_at = now(), metrics = ? WHERE id = ?",
                        [status, json.dumps({"error": error}) if error else None, round_id])

    def finish_round(self, round_id: int, *, model_id: str, image_ids: np.ndarray, class_ids: Sequence[int],
                     probs: np.ndarray, stats: dict[str, np.ndarray], pseudo_ids: np.ndarray,
                     pseudo_classes: np.ndarray, metrics: dict, meta: dict | None = None,
                     crossfit_ids: np.ndarray | None = None, crossfit_probs: np.ndarray | None = None,
                     outlier: np.ndarray | None = None, held: bool = False) -> None:
        """Everything a round writes, in one transaction: its predictions, the new pseudo-labels (never over a
        human label, including one written while the round ran), its metrics, `meta` entries to set (a
        `finetune` round switches the project to its adapted model), the out-of-sample probabilities (H, C) of
        the human-labeled images `crossfit_ids` (H,) and every image's outlier score (N,). `held`: written held back
        (not shown) until a judgement shows it (engine.project.audit.judge_round)."""
        pseudo = pa.table({"image_id": pa.array(np.asarray(pseudo_ids, np.int64)),
                           "class_id": pa.array(np.asarray(pseudo_classes, np.int32))})
        batch = _prediction_batch(image_ids, class_ids, probs, stats)
        crossfit = _probs_batch(np.zeros(0, np.int64) if crossfit_ids is None else crossfit_ids,
                                np.zeros((0, len(class_ids))) if crossfit_probs is None else crossfit_probs)
        scores = pa.table({"image_id": pa.array(np.asarray(image_ids if outlier is not None else [], np.int64)),
                           "score": pa.array(np.asarray(outlier if outlier is not None else [], np.float32))})
        with self._registered("round_pseudo", pseudo), self._registered("batch_predictions", batch), \
                self._registered("round_crossfit", crossfit), self._registered("round_outliers", scores), \
                self.transaction() as con:
            con.execute(_INSERT_PREDICTIONS, [round_id, "teacher", model_id, list(map(int, class_ids))])
            con.execute("INSERT OR REPLACE INTO crossfit_probs SELECT image_id, ?, ?::INTEGER[], probs::FLOAT[] "
                        "FROM round_crossfit", [round_id, list(map(int, class_ids))])
            con.execute("INSERT OR REPLACE INTO outlier_scores SELECT image_id, ?, score FROM round_outliers",
                        [round_id])
            con.execute("DELETE FROM labels WHERE source = 'pseudo'")
            con.execute("""INSERT INTO labels (image_id, class_id, source, round, updated_at)
                           SELECT image_id, class_id, 'pseudo', ?, now() FROM round_pseudo
                           WHERE image_id NOT IN (SELECT image_id FROM labels)""", [round_id])
            con.execute("UPDATE rounds SET status = 'done', finished_at = now(), metrics = ?, held = ? WHERE id = ?",
                        [json.dumps(metrics), bool(held), round_id])
            self._gallery_stale(con)
            for key, value in (meta or {}).items():
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, json.dumps(value)])

    def rounds(self) -> list[dict]:
        rows = self._query("SELECT id, started_at, finished_at, status, config, metrics, coalesce(held, FALSE) "
                           "FROM rounds ORDER BY id")
        return [{"id": rid, "started_at": str(started), "finished_at": str(finished) if finished else None,
                 "status": status, "config": json.loads(config) if config else None,
                 "metrics": json.loads(metrics) if metrics else None, "held": held}
                for rid, started, finished, status, config, metrics, held in rows]

    def round_metrics(self, round_id: int) -> dict:
        """The metrics a round recorded when it ran (empty for none, or a round that recorded none)."""
        rows = self._query("SELECT metrics FROM rounds WHERE id = ?", [round_id])
        return json.loads(rows[0][0]) if rows and rows[0][0] else {}

    def mark_interrupted(self) -> int:
        """At start-up: work a dead process left `running` or `queued` is `interrupted`. Returns how many."""
        with self.transaction() as con:
            rounds = con.execute("""UPDATE rounds SET status = 'interrupted', finished_at = now()
                                    WHERE status = 'running' RETURNING id""").fetchall()
            jobs = con.execute("""UPDATE jobs SET status = 'interrupted', finished_at = now()
                                  WHERE status IN ('queued', 'running') RETURNING id""").fetchall()
        return len(rounds) + len(jobs)

    # ---- jobs -----------------------------------------------------------------------------------------------

    def create_job(self, kind: str, config: dict) -> int:
        with self.transaction() as con:
            return con.execute("INSERT INTO jobs (kind, status, config) VALUES (?, 'queued', ?) RETURNING id",
                               [kind, json.dumps(config)]).fetchall()[0][0]

    def update_job(self, job_id: int, *, status: str | None = None, progress: float | None = None,
                   eta_seconds: float | None = None, message: str | None = None, error: str | None = None) -> None:
        ends = status in ("done", "failed", "cancelled", "interrupted")
        with self.transaction() as con:
            con.execute("""UPDATE jobs SET status = coalesce(?, status), progress = coalesce(?, progress),
                               eta_seconds = ?, message = coalesce(?, message), error = coalesce(?, error),
                               started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN now()
                                            ELSE started_at END,
                               finished_at = CASE WHEN ? THEN now() ELSE finished_at END
                           WHERE id = ?""",
                        [status, progress, eta_seconds, message, error, status, ends, job_id])

    def jobs(self, limit: int = 20) -> list[dict]:
        rows = self._query("""SELECT id, kind, status, progress, eta_seconds, message, error, created_at,
                                     started_at, finished_at FROM jobs ORDER BY id DESC LIMIT ?""", [limit])
        keys = ("id", "kind", "status", "progress", "eta_seconds", "message", "error", "created_at", "started_at",
                "finished_at")
        return [dict(zip(keys, row)) for row in rows]
