"""SQL for labels, their history and the current dataset view (mixed into Store)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from storage.shown import shown_predictions


# The one definition of a confirmed label, over a row `l` of labels: a person's label that its person gave again as
# it was (`confirm_labels`), in the class it has now. storage.scores.LABEL_MISTAKES and the detail view read it.
CONFIRMED = """EXISTS (SELECT 1 FROM label_confirmations k WHERE k.image_id = l.image_id AND l.source = 'human'
                          AND k.class_id IS NOT DISTINCT FROM l.class_id)"""
# The one definition of an image changed since labelled: a usable image whose content (sha256) is not the one its
# person's label was given for. Its label waits for a person (relabel or confirm: `set_labels`); exports leave it
# out, the review queue puts it first, and status, the page's filter and its detail view read this.
CHANGED_SINCE_LABELLED = """SELECT l.image_id FROM labels l JOIN images i ON i.id = l.image_id
                            WHERE l.source = 'human' AND i.status = 'ok' AND l.sha256 IS DISTINCT FROM i.sha256"""


# The one definition of a label that differs from the one asked for, over a row `l` of labels and `b` of a batch
# (`_label_batch`): another class, or (multi-label) other tags or other tags looked at.
LABEL_DIFFERS = """(l.class_id IS DISTINCT FROM b.class_id OR l.tags IS DISTINCT FROM b.tags
                    OR l.looked_at IS DISTINCT FROM b.looked_at)"""

TagSet = tuple[Sequence[int], Sequence[int]]  # (tags present, tags looked at), class ids


def _label_batch(image_ids: Sequence[int], class_ids: Sequence[int | None],
                 tag_sets: Sequence[TagSet] | None) -> pa.Table:
    """image_id, class_id and, for a multi-label project's labels, tags and looked_at (sorted; NULL otherwise)."""
    lists = pa.list_(pa.int32())
    tags = [sorted(set(present)) for present, _ in tag_sets] if tag_sets is not None else [None] * len(image_ids)
    looked = [sorted(set(looked)) for _, looked in tag_sets] if tag_sets is not None else [None] * len(image_ids)
    return pa.table({"image_id": pa.array(list(image_ids), pa.int64()),
                     "class_id": pa.array(list(class_ids), pa.int32()),
                     "tags": pa.array(tags, lists), "looked_at": pa.array(looked, lists)})


