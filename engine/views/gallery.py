"""What the labeling page reads: a filtered, sorted page of tiles, one image's details, the header counts and the
plots' numbers. Every view reads the same definitions from the project when it draws: the classes, the shown
round (storage.shown_round) and the possible-mistake rule (storage.scores), so no two views can disagree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from engine.project.audit import pending_audit, quality_report
from engine.errors import LabelloopError
from engine.files.images import ImageReadError, thumbnail_path
from engine.learning.models import LoadedModel
from engine.learning.tags import TAG_PRESENT
from engine.views.overlays import gallery_tile, heatmap_file
from engine.project.folder import Project
from engine.project.review_queue import NO_QUEUE, RankedImages, ReviewQueue, rank_images, review_queue_ids
from engine.sources import Source
from storage.gallery import GALLERY_SORTS, GALLERY_STATUSES, TAG_FILTERS, GalleryRows  # the page's filters, orders

PAGE_SIZE = 48
NONE_OF_THESE = "none of these"
AUDIT_CAPTION = "audit: your label?"
SHOWN_TAGS = 3  # tags a multi-label tile names; "+N" counts the rest
UNCERTAIN_TAG = 0.75  # the "uncertain tag" filter: a tag no person answered that the prediction is less sure of


@dataclass(frozen=True)
class Subset:
    """An ordered set of images the gallery is narrowed to: a text search's results, an image's neighbours, a
    duplicate group, a selection on the map. Sort "match" shows them in this order; `scores` (e.g. similarity, one
    per image) show on the tiles."""

    name: str  # what the page says it shows: "search: 'a red star'", "like sketch_0005.jpg"
    image_ids: tuple[int, ...]
    scores: tuple[float, ...] = ()
    link: tuple[str, str] | None = None  # what makes it again (("search", text), ("like", image id), ("audit", "1"))

    def __post_init__(self):
        if self.scores and len(self.scores) != len(self.image_ids):
            raise ValueError(f"{len(self.scores)} scores for {len(self.image_ids)} images")

    def score_of(self) -> dict[int, float]:
        return dict(zip(self.image_ids, self.scores))


@dataclass(frozen=True)
class GalleryQuery:
    """What the gallery shows: filters, order and page. Small and hashable, so the page can keep it in State."""

    class_name: str | None = None  # the class an image shows (the person's label where there is one)
    min_confidence: float = 0.0
    max_confidence: float = 1.0
    status: str = "all"  # one of GALLERY_STATUSES: all | unlabeled | pseudo | human | changed | error
    disagree: bool = False  # zero-shot and the shown teacher disagree
    mistakes: bool = False  # possible label mistakes, judged out of sample (storage.scores.LABEL_MISTAKES)
    # a multi-label project's: what `class_name` filters on, the images that have the tag, lack it, or are uncertain
    # of it (storage.gallery.TAG_FILTERS)
    tag_filter: str = "has"
    sort: str = "queue"  # one of GALLERY_SORTS (match: the subset's order)
    subset: Subset | None = None  # only these images (search results, neighbours, a map selection)
    offset: int = 0  # the first image shown, counted in the filtered, sorted order
    page_size: int = PAGE_SIZE

    def named_filters(self) -> list[str]:
        """The filters that can hide images, as the page names them: "class 'circle'", "confidence ≥ 0.80"."""
        named = [f"class {self.class_name!r}" if self.tag_filter == "has" else
                 f"{self.tag_filter} tag {self.class_name!r}"] if self.class_name else []
        if self.status != "all":
            named.append(f"status {self.status!r}")
        if self.min_confidence > 0.0 and self.max_confidence < 1.0:
            named.append(f"confidence {self.min_confidence:.2f}-{self.max_confidence:.2f}")
        elif self.min_confidence > 0.0:
            named.append(f"confidence ≥ {self.min_confidence:.2f}")
        elif self.max_confidence < 1.0:
            named.append(f"confidence ≤ {self.max_confidence:.2f}")
        if self.disagree:
            named.append("zero-shot and teacher disagree")
        if self.mistakes:
            named.append("possible label mistake")
        return named

    def without_filters(self) -> GalleryQuery:
        """This query with every filter cleared; the subset and the sort stay, from the first page."""
        return replace(self, class_name=None, min_confidence=0.0, max_confidence=1.0, status="all", disagree=False,
                       mistakes=False, tag_filter="has", offset=0)


@dataclass
class GalleryItem:
    image_id: int
    relpath: str
    thumbnail: Path | None  # under the project's thumbs/; None for a file that could not be read
    caption: str  # what the tile's badge says: "star 85%", "star (you)", "unreadable"; multi-label: `tag_caption`
    shown: str  # the class the tile shows ("" before any prediction)
    confidence: float | None
    label_source: str | None  # human | pseudo | None
    status: str  # ok | error
    reason: str | None  # why the review queue lists it, with its rank ("review queue #3: low margin")
    score: float | None = None  # the subset's score for it (similarity to a search), when it has one
    doubted_as: str | None = None  # a possible label mistake: the class students that never trained on it predict
    audit: bool = False  # drawn into the random audit and waiting for its label: shown without any prediction


def tag_caption(names: dict[int, str], row: dict) -> str:
    """A multi-label tile's badge: the tags the image has, surest first, up to SHOWN_TAGS and "+N" for the rest; a tag
    a person looked at as they answered ("car (you)" where they gave it), any other as predicted ("car 92%" from
    TAG_PRESENT on). "no tag" where none applies; "not predicted" before any prediction and any answer. `row`:
    Store.shown_tag_rows's."""
    probs = dict(zip(row["class_ids"] or [], row["probs"] or []))
    looked, given = set(row["looked_at"] or []), set(row["tags"] or [])
    if not probs and not looked:
        return "not predicted"
    tags = [(2.0, f"{names[c]} (you)") for c in names if c in given] + sorted(
        ((probs[c], f"{names[c]} {probs[c]:.0%}") for c in names
         if c not in looked and probs.get(c, 0.0) >= TAG_PRESENT), reverse=True)
    if not tags:
        return "no tag"
    more = f" +{len(tags) - SHOWN_TAGS}" if len(tags) > SHOWN_TAGS else ""
    return ", ".join(text for _, text in tags[:SHOWN_TAGS]) + more


