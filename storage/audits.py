"""SQL for the random audit (engine/project/audit.py) and for rounds held back as worse (mixed into Store)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa


class AuditQueries:
    # ---- audits and their draws -----------------------------------------------------------------------------

    def current_audit(self) -> dict | None:
        """The newest audit: id, seed, class_ids (the class list its labels are given under), population (ok
        images when it started), last_image_id (it draws from images up to this id), started_at; None if none."""
        rows = self._query("""SELECT id, seed, class_ids, population, last_image_id, started_at FROM audits
                              ORDER BY id DESC LIMIT 1""")
        if not rows:
            return None
        keys = ("id", "seed", "class_ids", "population", "last_image_id", "started_at")
        audit = dict(zip(keys, rows[0]))
        audit["class_ids"] = list(audit["class_ids"])
        return audit

    def start_audit(self, seed: int, class_ids: list[int]) -> dict:
        """A new audit over today's ok images and classes."""
        with self.transaction() as con:
            con.execute("""INSERT INTO audits (id, seed, class_ids, population, last_image_id)
                           SELECT (SELECT coalesce(max(id), 0) + 1 FROM audits), ?, ?::INTEGER[], count(*),
                                  coalesce(max(id), 0)
                           FROM images WHERE status = 'ok'""", [int(seed), list(map(int, class_ids))])
        return self.current_audit()

    def audit_frame(self, audit: dict) -> np.ndarray:
        """The ids of every image an audit may draw from, ascending: all images up to its last id, whatever their
        status today (rows are never deleted, so the seeded permutation over them never changes)."""
        table = self._arrow("SELECT id FROM images WHERE id <= ? ORDER BY id", [audit["last_image_id"]])
        return table.column("id").to_numpy()

    def audit_draws(self, audit_id: int) -> dict[str, np.ndarray]:
        """The audit's draws in draw order: image_id, position, labelled_before (it had a person's label when
        drawn), status (of the image today), label (class id, -1 = none of these, -2 = no human label yet)."""
        table = self._arrow("""
            SELECT d.image_id, d.position, d.labelled_before, i.status,
                   CASE WHEN l.image_id IS NULL THEN -2 ELSE coalesce(l.class_id, -1) END AS label
            FROM audit_draws d JOIN images i ON i.id = d.image_id
            LEFT JOIN labels l ON l.image_id = d.image_id AND l.source = 'human'
            WHERE d.audit_id = ? ORDER BY d.position""", [audit_id])
        return {"image_id": table.column("image_id").to_numpy(),
                "position": table.column("position").to_numpy(),
                "labelled_before": table.column("labelled_before").to_numpy(zero_copy_only=False).astype(bool),
                "status": np.array(table.column("status").to_pylist(), dtype=object),
                "label": table.column("label").to_numpy()}

    def audit_progress(self) -> tuple:
        """(newest audit id, images drawn, of them with a person's label): cheap, to know when figures change."""
        row = self._query("""SELECT a.id, count(d.image_id), count(l.image_id) FROM audits a
                             LEFT JOIN audit_draws d ON d.audit_id = a.id
                             LEFT JOIN labels l ON l.image_id = d.image_id AND l.source = 'human'
                             WHERE a.id = (SELECT max(id) FROM audits) GROUP BY a.id""")
        return tuple(row[0]) if row else (None, 0, 0)

    def add_audit_draws(self, audit_id: int, image_ids: np.ndarray, positions: np.ndarray) -> None:
        """Record the next images of an audit's permutation; whether each already had a person's label is read in
        the same transaction."""
        batch = pa.table({"image_id": pa.array(np.asarray(image_ids, np.int64)),
                          "position": pa.array(np.asarray(positions, np.int64))})
        with self._registered("new_draws", batch), self.transaction() as con:
            con.execute("""INSERT INTO audit_draws (audit_id, image_id, position, labelled_before)
                           SELECT ?, n.image_id, n.position, l.image_id IS NOT NULL
                           FROM new_draws n LEFT JOIN labels l ON l.image_id = n.image_id AND l.source = 'human'""",
                        [audit_id])

    def ok_image_ids(self) -> np.ndarray:
        """Ids of the usable images, ascending."""
        return self._arrow("SELECT id FROM images WHERE status = 'ok' ORDER BY id").column("id").to_numpy()

    def human_labelled_ids(self) -> np.ndarray:
        """Ids of the images with a person's label (a class or none of these), ascending."""
        return self._arrow("SELECT image_id FROM labels WHERE source = 'human' ORDER BY image_id") \
            .column("image_id").to_numpy()

    def prediction_rows(self, round_id: int, image_ids: np.ndarray) -> tuple[np.ndarray, list[int] | None,
                                                                               np.ndarray]:
        """(image ids found (K,), class ids, probs (K, C)) of one round's predictions for `image_ids` (the
        audited ones: few), by image id."""
        batch = pa.table({"image_id": pa.array(np.asarray(image_ids, np.int64))})
        with self._registered("asked_rows", batch):
            rows = self._query("""SELECT image_id, class_ids, probs FROM predictions
                                  WHERE round = ? AND image_id IN (SELECT image_id FROM asked_rows)
                                  ORDER BY image_id""", [round_id])
        if not rows:
            return np.zeros(0, np.int64), None, np.zeros((0, 0), np.float32)
        return (np.array([r[0] for r in rows], np.int64), list(rows[0][1]),
                np.array([r[2] for r in rows], np.float32))

    def confidence_summary(self, round_id: int, last_image_id: int) -> tuple[int, float, float]:
        """(count, mean, sample variance) of the confidence of one round's predictions over the usable images up
        to `last_image_id` that no person labelled: what an audit's accuracy estimate needs of the rest, in one
        scan."""
        row = self._query("""SELECT count(*), coalesce(avg(p.confidence), 0), coalesce(var_samp(p.confidence), 0)
                             FROM predictions p JOIN images i ON i.id = p.image_id
                             WHERE p.round = ? AND i.status = 'ok' AND i.id <= ?
                               AND p.image_id NOT IN (SELECT image_id FROM labels WHERE source = 'human')""",
                          [round_id, last_image_id])[0]
        return int(row[0]), float(row[1]), float(row[2])

    def probability_summary(self, round_id: int, last_image_id: int,
                            n_classes: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(count, mean (C,), sample variance (C,)) of each class's probability in one round's predictions over
        the usable images up to `last_image_id`, in one scan."""
        columns = ", ".join(f"avg(p.probs[{k}]), coalesce(var_samp(p.probs[{k}]), 0)" for k in range(1, n_classes + 1))
        row = self._query(f"""SELECT count(*), {columns} FROM predictions p JOIN images i ON i.id = p.image_id
                              WHERE p.round = ? AND i.status = 'ok' AND i.id <= ?""",
                          [round_id, last_image_id])[0]
        values = np.array([v if v is not None else 0.0 for v in row[1:]], np.float64).reshape(-1, 2)
        return int(row[0]), values[:, 0], values[:, 1]

    # ---- rounds measured worse ------------------------------------------------------------------------------

    def set_round_held(self, round_id: int, held: bool) -> None:
        """Hold a round back (the audit measured it worse than the one before: the page and exports keep showing
        that one), or show it (the person chose it)."""
        with self.transaction() as con:
            con.execute("UPDATE rounds SET held = ? WHERE id = ?", [bool(held), round_id])
            self._gallery_stale(con)

    def add_round_metrics(self, round_id: int, **values) -> None:
        """Add entries to a finished round's metrics (what its judgement by the audit found)."""
        with self.transaction() as con:
            row = con.execute("SELECT metrics FROM rounds WHERE id = ?", [round_id]).fetchall()
            metrics = json.loads(row[0][0]) if row and row[0][0] else {}
            con.execute("UPDATE rounds SET metrics = ? WHERE id = ?", [json.dumps({**metrics, **values}), round_id])

    def held_rounds(self) -> set[int]:
        return {row[0] for row in self._query("SELECT id FROM rounds WHERE coalesce(held, FALSE)")}