class LabelQueries:
    def set_labels(self, image_ids: Sequence[int], class_ids: Sequence[int | None], *, source: str, actor: str,
                   round_id: int | None = None, tag_sets: Sequence[TagSet] | None = None) -> int:
        """Set the current label of each image (class id None = "none of these"; in a multi-label project class
        ids are None and `tag_sets` gives each image's (tags, tags looked at)) for the content the image has
        now (its sha256), and append a `label_events` row for each change, in one transaction. A machine (`pseudo`)
        label never replaces a human one. A human label given again as it was for an image changed since labelled
        is a change too: it now belongs to the new content. Returns the number of labels that changed."""
        if source not in ("human", "pseudo"):
            raise ValueError(f"unknown label source {source!r}; valid: human, pseudo")
        batch = _label_batch(image_ids, class_ids, tag_sets)
        with self._registered("batch_labels", batch), self.transaction() as con:
            con.execute(f"""CREATE OR REPLACE TEMP TABLE label_changes AS
                SELECT b.image_id, l.class_id AS from_class, l.source AS from_source, l.sha256 AS from_sha256,
                       l.tags AS from_tags, l.looked_at AS from_looked_at,
                       b.class_id AS to_class, i.sha256 AS to_sha256, b.tags AS to_tags, b.looked_at AS to_looked_at
                FROM batch_labels b LEFT JOIN labels l USING (image_id) LEFT JOIN images i ON i.id = b.image_id
                WHERE (l.image_id IS NULL OR {LABEL_DIFFERS} OR l.source <> $source
                       OR ($source = 'human' AND l.sha256 IS DISTINCT FROM i.sha256))
                  AND NOT ($source = 'pseudo' AND l.source IS NOT DISTINCT FROM 'human')""", {"source": source})
            changed = con.execute("SELECT count(*) FROM label_changes").fetchall()[0][0]
            con.execute("""INSERT INTO label_events (image_id, from_class, from_source, from_sha256, to_class,
                                                     to_source, actor, from_tags, from_looked_at, to_tags, to_looked_at)
                           SELECT image_id, from_class, from_source, from_sha256, to_class, ?, ?, from_tags,
                                  from_looked_at, to_tags, to_looked_at FROM label_changes""",
                        [source, actor])
            con.execute("""INSERT OR REPLACE INTO labels (image_id, class_id, source, round, updated_at, sha256, tags,
                                                          looked_at)
                           SELECT image_id, to_class, ?, ?, current_timestamp, to_sha256, to_tags, to_looked_at
                           FROM label_changes""",
                        [source, round_id])
            self._refresh_gallery(con, "SELECT image_id FROM label_changes")
            con.execute("DROP TABLE label_changes")
        return changed

    def confirm_labels(self, image_ids: Sequence[int], class_ids: Sequence[int | None], *, actor: str) -> list[int]:
        """A person at the page gave these labels: those whose human label already is that class are confirmed
        (the person looked at it and kept it), so they are no longer possible label mistakes
        (storage.scores.LABEL_MISTAKES) while they keep it. Call it before `set_labels` writes the rest; an import
        that repeats a label confirms nothing (it does not call this). Returns the images newly confirmed."""
        batch = pa.table({"image_id": pa.array(list(image_ids), pa.int64()),
                          "class_id": pa.array(list(class_ids), pa.int32())})
        with self._registered("batch_kept", batch), self.transaction() as con:
            rows = con.execute(f"""INSERT OR REPLACE INTO label_confirmations (image_id, class_id, actor)
                SELECT l.image_id, l.class_id, ? FROM batch_kept b JOIN labels l USING (image_id)
                WHERE l.source = 'human' AND l.class_id IS NOT DISTINCT FROM b.class_id AND NOT {CONFIRMED}
                RETURNING image_id""", [actor]).fetchall()
        return sorted(row[0] for row in rows)

    def forget_confirmations(self, image_ids: Sequence[int]) -> None:
        """Undo confirmations: these images' labels can be possible mistakes again."""
        wanted = pa.table({"image_id": pa.array(list(image_ids), pa.int64())})
        with self._registered("forgotten", wanted), self.transaction() as con:
            con.execute("DELETE FROM label_confirmations WHERE image_id IN (SELECT image_id FROM forgotten)")

    def count_human_labels_replaced(self, image_ids: Sequence[int], class_ids: Sequence[int | None], *,
                                    actor: str, tag_sets: Sequence[TagSet] | None = None) -> int:
        """How many of these images hold a human label, last set by someone other than `actor`, that setting
        `class_ids` (or `tag_sets`, as `set_labels` takes them) would change."""
        batch = _label_batch(image_ids, class_ids, tag_sets)
        with self._registered("batch_replacing", batch):
            return self._query(f"""
                WITH last_actor AS (SELECT image_id, arg_max(actor, id) AS actor FROM label_events
                                    WHERE image_id IN (SELECT image_id FROM batch_replacing) GROUP BY image_id)
                SELECT count(*) FROM batch_replacing b JOIN labels l USING (image_id)
                LEFT JOIN last_actor a USING (image_id)
                WHERE l.source = 'human' AND {LABEL_DIFFERS}
                  AND a.actor IS DISTINCT FROM ?""", [actor])[0][0]

    def human_label_times(self, image_ids: Sequence[int]) -> dict[int, tuple[int | None | frozenset[int], float]]:
        """image id -> (class id, None = none of these, or a multi-label project's frozenset of tag ids; when it was
        last changed, seconds since the epoch) for those of `image_ids` with a human label."""
        wanted = pa.table({"image_id": pa.array(list(image_ids), pa.int64())})
        with self._registered("wanted_labels", wanted):
            rows = self._con.execute("""SELECT image_id, class_id, tags, epoch(updated_at::TIMESTAMPTZ) FROM labels
                WHERE source = 'human' AND image_id IN (SELECT image_id FROM wanted_labels)""").fetchall()
        return {image_id: (class_id if tags is None else frozenset(tags), changed_at)
                for image_id, class_id, tags, changed_at in rows}

    def changed_since_labelled(self) -> np.ndarray:
        """Ids of the images changed since labelled (CHANGED_SINCE_LABELLED), ascending."""
        return self._arrow(f"SELECT image_id FROM ({CHANGED_SINCE_LABELLED}) ORDER BY image_id") \
            .column("image_id").to_numpy()

    def label_events(self, image_id: int | None = None) -> list[dict]:
        where, params = ("WHERE image_id = ?", [image_id]) if image_id is not None else ("", [])
        rows = self._query(f"""SELECT id, image_id, from_class, from_source, to_class, to_source, actor, changed_at
                               FROM label_events {where} ORDER BY id""", params)
        keys = ("id", "image_id", "from_class", "from_source", "to_class", "to_source", "actor", "changed_at")
        return [dict(zip(keys, row)) for row in rows]

    def last_label_event_id(self) -> int:
        return self._query("SELECT coalesce(max(id), 0) FROM label_events")[0][0]

    def label_state(self) -> tuple:
        """(last label change, confirmations, newest confirmation): it differs after any label change, undo,
        confirmation or confirmation taken back, so what is computed from the labels can be kept until then."""
        return tuple(self._query("""SELECT (SELECT coalesce(max(id), 0) FROM label_events),
                                           (SELECT count(*) FROM label_confirmations),
                                           (SELECT max(confirmed_at) FROM label_confirmations)""")[0])

    def last_label_event_before_round(self, round_id: int) -> int:
        """The id of the last label change made before round `round_id` started (it read the labels then); 0 for
        round 0 (zero-shot, before any round) or a round not in the project."""
        return self._query("""SELECT coalesce(max(e.id), 0) FROM label_events e JOIN rounds r ON r.id = ?
                              WHERE e.changed_at <= r.started_at""", [round_id])[0][0]

    def human_labelled_through(self, event_id: int) -> np.ndarray:
        """Ids of the images a person had labelled once the label changes up to `event_id` were made, ascending."""
        return self._arrow("""SELECT image_id FROM label_events WHERE id <= ? GROUP BY image_id
                              HAVING arg_max(to_source, id) = 'human' ORDER BY image_id""", [event_id]) \
            .column("image_id").to_numpy()

    def human_labelled_after(self, event_id: int) -> np.ndarray:
        """Ids of the images whose label is a person's, given (or changed) after label change `event_id`,
        ascending."""
        return self._arrow("""SELECT image_id FROM labels l WHERE source = 'human' AND EXISTS (
                                  SELECT 1 FROM label_events e WHERE e.image_id = l.image_id AND e.id > ?
                                    AND e.to_source = 'human') ORDER BY image_id""", [event_id]) \
            .column("image_id").to_numpy()

    def revert_label_events(self, after_id: int, through_id: int, *, actor: str, by: str) -> list[dict]:
        """Undo the label changes `actor` made in events (after_id, through_id]: each image gets back the label it
        had before them (or none), in one transaction, and the reversal is itself appended to `label_events`.
        An image changed since by someone else keeps that newer label. Returns what each restored image got
        back: image_id, relpath, class_id, source (None = no label), ordered by relpath."""
        with self.transaction() as con:
            con.execute("""CREATE OR REPLACE TEMP TABLE label_reverts AS
                SELECT e.image_id, arg_min(e.from_class, e.id) AS to_class, arg_min(e.from_source, e.id) AS to_source,
                       arg_min(e.from_sha256, e.id) AS to_sha256, arg_min(e.from_tags, e.id) AS to_tags,
                       arg_min(e.from_looked_at, e.id) AS to_looked_at,
                       l.class_id AS from_class, l.source AS from_source, l.sha256 AS from_sha256,
                       l.tags AS from_tags, l.looked_at AS from_looked_at
                FROM label_events e LEFT JOIN labels l USING (image_id)
                WHERE e.id > ? AND e.id <= ? AND e.actor = ?
                  AND NOT EXISTS (SELECT 1 FROM label_events later
                                  WHERE later.image_id = e.image_id AND later.id > ? )
                GROUP BY e.image_id, l.class_id, l.source, l.sha256, l.tags, l.looked_at""",
                        [after_id, through_id, actor, through_id])
            restored = con.execute("""SELECT r.image_id, i.relpath, r.to_class, r.to_source
                                      FROM label_reverts r JOIN images i ON i.id = r.image_id
                                      ORDER BY i.relpath""").fetchall()
            con.execute("""INSERT INTO label_events (image_id, from_class, from_source, from_sha256, to_class,
                                                     to_source, actor, from_tags, from_looked_at, to_tags, to_looked_at)
                           SELECT image_id, from_class, from_source, from_sha256, to_class, to_source, ?, from_tags,
                                  from_looked_at, to_tags, to_looked_at
                           FROM label_reverts""", [by])
            con.execute("DELETE FROM labels WHERE image_id IN (SELECT image_id FROM label_reverts)")
            con.execute("""INSERT INTO labels (image_id, class_id, source, round, updated_at, sha256, tags, looked_at)
                           SELECT image_id, to_class, to_source, NULL, now(), to_sha256, to_tags, to_looked_at
                           FROM label_reverts WHERE to_source IS NOT NULL""")
            self._refresh_gallery(con, "SELECT image_id FROM label_reverts")
            con.execute("DROP TABLE label_reverts")
        return [dict(zip(("image_id", "relpath", "class_id", "source"), row)) for row in restored]

    def human_tag_labels(self) -> pa.Table:
        """A multi-label project's human labels: image_id, tags and looked_at (class ids), by image id."""
        return self._arrow("""SELECT image_id, tags, looked_at FROM labels
                              WHERE source = 'human' AND tags IS NOT NULL ORDER BY image_id""")

    def current_labels(self, *, tags_from: float | None = None) -> pa.Table:
        """One row per ok image: relpath, label (class name, '' = none of these; with `tags_from`, a multi-label
        project's, the list of tag ids instead: the person's tags, else those the prediction gives a probability
        of at least `tags_from`, by class id), source (human | teacher | zeroshot | NULL when nothing predicted yet), confidence,
        round, the image's sha256, size_bytes, width and height, and `changed` (CHANGED_SINCE_LABELLED: its label
        waits for a person). Human beats the prediction the page shows for `shown_round()` (storage.shown), so a
        round over a class set since changed is not exported."""
        label = ("""CASE WHEN h.image_id IS NOT NULL THEN h.tags
                         ELSE [tag[1] FOR tag IN list_zip(coalesce(n.teacher_classes, n.zero_shot_classes),
                                                          coalesce(n.teacher_probs, n.zero_shot_probs))
                               IF tag[2] >= $tags_from] END""" if tags_from is not None
                 else "CASE WHEN h.image_id IS NOT NULL THEN coalesce(hc.name, '') ELSE pc.name END")
        return self._arrow(f"""
            WITH newest AS ({shown_predictions()})
            SELECT i.relpath AS path,
                   {label} AS label,
                   CASE WHEN h.image_id IS NOT NULL THEN 'human' ELSE n.source END AS source,
                   CASE WHEN h.image_id IS NOT NULL THEN NULL ELSE n.confidence END AS confidence,
                   CASE WHEN h.image_id IS NOT NULL THEN NULL ELSE n.round END AS round,
                   i.sha256, i.size AS size_bytes, i.width, i.height,
                   i.id IN ({CHANGED_SINCE_LABELLED}) AS changed
            FROM images i
            LEFT JOIN labels h ON h.image_id = i.id AND h.source = 'human'
            LEFT JOIN classes hc ON hc.id = h.class_id
            LEFT JOIN newest n ON n.image_id = i.id
            LEFT JOIN classes pc ON pc.id = n.label
            WHERE i.status = 'ok'
            ORDER BY i.relpath""", {"round": self.shown_round(),
                                    **({"tags_from": tags_from} if tags_from is not None else {})})

    def shown_class_probabilities(self) -> pa.Table:
        """For every ok image with a prediction: relpath as `path`, and the class ids and probabilities (`probs`) of
        the prediction `current_labels` takes its machine label from."""
        return self._arrow(f"""
            WITH newest AS ({shown_predictions()})
            SELECT i.relpath AS path, coalesce(n.teacher_classes, n.zero_shot_classes) AS class_ids,
                   coalesce(n.teacher_probs, n.zero_shot_probs) AS probs
            FROM images i JOIN newest n ON n.image_id = i.id
            WHERE i.status = 'ok'
            ORDER BY i.relpath""", {"round": self.shown_round()})

    def human_label_history(self, actor: str) -> list[tuple[int, str, bool, bool]]:
        """For every usable image, by id: (id, relpath, whether any human label is in its history (even if undone
        since), whether one came from someone other than `actor`)."""
        return self._query("""
            SELECT i.id, i.relpath, coalesce(bool_or(e.to_source = 'human'), FALSE),
                   coalesce(bool_or(e.to_source = 'human' AND e.actor <> ?), FALSE)
            FROM images i LEFT JOIN label_events e ON e.image_id = i.id
            WHERE i.status = 'ok' GROUP BY i.id, i.relpath ORDER BY i.id""", [actor])