@dataclass(frozen=True)
class LabelEvent:
    """One line of an image's label history, as the page shows it."""

    when: str  # "2026-12-07 16:55:07"
    who: str  # the actor: "page", "page:ann", "page:ann:undo", "import", ...
    from_label: str  # "star (human)", "unlabeled"
    to_label: str


@dataclass(frozen=True)
class QueueEntry:
    """Where the review queue lists an image, and why."""

    rank: int  # from 1
    reason: str


@dataclass(frozen=True)
class ImageDetail:
    """One image as the detail view shows it. The predictions are top 5 by name, best first; `without_label` is the
    shown round's judgement of a person's label made without it (the teacher itself trained on the label)."""

    image_id: int
    relpath: str
    status: str  # ok | error | missing
    error: str | None  # why it cannot be read (or that the file is gone from the images folder)
    path: Path
    placeholder: Path | None  # what the detail view shows instead of a file the browser cannot draw
    size: tuple[int | None, int | None]  # width, height
    label: str | None  # the current label as the page says it: "star (human)"; None without one
    label_source: str | None  # human | pseudo | None
    label_class: str | None  # the label's class name (None: none of these, or no label)
    shown_round: int  # the round whose predictions the page shows (0: zero-shot)
    teacher: dict[str, float]
    zero_shot: dict[str, float]
    predicted: str | None  # the class the image shows: the teacher's best, else zero-shot's
    without_label: dict[str, float]
    mistake: bool  # a possible label mistake
    confirmed: bool  # the person gave the label again as it was
    changed: bool  # the file's content changed since it was labelled
    queue: QueueEntry | None
    history: list[LabelEvent]
    audit: bool  # in the random audit, waiting for its label: blind, no prediction shown


