"""SQL for the labeling page: one filtered, sorted page of images with what their overlays show, one image's
details, and the few aggregates the page plots (mixed into Store)."""

from __future__ import annotations

import json
from typing import NamedTuple, Sequence

import numpy as np
import pyarrow as pa

from storage.labels import CHANGED_SINCE_LABELLED, CONFIRMED
from storage.scores import LABEL_MISTAKES
from storage.shown import SHOWN_LABEL, shown_predictions

GALLERY_STATUSES = ("all", "unlabeled", "pseudo", "human", "changed", "error")
GALLERY_SORTS = ("queue", "confidence_up", "confidence_down", "name", "match")

# What each image shows (storage.shown): the person's label if any, else the shown round's prediction.
_SHOWN = """
    SELECT i.id AS image_id, i.relpath, i.sha256, i.status, i.error,
           s.label AS predicted, s.confidence, s.zero_shot, l.class_id AS label, l.source AS label_source,
           coalesce(s.disagree, FALSE) AS disagree
    FROM images i
    LEFT JOIN ({predictions}) s ON s.image_id = i.id
    LEFT JOIN labels l ON l.image_id = i.id AND """ + SHOWN_LABEL + """
    WHERE i.status <> 'missing' AND {only_images}"""

# The gallery reads `gallery_rows`: _SHOWN's rows for the round named by meta "gallery_round", kept so that a page
# is a scan of one table (joining a million images with their predictions and labels took 0.4-1.4 s a page).
# Every write that changes an image, its predictions or its label refreshes the rows of the images it touched, in
# its own transaction (`_refresh_gallery`); one that changes most of them (a round, zero-shot over every image, a
# class edit) drops "gallery_round", and the next read builds the table again for the round it asks for.
GALLERY_BUILT = "gallery_round"


def _shown_sql(refresh: bool = False) -> str:
    """`_SHOWN` for the round of its parameter `$round`: for every image, or with `refresh` only for those in the
    table `gallery_refresh`."""
    if not refresh:
        return _SHOWN.format(predictions=shown_predictions(), only_images="TRUE")
    return _SHOWN.format(predictions=shown_predictions("p.image_id IN (SELECT image_id FROM gallery_refresh)"),
                         only_images="i.id IN (SELECT image_id FROM gallery_refresh)")


# A multi-label project's filters on one tag `$tag`: an image has it where a person gave it, lacks it where they
# said it is absent, else as the shown prediction says (probability at least $present); it is uncertain where no
# person looked at it and the prediction is less than $sure sure of it either way (max(p, 1 - p) < $sure).
TAG_FILTERS = ("has", "lacks", "uncertain")
_TAG_PROBABILITY = """
    SELECT i.id AS image_id, list_contains(coalesce(l.looked_at, []), $tag) AS looked,
           CASE WHEN list_contains(coalesce(l.looked_at, []), $tag)
                THEN CASE WHEN list_contains(l.tags, $tag) THEN 1.0 ELSE 0.0 END
                ELSE coalesce(s.teacher_probs, s.zero_shot_probs)[
                         list_position(coalesce(s.teacher_classes, s.zero_shot_classes), $tag)] END AS p
    FROM images i LEFT JOIN labels l ON l.image_id = i.id AND l.source = 'human'
    LEFT JOIN ({predictions}) s ON s.image_id = i.id"""
_TAG_WHERE = {"has": "p >= $present", "lacks": "p < $present", "uncertain": "NOT looked AND greatest(p, 1 - p) < $sure"}

_STATUS_WHERE = {
    "all": "TRUE",
    "unlabeled": "status = 'ok' AND label_source IS NULL",
    "pseudo": "label_source = 'pseudo'",
    "human": "label_source = 'human'",
    "changed": f"image_id IN ({CHANGED_SINCE_LABELLED})",  # changed since labelled: the label waits for a person
    "error": "status = 'error'",
}

# Equal confidences (and images without one) in the order they were added: a sort key of numbers only is read
# and compared three to five times faster than one that ends with the path (a million images: 30 ms, not 170 ms).
_ORDER = {
    "confidence_up": "confidence NULLS LAST, image_id",
    "confidence_down": "confidence DESC NULLS LAST, image_id",
    "name": "relpath",
    "match": "o.position",  # the order `image_ids` gives (search results, best first)
}

# After the review queue's images (in its order) the page sorts the rest by confidence. The queue is joined a prefix
# at a time, as long as the page needs: joining a rank to every image took 0.9-1 s at a million (0.2 s for a prefix).
_QUEUE_AFTER = "confidence NULLS LAST, image_id"
QUEUE_PREFIX = 4096

