"""SQL for the labeling page: one filtered, sorted page of images with what their overlays show, one image's
details, and the few aggregates the page plots (mixed into Store)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from storage.scores import LABEL_MISTAKES

GALLERY_STATUSES = ("all", "unlabeled", "pseudo", "human", "error")
GALLERY_SORTS = ("queue", "confidence_up", "confidence_down", "name", "match")

# What each image shows: the person's label if any, else the shown round's prediction (teacher, else zero-shot).
# A pseudo-label counts only when it comes from the shown round: one from a round over a class set since changed is
# stale, and the page, the header and export must not show it.
SHOWN_LABEL = "(l.source = 'human' OR l.round = $round)"
_SHOWN = """
    WITH newest AS (SELECT image_id, label, confidence FROM predictions WHERE round = $round),
         zero AS (SELECT image_id, label, confidence FROM predictions WHERE round = 0),
         shown AS (
            SELECT i.id, i.relpath, i.sha256, i.status, i.error,
                   {predicted} AS predicted, {confidence} AS confidence,
                   z.label AS zero_shot, l.class_id AS label, l.source AS label_source,
                   {disagree} AS disagree,
                   i.id IN (SELECT image_id FROM (""" + LABEL_MISTAKES + """)) AS mistake
            FROM images i
            {teacher_join}
            LEFT JOIN zero z ON z.image_id = i.id
            LEFT JOIN labels l ON l.image_id = i.id AND """ + SHOWN_LABEL + """
            WHERE i.status <> 'missing')"""


def _shown_sql(round_id: int) -> str:
    """`_SHOWN` for a round. Round 0 has no teacher: the zero-shot columns are used as they are, so a filter on
    the class or confidence reaches the predictions scan before any join (0.05 s instead of 0.6 s for a filtered
    page at a million images); a coalesce of teacher and zero-shot would keep it above the joins."""
    if round_id > 0:
        return _SHOWN.format(predicted="coalesce(n.label, z.label)", confidence="coalesce(n.confidence, z.confidence)",
                             disagree="(n.image_id IS NOT NULL AND z.label IS NOT NULL AND n.label <> z.label)",
                             teacher_join="LEFT JOIN newest n ON n.image_id = i.id")
    return _SHOWN.format(predicted="z.label", confidence="z.confidence", disagree="FALSE", teacher_join="")


_STATUS_WHERE = {
    "all": "TRUE",
    "unlabeled": "status = 'ok' AND label_source IS NULL",
    "pseudo": "label_source = 'pseudo'",
    "human": "label_source = 'human'",
    "error": "status = 'error'",
}

_ORDER = {
    "queue": "queue_rank NULLS LAST, confidence NULLS LAST, relpath",
    "confidence_up": "confidence NULLS LAST, relpath",
    "confidence_down": "confidence DESC NULLS LAST, relpath",
    "name": "relpath",
    "match": "o.position, relpath",  # the order `image_ids` gives (search results, best first)
}

GALLERY_COLUMNS = ("id", "relpath", "sha256", "status", "error", "predicted", "confidence", "zero_shot", "label",
                   "label_source", "disagree", "mistake", "total")


class GalleryQueries:
    def gallery_page(self, *, round_id: int, class_id: int | None = None, min_confidence: float = 0.0,
                     max_confidence: float = 1.0, status: str = "all", disagree: bool = False,
                     mistakes: bool = False, sort: str = "queue",
                     queue_ids: Sequence[int] = (), image_ids: Sequence[int] | None = None, offset: int = 0,
                     limit: int = 48) -> list[dict]:
        """One page of images after the filters, in the chosen order; each row carries the total match count.
        `class_id` filters on the class an image shows (the person's label where there is one). The confidence
        range applies to images with a prediction. `queue_ids` is the review queue, best first. `image_ids`, if
        given, keeps only those images (a search's results, fresh tiles after a label); sort "match" keeps their
        order. A possible label mistake is storage.scores.LABEL_MISTAKES: the one rule the review queue uses too."""
        if status not in GALLERY_STATUSES:
            raise ValueError(f"unknown status {status!r}; valid: {', '.join(GALLERY_STATUSES)}")
        if sort not in GALLERY_SORTS:
            raise ValueError(f"unknown sort {sort!r}; valid: {', '.join(GALLERY_SORTS)}")
        if sort == "match" and image_ids is None:
            raise ValueError("sort 'match' orders the given image_ids; none were given")
        where = [_STATUS_WHERE[status]]
        if class_id is not None:
            where.append("CASE WHEN label_source = 'human' THEN label ELSE predicted END = $class")
        if min_confidence > 0.0 or max_confidence < 1.0:
            where.append("confidence BETWEEN $low AND $high")
        if disagree:
            where.append("disagree")
        if mistakes:
            where.append("mistake")
        only = pa.table({"image_id": pa.array(list(map(int, image_ids or ())), pa.int64()),
                         "position": pa.array(np.arange(len(image_ids or ())), pa.int64())})
        ranks = pa.table({"image_id": pa.array(list(map(int, queue_ids)), pa.int64()),
                          "queue_rank": pa.array(np.arange(len(queue_ids)), pa.int64())})
        subset_join = "" if image_ids is None else " JOIN gallery_only o ON o.image_id = s.id"
        # Two steps: the sort over every image carries only ids (a million rows with their paths, hashes and
        # errors took twice as long to sort), then the page's 48 rows are read in full.
        page_sql = f"""{_shown_sql(round_id)}
            SELECT s.id, count(*) OVER () AS total
            FROM shown s LEFT JOIN gallery_queue q ON q.image_id = s.id{subset_join}
            WHERE {' AND '.join(where)}
            ORDER BY {_ORDER[sort]}
            LIMIT $limit OFFSET $offset"""
        rows_sql = f"""{_shown_sql(round_id)}
            SELECT s.id, s.relpath, s.sha256, s.status, s.error, s.predicted, s.confidence, s.zero_shot, s.label,
                   s.label_source, s.disagree, s.mistake, p.total
            FROM page_ids p JOIN shown s ON s.id = p.image_id ORDER BY p.position"""
        params = {"round": round_id, "limit": limit, "offset": offset}
        if class_id is not None:
            params["class"] = class_id
        if min_confidence > 0.0 or max_confidence < 1.0:
            params.update(low=min_confidence, high=max_confidence)
        with self._lock, self._registered("gallery_queue", ranks), self._registered("gallery_only", only):
            page = self._query(page_sql, params)  # both steps under one lock: they see the same labels
            ids = pa.table({"image_id": pa.array([row[0] for row in page], pa.int64()),
                            "total": pa.array([row[1] for row in page], pa.int64()),
                            "position": pa.array(np.arange(len(page)), pa.int64())})
            with self._registered("page_ids", ids):
                rows = self._query(rows_sql, {"round": round_id})
        return [dict(zip(GALLERY_COLUMNS, row)) for row in rows]

    def shown_predictions(self, image_ids: Sequence[int], round_id: int) -> list[dict]:
        """For each image: the class and confidence it shows, exactly as `gallery_page` picks them, its label
        source and status. One query for a whole page (bulk accept)."""
        wanted = pa.table({"image_id": pa.array(list(map(int, image_ids)), pa.int64())})
        with self._registered("wanted_images", wanted):
            rows = self._query(f"""{_shown_sql(round_id)}
                SELECT id, predicted, confidence, label_source, status FROM shown
                WHERE id IN (SELECT image_id FROM wanted_images) ORDER BY id""",
                               {"round": round_id})
        return [dict(zip(("id", "predicted", "confidence", "label_source", "status"), row)) for row in rows]

    def zero_shot_count(self) -> int:
        return self._query("SELECT count(*) FROM predictions WHERE round = 0")[0][0]

    def image_detail(self, image_id: int, round_id: int) -> dict | None:
        """One image: its record, its label, the zero-shot and newest teacher probabilities with their class ids."""
        rows = self._query("""
            SELECT i.id, i.relpath, i.sha256, i.status, i.error, i.width, i.height, l.class_id, l.source,
                   z.class_ids, z.probs, t.class_ids, t.probs, t.round
            FROM images i
            LEFT JOIN labels l ON l.image_id = i.id AND """ + SHOWN_LABEL + """
            LEFT JOIN predictions z ON z.image_id = i.id AND z.round = 0
            LEFT JOIN predictions t ON t.image_id = i.id AND t.round = $round AND t.round > 0
            WHERE i.id = $image""", {"round": round_id, "image": image_id})
        if not rows:
            return None
        keys = ("id", "relpath", "sha256", "status", "error", "width", "height", "label", "label_source",
                "zero_shot_classes", "zero_shot_probs", "teacher_classes", "teacher_probs", "teacher_round")
        return dict(zip(keys, rows[0]))

    def shown_label_counts(self, round_id: int) -> dict:
        """Labels as the page shows them for round `round_id`: human ones, and the pseudo-labels that round
        trained on (none while a class change has the page back on zero-shot)."""
        rows = self._query(f"""SELECT source, count(*) FROM labels l WHERE {SHOWN_LABEL} GROUP BY source""",
                           {"round": round_id})
        counts = dict(rows)
        return {"human": counts.get("human", 0), "pseudo": counts.get("pseudo", 0)}

    def newest_confidences(self, round_id: int) -> np.ndarray:
        """The confidence of every image's shown prediction (teacher of `round_id`, else zero-shot), for the
        page's histogram."""
        rows = self._query("""SELECT coalesce(t.confidence, z.confidence) FROM predictions z
                              LEFT JOIN predictions t ON t.image_id = z.image_id AND t.round = ? AND t.round > 0
                              WHERE z.round = 0""", [round_id])
        return np.array([row[0] for row in rows], np.float32)