@dataclass
class GalleryPage:
    items: list[GalleryItem]
    total: int  # images that pass the filters
    offset: int
    page_size: int
    following: list[GalleryItem] = field(default_factory=list)  # the next page as it stands (drawn ahead on a turn)
    unfiltered: int | None = None  # the subset's images in the project, before the filters (None: no subset)

    @property
    def page(self) -> int:
        return -(-self.offset // self.page_size)  # an offset inside a page counts as that page

    @property
    def pages(self) -> int:
        return max(1, self.page + -(-(self.total - self.offset) // self.page_size))


def page_text(query: GalleryQuery, result: GalleryPage, page: int) -> str:
    """What the gallery says above page `page` of `result`: the page and its count, after the subset's name when
    it is narrowed to one; then what hides part of the subset (the filters, named; images gone from the project), so
    that a partial or empty subset is never unexplained."""
    where = f"page {page + 1} of {result.pages} · {result.total:,} images"
    if query.subset is None:
        return where
    hidden, gone = result.unfiltered - result.total, len(query.subset.image_ids) - result.unfiltered
    if hidden > 0:
        where = (f"page {page + 1} of {result.pages} · {result.total:,} of {result.unfiltered:,} images shown; "
                 f"{hidden:,} hidden by: {', '.join(query.named_filters())} (✕ clear filters shows them)")
    if gone > 0:
        where += f"; {gone:,} no longer in the project"
    return f"{query.subset.name} · {where}"


def empty_text(query: GalleryQuery, result: GalleryPage) -> str:
    """What the gallery says when it shows no image: the filters in effect, and the control that clears them."""
    if query.subset is not None and not result.unfiltered:
        return "None of these images is in the project any more."
    filters = query.named_filters()
    if not filters:
        return "No images yet."
    hidden = f"the {result.unfiltered:,} images they hide" if query.subset else "every image"
    return f"No image matches these filters: {', '.join(filters)}. ✕ clear filters shows {hidden}."


class GalleryView:
    """Read-only views of one project for the page. `model` loads the project's model on first use (heatmaps)."""

    def __init__(self, project: Project, model: Callable[[], LoadedModel]):
        self.project = project
        self.store = project.store
        self._model = model
        self._queue_key: tuple | None = None
        self._ranked: RankedImages | None = None  # None: nothing to rank (nothing ingested)
        self._live: tuple[tuple, ReviewQueue] = ((), NO_QUEUE)  # the queue over `_ranked`, with the state it read
        self._queue_lock = threading.Lock()
        self._quality_key: tuple | None = None
        self._quality: dict = {}
        self._quality_lock = threading.Lock()

    # ---- classes -----------------------------------------------------------------------------------------------

    def class_names(self) -> list[str]:
        return [c["name"] for c in self.store.classes()]

    def class_keys(self) -> list[tuple[str, str | None]]:
        """(name, key) of each class in project order; None = the class has no key."""
        return [(c["name"], c["key"]) for c in self.store.classes()]

    def classes(self) -> list[dict]:
        """Each class with its prompts (None = the project's default templates) and key, in project order."""
        return self.store.classes()

    def class_id(self, name: str) -> int:
        for entry in self.store.classes():
            if entry["name"] == name:
                return entry["id"]
        raise LabelloopError(f"unknown class {name!r}; classes: {', '.join(self.class_names())}")

    def _names(self) -> dict[int, str]:
        return {c["id"]: c["name"] for c in self.store.classes()}

    # ---- header and plots --------------------------------------------------------------------------------------

    def header(self) -> dict:
        """Counts as the page shows them: images, labels of the shown round, the shown round and how many
        pseudo-labels it trained on (as it recorded then), the newest job."""
        shown_round = self.store.shown_round()
        images = self.store.header_counts()["images"]  # tens of ms at a million images
        jobs = self.store.jobs(limit=1)
        root = self.project.root
        return {"project": f"{root.parent.name}/{root.name}", "images": images,
                "labels": self.store.shown_label_counts(shown_round), "round": shown_round,
                "pseudo_trained_on": self.store.round_metrics(shown_round).get("pseudo_labels") if shown_round else None,
                "predicted": images["ok"], "job": jobs[0] if jobs else None,
                "quality": self.quality()["message"]}

    def quality(self, *, wait: bool = False) -> dict:
        """What the random audit says of the dataset (engine.project.audit.quality_report). Computed again only when the
        audit, its labels, the shown round, the held rounds or the classes changed, and then in a thread of its
        own while the last figures are returned (`wait`: the new ones): it scans every round's predictions (0.5 s
        at 200,000 images), and a label's answer must not wait for it; the header's next poll shows it."""
        key = (self.store.audit_progress(), self.store.shown_round(), tuple(sorted(self.store.held_rounds())),
               tuple(c["id"] for c in self.store.classes()), self.store.zero_shot_count())
        with self._quality_lock:
            if key == self._quality_key:
                return self._quality
            self._quality_key = key
            first = not self._quality
            if first or wait:
                self._quality = quality_report(self.store, project_hint=str(self.project.root))
                return self._quality
        threading.Thread(target=self._quality_computed, args=(key,), daemon=True).start()
        return self._quality

    def _quality_computed(self, key: tuple) -> None:
        try:
            quality = quality_report(self.store, project_hint=str(self.project.root))
        except Exception:  # the project closed meanwhile (the server stopping): the next call computes again
            with self._quality_lock:
                if self._quality_key == key:
                    self._quality_key = None
            return
        with self._quality_lock:
            if self._quality_key == key:  # not overtaken by a newer change meanwhile
                self._quality = quality

    def jobs(self, limit: int = 8) -> list[dict]:
        return self.store.jobs(limit=limit)

    def round_history(self) -> list[dict]:
        """One row per round the project started, finished or not (a cancelled round keeps its number), with its
        mode, status and what it recorded when it ran."""
        rows = []
        for entry in self.store.rounds():
            metrics = entry["metrics"] or {}
            done = entry["status"] == "done"
            judged = metrics.get("quality") or {}
            rows.append({"round": entry["id"], "mode": (entry["config"] or {}).get("mode"), "finished": done,
                         "status": "held back: measured worse" if done and entry["held"] else entry["status"],
                         "pseudo_labels": metrics.get("pseudo_labels"), "coverage": metrics.get("coverage"),
                         "flip_share": metrics.get("flip_share"),
                         "human_accuracy": metrics.get("human_accuracy_crossfit"),
                         "ece": metrics.get("ece_crossfit"), "seconds": metrics.get("seconds"),
                         "audit_estimate": (f"{judged['accuracy']:.1%} ({judged['low']:.1%}-{judged['high']:.1%})"
                                            if judged.get("measured") else "unmeasured" if done else None)})
        return rows

    def confidence_histogram(self, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """(bin left edges, counts) of the confidence of every image's shown prediction."""
        edges = np.linspace(0.0, 1.0, bins + 1)
        counts, _ = np.histogram(self.store.newest_confidences(self.store.shown_round()), bins=edges)
        return edges[:-1], counts

    # ---- review queue ------------------------------------------------------------------------------------------

    def review_queue(self, shown_round: int | None = None) -> ReviewQueue:
        """The review queue (engine.project.review_queue, the CLI's order). Ranked again only when the shown round
        changes or zero-shot reran: that costs seconds on a large project; the images a person labelled since leave
        it."""
        key = self._queue_state(shown_round)
        with self._queue_lock:
            if key != self._queue_key:
                try:
                    self._ranked = rank_images(self.store)
                except LabelloopError:  # nothing ingested yet
                    self._ranked = None
                self._queue_key = key
        return self._queue_now()

    def _ranked_queue(self, shown_round: int) -> ReviewQueue:
        """The review queue, if it was ranked over what the page shows now (else empty): ranking is left to the
        queue sort and the end of a round."""
        return self._queue_now() if self._queue_key == self._queue_state(shown_round) else NO_QUEUE

    def _queue_now(self) -> ReviewQueue:
        """The ranked images less those labelled since, after the changed images, the mistakes and the audit: taken
        again only when a label, a confirmation, the audit or an image changed (15 ms at 100,000 images; reading
        what changed, 2 ms)."""
        ranked = self._ranked
        if ranked is None:
            return NO_QUEUE
        state = (self._queue_key, self.store.label_state(), self.store.audit_progress(),
                 self.store.images_changed_at())
        with self._queue_lock:
            if self._live[0] != state:
                self._live = (state, review_queue_ids(self.store, ranked))
            return self._live[1]

    def _queue_state(self, shown_round: int | None = None) -> tuple[int, int]:
        """What the queue was ranked over: the shown round, and zero-shot's count (it reruns after class edits)."""
        shown_round = self.store.shown_round() if shown_round is None else shown_round
        return shown_round, self.store.zero_shot_count()

    # ---- gallery -----------------------------------------------------------------------------------------------

    def gallery(self, query: GalleryQuery) -> GalleryPage:
        """One page of the filtered, sorted images; past the end (a filter shrank the set), the last page. The
        next page is read in the same query (sorting for twice the rows costs next to nothing): the page draws it ahead."""
        shown_round = self.store.shown_round()
        queue = self._queue_for(query, shown_round)
        found = self._rows(query, shown_round, queue, offset=query.offset, limit=2 * query.page_size)
        rows = found.rows[:query.page_size]
        if not rows and query.offset > 0:
            return self.gallery(replace(query, offset=max(0, (found.total - 1) // query.page_size * query.page_size)))
        names, blind = self._names(), set(pending_audit(self.store))
        scores = query.subset.score_of() if query.subset else {}
        items = self._tagged([self._item(row, names, queue, blind, scores.get(row["id"])) for row in found.rows],
                             shown_round, names)
        return GalleryPage(items=items[:len(rows)], total=found.total, offset=query.offset,
                           page_size=query.page_size, following=items[len(rows):], unfiltered=found.unfiltered)

    def next_offset(self, query: GalleryQuery, shown_ids: list[int]) -> int:
        """Where the page after the one showing `shown_ids` starts. Images labelled on this page may have left the
        filter since, or the review queue (the page keeps them in place until it is turned): counting only the
        shown images still on this page's place in the order means no image is skipped."""
        shown_round = self.store.shown_round()
        now = self._rows(query, shown_round, self._queue_for(query, shown_round), offset=query.offset,
                         limit=len(shown_ids)).rows if shown_ids else []
        return query.offset + len({row["id"] for row in now} & set(shown_ids))

    def items(self, image_ids: list[int]) -> list[GalleryItem]:
        """Fresh tiles for `image_ids` (after a label), whatever the filters say, in the order given."""
        shown_round = self.store.shown_round()
        queue = self._ranked_queue(shown_round)
        rows = {row["id"]: row for row in self._rows(GalleryQuery(sort="name"), shown_round, queue, offset=0,
                                                     limit=len(image_ids), image_ids=image_ids).rows}
        names, blind = self._names(), set(pending_audit(self.store))
        return self._tagged([self._item(rows[i], names, queue, blind) for i in image_ids if i in rows], shown_round,
                            names)

    def _tagged(self, items: list[GalleryItem], shown_round: int, names: dict[int, str]) -> list[GalleryItem]:
        """In a multi-label project, each tile's badge as `tag_caption` (an audit image's stays blind)."""
        if not self.store.is_multi_label():
            return items
        rows = self.store.shown_tag_rows([item.image_id for item in items], shown_round)
        return [item if item.audit or item.status == "error" else replace(item, caption=tag_caption(
            names, rows[item.image_id])) for item in items]

    def _queue_for(self, query: GalleryQuery, shown_round: int) -> ReviewQueue:
        """The queue the query's order needs (ranked if it is not), else the one ranked, for the tiles' reasons."""
        sorted_by_queue = query.sort == "queue" or (query.sort == "match" and query.subset is None)
        return self.review_queue(shown_round) if sorted_by_queue else self._ranked_queue(shown_round)

    def _rows(self, query: GalleryQuery, shown_round: int, queue: ReviewQueue, *, offset: int, limit: int,
              image_ids: list[int] | None = None) -> GalleryRows:
        class_id = self.class_id(query.class_name) if query.class_name else None
        tag = None
        if class_id is not None and self.store.is_multi_label():  # a tag the images have, lack or are unsure of
            tag, class_id = (query.tag_filter, class_id, TAG_PRESENT, UNCERTAIN_TAG), None
        if not 0.0 <= query.min_confidence <= query.max_confidence <= 1.0:
            raise LabelloopError("the confidence range must satisfy 0 <= min <= max <= 1")
        if image_ids is None and query.subset is not None:
            image_ids = list(query.subset.image_ids)
        sort = "queue" if query.sort == "match" and image_ids is None else query.sort  # no subset: nothing to match
        return self.store.gallery_page(
            round_id=shown_round, class_id=class_id, min_confidence=query.min_confidence,
            max_confidence=query.max_confidence, status=query.status, disagree=query.disagree,
            mistakes=query.mistakes, sort=sort, queue_ids=queue.image_ids if sort == "queue" else (),
            image_ids=image_ids, offset=offset, limit=limit, tag=tag)

    def _item(self, row: dict, names: dict[int, str], queue: ReviewQueue, blind: set[int],
              score: float | None = None) -> GalleryItem:
        """One tile. An image of the random audit waiting for its label (`blind`) shows no prediction: what a
        person is shown sways what they answer, and the audit must measure the machine, not agree with it."""
        if row["status"] == "error":
            shown, text, confidence = "", "unreadable", None
        elif row["label_source"] == Source.HUMAN:
            shown = names.get(row["label"], NONE_OF_THESE) if row["label"] is not None else NONE_OF_THESE
            text, confidence = f"{shown} (you)", None
        elif row["id"] in blind:
            return GalleryItem(image_id=row["id"], relpath=row["relpath"],
                               thumbnail=self._thumbnail(row) if row["sha256"] else None, caption=AUDIT_CAPTION,
                               shown="", confidence=None, label_source=None, status=row["status"], reason=None,
                               score=score, audit=True)
        else:
            shown = names.get(row["predicted"], "?") if row["predicted"] is not None else ""
            confidence = row["confidence"]
            text = f"{shown} {confidence:.0%}" if confidence is not None else "not predicted"
        queued = queue.rank(row["id"])
        return GalleryItem(image_id=row["id"], relpath=row["relpath"],
                           thumbnail=self._thumbnail(row) if row["sha256"] else None,
                           caption=text, shown=shown, confidence=confidence, label_source=row["label_source"],
                           status=row["status"],
                           reason=f"review queue #{queued[0] + 1}: {queued[1]}" if queued else None, score=score,
                           doubted_as=names.get(row["doubted_as"], "?") if row["doubted_as"] is not None else None)

    def _thumbnail(self, row: dict) -> Path:
        return thumbnail_path(self.project.thumbs_dir, row["sha256"])

    # ---- one image ---------------------------------------------------------------------------------------------

    def detail(self, image_id: int) -> ImageDetail:
        """Path, the zero-shot and shown-round predictions (top 5 each, by name), the current label as the page
        shows it, for a person's label the round's judgement of the image without that label (top 5, by name;
        the teacher itself trained on the label) and whether it is a possible mistake or confirmed, whether the
        file changed since labelled, why the review queue lists it, and its label history."""
        shown_round = self.store.shown_round()
        record = self.store.image_detail(image_id, shown_round)
        if record is None:
            raise LabelloopError(f"image {image_id} is not in this project")
        names = self._names()

        def top(class_ids, probs, k=5):
            if class_ids is None:
                return {}
            order = np.argsort(-np.asarray(probs))[:k]
            return {names.get(class_ids[i], "?"): float(probs[i]) for i in order}

        history = [LabelEvent(str(event["changed_at"])[:19], event["actor"],
                              self.label_text(event["from_class"], event["from_source"], names),
                              self.label_text(event["to_class"], event["to_source"], names))
                   for event in self.store.label_events(image_id)]
        human = record["label_source"] == Source.HUMAN
        audit = not human and image_id in set(pending_audit(self.store))  # blind: see `_item`
        teacher = {} if audit else top(record["teacher_classes"], record["teacher_probs"])
        zero_shot = {} if audit else top(record["zero_shot_classes"], record["zero_shot_probs"])
        without_label = top(record["without_label_classes"], record["without_label_probs"]) if human else {}
        queued = None if audit else self._ranked_queue(shown_round).rank(image_id)
        path = self.project.images_root / record["relpath"]
        readable = record["status"] == "ok" and path.is_file()
        tile_thumb = thumbnail_path(self.project.thumbs_dir, record["sha256"]) if record["sha256"] else None
        return ImageDetail(
            image_id=image_id, relpath=record["relpath"], status=record["status"],
            error=(record["error"] if record["status"] != "ok" or readable
                   else "the file is gone from the images folder"),
            path=path,
            placeholder=None if readable else gallery_tile(
                self.project.thumbs_dir, tile_thumb, text="unreadable" if record["status"] != "ok" else "missing",
                confidence=None, human=False, error=True),
            size=(record["width"], record["height"]),
            label=(self.label_text(record["label"], record["label_source"], names)
                   if record["label_source"] else None),
            label_source=record["label_source"],
            label_class=names.get(record["label"]) if record["label_source"] else None,
            shown_round=shown_round, teacher=teacher, zero_shot=zero_shot,
            predicted=next(iter(teacher or zero_shot), None), without_label=without_label,
            mistake=bool(record["mistake"]), confirmed=bool(record["confirmed"]), changed=bool(record["changed"]),
            queue=QueueEntry(queued[0] + 1, queued[1]) if queued else None, history=history, audit=audit)

    @staticmethod
    def label_text(class_id, source, names: dict[int, str]) -> str:
        if source is None:
            return "unlabeled"
        return f"{names.get(class_id, NONE_OF_THESE) if class_id is not None else NONE_OF_THESE} ({source})"

    def heatmap(self, image_id: int, class_name: str) -> Path:
        """The image with the Grad-CAM of `class_name` over it."""
        record = self.store.image_detail(image_id, 0)
        if record is None or record["status"] != "ok":
            raise LabelloopError(f"image {image_id} cannot be read, so it has no heatmap")
        model = self._model()
        saved = self.store.class_weights(model.model_id)
        if saved is None:
            raise LabelloopError("no zero-shot classifier yet; run ingest first")
        class_ids, weights, _ = saved
        class_id = self.class_id(class_name)
        if class_id not in class_ids:
            raise LabelloopError(f"class {class_name!r} is new; wait for zero-shot to finish")
        try:
            return heatmap_file(self.project.thumbs_dir, model, self.project.images_root / record["relpath"],
                                weights[class_ids.index(class_id)], sha256=record["sha256"])
        except (ValueError, ImageReadError) as error:
            raise LabelloopError(f"no heatmap for {record['relpath']}: {error}") from None