_ROW_COLUMNS = ("image_id", "relpath", "sha256", "status", "error", "predicted", "confidence", "zero_shot", "label",
                "label_source", "disagree")
GALLERY_COLUMNS = ("id", "relpath", "sha256", "status", "error", "predicted", "confidence", "zero_shot", "label",
                   "label_source", "disagree", "doubted_as")


class GalleryRows(NamedTuple):
    """One page of the gallery with its counts."""

    rows: list[dict]  # the page's rows (GALLERY_COLUMNS), in order
    total: int  # images that pass the filters
    unfiltered: int | None  # of `image_ids`, the images in the gallery before the filters (None without them)


class GalleryQueries:
    def gallery_page(self, *, round_id: int, class_id: int | None = None, min_confidence: float = 0.0,
                     max_confidence: float = 1.0, status: str = "all", disagree: bool = False,
                     mistakes: bool = False, sort: str = "queue",
                     queue_ids: Sequence[int] = (), image_ids: Sequence[int] | None = None, offset: int = 0,
                     limit: int = 48, tag: tuple[str, int, float, float] | None = None) -> GalleryRows:
        """One page of images after the filters, in the chosen order, with the count of images that pass the
        filters and, of `image_ids`, of those in the gallery before them (in the same scan: saying what the filters
        hide of a subset costs no query; of all images it would cost a scan, 5-10 ms at a million).
        `class_id` filters on the class an image shows (the person's label where there is one). The confidence
        range applies to images with a prediction. `queue_ids` is the review queue, best first. `image_ids`, if
        given, keeps only those images (a search's results, fresh tiles after a label); sort "match" keeps their
        order. A possible label mistake is storage.scores.LABEL_MISTAKES: the one rule the review queue uses too;
        `doubted_as` is the class the round's out-of-sample students predict for one (None for every other row).
        `tag`, a multi-label project's filter in place of `class_id`: (one of TAG_FILTERS, tag id, the probability
        from which a tag is present, the sureness under which it is uncertain)."""
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
            where.append(f"image_id IN (SELECT image_id FROM ({LABEL_MISTAKES}))")
        if tag is not None:
            if tag[0] not in TAG_FILTERS:
                raise ValueError(f"unknown tag filter {tag[0]!r}; valid: {', '.join(TAG_FILTERS)}")
            where.append(f"image_id IN (SELECT image_id FROM ({_TAG_PROBABILITY.format(predictions=shown_predictions())})"
                         f" WHERE {_TAG_WHERE[tag[0]]})")
        only = pa.table({"image_id": pa.array(list(map(int, image_ids or ())), pa.int64()),
                         "position": pa.array(np.arange(len(image_ids or ())), pa.int64())})
        subset_join = "" if image_ids is None else " JOIN gallery_only o USING (image_id)"
        tables, conditions = f"gallery_rows g{subset_join}", " AND ".join(where)
        params = {}
        if class_id is not None:
            params["class"] = class_id
        if min_confidence > 0.0 or max_confidence < 1.0:
            params.update(low=min_confidence, high=max_confidence)
        if mistakes or tag is not None:
            params["round"] = round_id
        if tag is not None:
            params.update(tag=tag[1], **({"sure": tag[3]} if tag[0] == "uncertain" else {"present": tag[2]}))
        with self._lock, self._registered("gallery_only", only):
            self._build_gallery(round_id)  # a no-op unless a round, zero-shot or a class edit changed most rows
            counts = (f"count(*) FILTER (WHERE {conditions}), count(*) FROM {tables}" if image_ids is not None
                      else f"count(*), NULL FROM {tables} WHERE {conditions}")
            total, unfiltered = self._query(f"SELECT {counts}", params)[0]
            # Two steps: the sort carries only ids and numbers (Top-N over one table), then the page's rows are read.
            if sort == "queue":
                page = self._queue_page(tables, conditions, params, np.asarray(queue_ids, np.int64), offset, limit)
            else:
                page = self._query(f"""SELECT g.image_id FROM {tables} WHERE {conditions}
                                       ORDER BY {_ORDER[sort]} LIMIT $limit OFFSET $offset""",
                                   {**params, "limit": limit, "offset": offset})
            ids = pa.table({"image_id": pa.array([row[0] for row in page], pa.int64()),
                            "position": pa.array(np.arange(len(page)), pa.int64())})
            with self._registered("page_ids", ids):
                rows = self._query(f"""SELECT {', '.join(f"g.{column}" for column in _ROW_COLUMNS)},
                                          m.predicted AS doubted_as
                                       FROM page_ids p JOIN gallery_rows g USING (image_id)
                                       LEFT JOIN ({LABEL_MISTAKES}) m USING (image_id) ORDER BY p.position""",
                                   {"round": round_id})
        return GalleryRows([dict(zip(GALLERY_COLUMNS, row)) for row in rows], total, unfiltered)

    def _queue_page(self, tables: str, conditions: str, params: dict, queue_ids: np.ndarray, offset: int,
                    limit: int) -> list[tuple]:
        """The page's ids in review-queue order: the queue's images that pass the filters, in its order, then the
        other images that pass them by confidence. Only a prefix of the queue is joined, grown until it holds the
        page; the whole of it only when the filters pass few of its images or the page runs past its end."""
        length = min(len(queue_ids), max(QUEUE_PREFIX, 2 * (offset + limit)))
        while True:
            prefix = pa.table({"image_id": pa.array(queue_ids[:length]),
                               "queue_rank": pa.array(np.arange(length), pa.int64())})
            with self._registered("gallery_queue", prefix):
                joined = f"{tables} JOIN gallery_queue q USING (image_id) WHERE {conditions}"
                queued = self._query(f"SELECT count(*) FROM {joined}", params)[0][0]
                if queued < offset + limit and length < len(queue_ids):
                    length = min(len(queue_ids), 4 * length)
                    continue
                page = self._query(f"SELECT g.image_id FROM {joined} ORDER BY q.queue_rank "
                                   "LIMIT $limit OFFSET $offset", {**params, "limit": limit, "offset": offset})
                if len(page) < limit:  # past the queue's end (the whole queue is joined): the other images follow
                    page += self._query(f"""SELECT g.image_id FROM {tables} WHERE {conditions}
                                              AND image_id NOT IN (SELECT image_id FROM gallery_queue)
                                            ORDER BY {_QUEUE_AFTER} LIMIT $limit OFFSET $offset""",
                                        {**params, "limit": limit - len(page),
                                         "offset": max(0, offset - queued)})
                return page

    def shown_predictions(self, image_ids: Sequence[int], round_id: int) -> list[dict]:
        """For each image: the class and confidence it shows, exactly as `gallery_page` picks them, its label
        source and status. One query for a whole page (bulk accept)."""
        wanted = pa.table({"image_id": pa.array(list(map(int, image_ids)), pa.int64())})
        with self._lock, self._registered("wanted_images", wanted):
            self._build_gallery(round_id)
            rows = self._query("""SELECT image_id, predicted, confidence, label_source, status
                                  FROM wanted_images JOIN gallery_rows USING (image_id) ORDER BY image_id""")
        return [dict(zip(("id", "predicted", "confidence", "label_source", "status"), row)) for row in rows]

    def shown_tag_rows(self, image_ids: Sequence[int], round_id: int) -> dict[int, dict]:
        """A multi-label project's images as the page shows their tags: image id -> class_ids and probs of the
        prediction shown for `round_id` (storage.shown; None before any), and a person's tags and looked_at (class
        ids; None without a person's label). One query for a whole page."""
        wanted = pa.table({"image_id": pa.array(list(map(int, image_ids)), pa.int64())})
        with self._registered("wanted_tags", wanted):
            rows = self._query(f"""
                SELECT w.image_id, coalesce(s.teacher_classes, s.zero_shot_classes),
                       coalesce(s.teacher_probs, s.zero_shot_probs), l.tags, l.looked_at
                FROM wanted_tags w
                LEFT JOIN ({shown_predictions("p.image_id IN (SELECT image_id FROM wanted_tags)")}) s
                       ON s.image_id = w.image_id
                LEFT JOIN labels l ON l.image_id = w.image_id AND l.source = 'human'""", {"round": round_id})
        keys = ("class_ids", "probs", "tags", "looked_at")
        return {row[0]: dict(zip(keys, row[1:])) for row in rows}

    def tag_probabilities(self, tag_id: int, round_id: int) -> dict[str, np.ndarray]:
        """A multi-label project's one tag for every image, by image id, as the tag filters read it: image_id,
        looked (a person answered the tag) and probability (1 or 0 where a person answered, else that of the
        prediction shown for `round_id`; NaN without one)."""
        table = self._arrow(f"""SELECT image_id, looked, p
                                FROM ({_TAG_PROBABILITY.format(predictions=shown_predictions())})
                                ORDER BY image_id""", {"tag": tag_id, "round": round_id})
        return {"image_id": table.column("image_id").to_numpy(),
                "looked": table.column("looked").to_numpy(zero_copy_only=False).astype(bool),
                "probability": table.column("p").to_numpy(zero_copy_only=False).astype(np.float32)}

    def _build_gallery(self, round_id: int) -> None:
        """Fill `gallery_rows` for `round_id` anew, unless it holds that round's rows already. In image id order:
        the refresh of a few images then reads only the parts of the table that can hold them."""
        with self._lock:
            if self.get_meta(GALLERY_BUILT) == round_id:
                return
            with self.transaction() as con:
                con.execute("DELETE FROM gallery_rows")
                con.execute(f"INSERT INTO gallery_rows {_shown_sql()} ORDER BY image_id", {"round": round_id})
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [GALLERY_BUILT, json.dumps(round_id)])

    def _refresh_gallery(self, con, image_ids: str) -> None:
        """Inside a write's transaction: compute again the gallery rows of the images the query `image_ids` (one
        column of image ids) names. Nothing to do while the rows are stale: the next read rebuilds them all."""
        built = con.execute("SELECT value FROM meta WHERE key = ?", [GALLERY_BUILT]).fetchall()
        if not built:
            return
        round_id = json.loads(built[0][0])
        con.execute(f"CREATE OR REPLACE TEMP TABLE gallery_refresh AS SELECT DISTINCT * FROM ({image_ids}) ids(image_id)")
        con.execute("DELETE FROM gallery_rows g USING gallery_refresh r WHERE g.image_id = r.image_id")
        con.execute(f"INSERT INTO gallery_rows {_shown_sql(refresh=True)}", {"round": round_id})
        con.execute("DROP TABLE gallery_refresh")

    @staticmethod
    def _gallery_stale(con) -> None:
        """Inside a write's transaction that changes what most images show: the next read rebuilds every row."""
        con.execute("DELETE FROM meta WHERE key = ?", [GALLERY_BUILT])

    def zero_shot_count(self) -> int:
        return self._query("SELECT count(*) FROM predictions WHERE round = 0")[0][0]

    def image_detail(self, image_id: int, round_id: int) -> dict | None:
        """One image: its record, its label, the zero-shot and newest teacher probabilities with their class ids,
        the round's out-of-sample probabilities where a person's label was cross-fitted, and whether that label is
        a possible mistake (LABEL_MISTAKES) or one the person confirmed, and whether the image changed since
        labelled (CHANGED_SINCE_LABELLED)."""
        rows = self._query(f"""
            SELECT i.id, i.relpath, i.sha256, i.status, i.error, i.width, i.height, l.class_id, l.source,
                   s.zero_shot_classes, s.zero_shot_probs, s.teacher_classes, s.teacher_probs, s.teacher_round,
                   c.class_ids, c.probs,
                   i.id IN (SELECT image_id FROM ({LABEL_MISTAKES})), {CONFIRMED}, i.id IN ({CHANGED_SINCE_LABELLED})
            FROM images i
            LEFT JOIN labels l ON l.image_id = i.id AND {SHOWN_LABEL}
            LEFT JOIN ({shown_predictions("p.image_id = $image")}) s ON s.image_id = i.id
            LEFT JOIN crossfit_probs c ON c.image_id = i.id AND c.round = $round
            WHERE i.id = $image""", {"round": round_id, "image": image_id})
        if not rows:
            return None
        keys = ("id", "relpath", "sha256", "status", "error", "width", "height", "label", "label_source",
                "zero_shot_classes", "zero_shot_probs", "teacher_classes", "teacher_probs", "teacher_round",
                "without_label_classes", "without_label_probs", "mistake", "confirmed", "changed")
        return dict(zip(keys, rows[0]))

    def shown_label_counts(self, round_id: int) -> dict:
        """Labels as the page shows them for round `round_id`: human ones, and the pseudo-labels that round
        trained on (none while a class change has the page back on zero-shot)."""
        rows = self._query(f"""SELECT source, count(*) FROM labels l WHERE {SHOWN_LABEL} GROUP BY source""",
                           {"round": round_id})
        counts = dict(rows)
        return {"human": counts.get("human", 0), "pseudo": counts.get("pseudo", 0)}

    def newest_confidences(self, round_id: int) -> np.ndarray:
        """The confidence of every image's shown prediction for `round_id` (storage.shown), for the page's
        histogram."""
        rows = self._query(f"SELECT confidence FROM ({shown_predictions()})", {"round": round_id})
        return np.array([row[0] for row in rows], np.float32)
