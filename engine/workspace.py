"""Everything the labeling page does, as plain methods over one open project: the gallery, an image's details,
labels and undo, rounds, ingest, classes and export, with long work in the background job runner.

The page (app/page.py) only lays out components and calls these; tests and benchmarks call them directly.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from engine.errors import LabelloopError
from engine.imageio import SUPPORTED_EXTENSIONS, ImageReadError, thumbnail_path
from engine.jobs import JobContext, JobRunner
from engine.models import LoadedModel, load_model
from engine.ontology import parse_class_list
from engine.overlays import gallery_tile, heatmap_file
from engine.project import Project
from engine.review import review_order
from engine.selftrain.config import RoundConfig
from engine.selftrain.rounds import run_round

PAGE_SIZE = 48
QUEUE_LENGTH = 10 * PAGE_SIZE  # the review-queue sort ranks this many; the rest follow by confidence
PAGE_ACTOR = "page"
NONE_OF_THESE = "none of these"


def page_actor(username: str | None) -> str:
    """Who a page action is recorded as: "page", or "page:NAME" for a person logged in with --auth. Undo is kept
    per actor, so two people sharing a server never undo each other's labels."""
    return f"{PAGE_ACTOR}:{username}" if username else PAGE_ACTOR


@dataclass(frozen=True)
class GalleryQuery:
    """What the gallery shows: filters, order and page. Small and hashable, so the page can keep it in State."""

    class_name: str | None = None  # the class an image shows (the person's label where there is one)
    min_confidence: float = 0.0
    max_confidence: float = 1.0
    status: str = "all"  # all | unlabeled | pseudo | human | error
    disagree: bool = False  # zero-shot and the newest teacher disagree
    mistakes: bool = False  # a label the teacher contradicts with confidence >= 0.9
    sort: str = "queue"  # queue | confidence_up | confidence_down | name
    page: int = 0
    page_size: int = PAGE_SIZE


@dataclass
class GalleryItem:
    image_id: int
    relpath: str
    tile: Path  # the thumbnail with its overlay, a file under the project's thumbs/
    caption: str
    shown: str  # the class the tile shows ("" before any prediction)
    confidence: float | None
    label_source: str | None  # human | pseudo | None


@dataclass
class GalleryPage:
    items: list[GalleryItem]
    total: int
    page: int
    pages: int


class Workspace:
    """One project opened for the page. Build it once at start-up; `close()` stops the job runner."""

    def __init__(self, project: Project, *, ingest_workers: int | None = None):
        self.project = project
        self.store = project.store
        self.runner = JobRunner(self.store)
        self.ingest_workers = ingest_workers
        self._model: LoadedModel | None = None
        self._model_lock = threading.Lock()
        self._queue_key: tuple | None = None
        self._queue_ids: list[int] = []
        self._queue_lock = threading.Lock()
        self._undo: dict[str, list[tuple[int, int]]] = {}  # per actor: label_events id ranges, one per action
        self._zero_shot_lock = threading.Lock()
        self._zero_shot_job: int | None = None
        self._zero_shot_again = False

    def close(self) -> None:
        self.runner.close()

    # ---- model and classes -----------------------------------------------------------------------------------

    def model(self) -> LoadedModel:
        """Loaded on first use (heatmaps, ingest, class changes); labeling and head rounds never need it. A
        finetune round switches the project to its adapted model, so the loaded one is checked against it."""
        with self._model_lock:
            spec = self.project.model_spec
            if self._model is None or self._model.spec.canonical != spec.canonical:
                self._model = load_model(spec)
            return self._model

    def class_names(self) -> list[str]:
        return [c["name"] for c in self.store.classes()]

    def _class_id(self, name: str) -> int:
        for entry in self.store.classes():
            if entry["name"] == name:
                return entry["id"]
        raise LabelloopError(f"unknown class {name!r}; classes: {', '.join(self.class_names())}")

    def _names(self) -> dict[int, str]:
        return {c["id"]: c["name"] for c in self.store.classes()}

    # ---- header ------------------------------------------------------------------------------------------------

    def header(self) -> dict:
        counts = self.store.counts()
        jobs = self.store.jobs(limit=1)
        root = self.project.root
        return {"project": f"{root.parent.name}/{root.name}", "images": counts["images"], "labels": counts["labels"],
                "round": self.store.shown_round(), "job": jobs[0] if jobs else None}

    # ---- gallery -----------------------------------------------------------------------------------------------

    def _review_ids(self, shown_round: int) -> list[int]:
        """The review queue's order, ranked again when the shown round changes or zero-shot reran: it costs
        seconds on a large project, and between rounds a labeled image should stay where the person saw it."""
        key = (shown_round, self.store.zero_shot_count())
        with self._queue_lock:
            if key == self._queue_key:
                return self._queue_ids
            try:
                image_ids, _, _ = review_order(self.store, QUEUE_LENGTH)
                self._queue_ids = image_ids.tolist()
            except LabelloopError:  # nothing ingested yet
                self._queue_ids = []
            self._queue_key = key
            return self._queue_ids

    def gallery(self, query: GalleryQuery) -> GalleryPage:
        class_id = self._class_id(query.class_name) if query.class_name else None
        if not 0.0 <= query.min_confidence <= query.max_confidence <= 1.0:
            raise LabelloopError("the confidence range must satisfy 0 <= min <= max <= 1")
        shown_round = self.store.shown_round()
        rows = self.store.gallery_page(
            round_id=shown_round, class_id=class_id, min_confidence=query.min_confidence,
            max_confidence=query.max_confidence, status=query.status, disagree=query.disagree,
            mistakes=query.mistakes, sort=query.sort,
            queue_ids=self._review_ids(shown_round) if query.sort == "queue" else (),
            offset=query.page * query.page_size, limit=query.page_size)
        if not rows and query.page > 0:  # past the end (a filter shrank the set): show the last page instead
            total = self.gallery(replace(query, page=0, page_size=1)).total
            return self.gallery(replace(query, page=max(0, (total - 1) // query.page_size)))
        total = rows[0]["total"] if rows else 0
        names = self._names()
        items = [self._item(row, names) for row in rows]
        return GalleryPage(items=items, total=total, page=query.page,
                           pages=max(1, -(-total // query.page_size)))

    def _item(self, row: dict, names: dict[int, str]) -> GalleryItem:
        thumbs = self.project.thumbs_dir
        thumb = thumbnail_path(thumbs, row["sha256"]) if row["sha256"] else None
        if row["status"] == "error":
            shown, text, confidence = "", "unreadable", None
        elif row["label_source"] == "human":
            shown = names.get(row["label"], NONE_OF_THESE) if row["label"] is not None else NONE_OF_THESE
            text, confidence = f"{shown} (you)", None
        else:
            shown = names.get(row["predicted"], "?") if row["predicted"] is not None else ""
            confidence = row["confidence"]
            text = f"{shown} {confidence:.0%}" if confidence is not None else "not predicted"
        tile = gallery_tile(thumbs, thumb, text=text, confidence=confidence, human=row["label_source"] == "human",
                            error=row["status"] == "error")
        return GalleryItem(image_id=row["id"], relpath=row["relpath"], tile=tile, caption=text, shown=shown,
                           confidence=confidence, label_source=row["label_source"])

    # ---- one image ---------------------------------------------------------------------------------------------

    def detail(self, image_id: int) -> dict:
        """Path, the zero-shot and teacher predictions (top 5 each, by name), the current label and its history."""
        record = self.store.image_detail(image_id, self.store.shown_round())
        if record is None:
            raise LabelloopError(f"image {image_id} is not in this project")
        names = self._names()

        def top(class_ids, probs, k=5):
            if class_ids is None:
                return {}
            order = np.argsort(-np.asarray(probs))[:k]
            return {names.get(class_ids[i], "?"): float(probs[i]) for i in order}

        history = [{"when": str(event["changed_at"])[:19], "who": event["actor"],
                    "from": self._label_text(event["from_class"], event["from_source"], names),
                    "to": self._label_text(event["to_class"], event["to_source"], names)}
                   for event in self.store.label_events(image_id)]
        teacher = top(record["teacher_classes"], record["teacher_probs"])
        zero_shot = top(record["zero_shot_classes"], record["zero_shot_probs"])
        return {"image_id": image_id, "relpath": record["relpath"], "status": record["status"],
                "error": record["error"], "path": self.project.images_root / record["relpath"],
                "size": (record["width"], record["height"]),
                "label": (self._label_text(record["label"], record["label_source"], names)
                          if record["label_source"] else None),
                "label_source": record["label_source"], "teacher": teacher, "teacher_round": record["teacher_round"],
                "zero_shot": zero_shot, "predicted": next(iter(teacher or zero_shot), None), "history": history}

    @staticmethod
    def _label_text(class_id, source, names) -> str:
        if source is None:
            return "unlabeled"
        return f"{names.get(class_id, NONE_OF_THESE) if class_id is not None else NONE_OF_THESE} ({source})"

    def heatmap(self, image_id: int, class_name: str) -> Path:
        """The image with the Grad-CAM of `class_name` over it."""
        record = self.store.image_detail(image_id, 0)
        if record is None or record["status"] != "ok":
            raise LabelloopError(f"image {image_id} cannot be read, so it has no heatmap")
        model = self.model()
        saved = self.store.class_weights(model.model_id)
        if saved is None:
            raise LabelloopError("no zero-shot classifier yet; run ingest first")
        class_ids, weights, _ = saved
        class_id = self._class_id(class_name)
        if class_id not in class_ids:
            raise LabelloopError(f"class {class_name!r} is new; wait for zero-shot to finish")
        try:
            return heatmap_file(self.project.thumbs_dir, model, self.project.images_root / record["relpath"],
                                weights[class_ids.index(class_id)], sha256=record["sha256"])
        except (ValueError, ImageReadError) as error:
            raise LabelloopError(f"no heatmap for {record['relpath']}: {error}") from None

    # ---- labels ------------------------------------------------------------------------------------------------

    def label(self, image_ids: list[int], class_name: str | None, *, actor: str = PAGE_ACTOR) -> int:
        """Give each image a human label (None or NONE_OF_THESE = none of these); one undo step of `actor`.
        Returns changes."""
        if not image_ids:
            return 0
        class_id = None if class_name in (None, NONE_OF_THESE) else self._class_id(class_name)
        return self._labeled(actor, lambda: self.store.set_labels(image_ids, [class_id] * len(image_ids),
                                                                  source="human", actor=actor))

    def accept(self, image_ids: list[int], *, min_confidence: float = 0.0, actor: str = PAGE_ACTOR) -> int:
        """Make each image's shown prediction its human label, if its confidence is at least `min_confidence`.
        Images a person already labeled are left as they are. One undo step of `actor`."""
        chosen = [row for row in self.store.shown_predictions(image_ids, self.store.shown_round())
                  if row["status"] == "ok" and row["label_source"] != "human" and row["predicted"] is not None
                  and row["confidence"] >= min_confidence]
        if not chosen:
            return 0
        return self._labeled(actor, lambda: self.store.set_labels([row["id"] for row in chosen],
                                                                  [row["predicted"] for row in chosen],
                                                                  source="human", actor=actor))

    def _labeled(self, actor: str, write) -> int:
        before = self.store.last_label_event_id()
        changed = write()
        if changed:
            self._undo.setdefault(actor, []).append((before, self.store.last_label_event_id()))
        return changed

    def undo(self, *, actor: str = PAGE_ACTOR) -> int:
        """Undo `actor`'s last page action (a single label or a bulk accept); only that actor's label changes in
        it are reverted. Returns the images restored."""
        steps = self._undo.get(actor)
        if not steps:
            return 0
        after, through = steps.pop()
        return self.store.revert_label_events(after, through, actor=actor, by=f"{actor}:undo")

    # ---- rounds ------------------------------------------------------------------------------------------------

    def start_rounds(self, count: int, config: RoundConfig) -> int:
        """Queue `count` rounds as one background job; returns its id."""
        if count < 1:
            raise LabelloopError(f"the number of rounds must be at least 1, got {count}")
        config.validate()

        def work(context: JobContext) -> dict:
            results = []
            for number in range(count):
                def progress(fraction: float, message: str, number=number) -> None:
                    context.progress((number + fraction) / count, f"round {number + 1}/{count}: {message}")

                results.append(run_round(self.project, config, progress=progress))
            context.progress(1.0, "ranking the review queue")
            self._review_ids(self.store.shown_round())  # here, not in the first gallery request (seconds at 100k)
            return {"rounds": results}

        return self.runner.submit("round", {"rounds": count, **asdict(config)}, work)

    def cancel(self, job_id: int) -> bool:
        return self.runner.cancel(job_id)

    def round_history(self) -> list[dict]:
        """One row per finished round, for the metrics plot."""
        rows = []
        for entry in self.store.rounds():
            metrics = entry["metrics"] or {}
            if entry["status"] != "done":
                continue
            rows.append({"round": entry["id"], "coverage": metrics.get("coverage"),
                         "flip_share": metrics.get("flip_share"),
                         "human_accuracy": metrics.get("human_accuracy_crossfit"),
                         "ece": metrics.get("ece_crossfit"), "seconds": metrics.get("seconds")})
        return rows

    def confidence_histogram(self, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """(bin left edges, counts) of the confidence of every image's shown prediction."""
        edges = np.linspace(0.0, 1.0, bins + 1)
        counts, _ = np.histogram(self.store.newest_confidences(self.store.shown_round()), bins=edges)
        return edges[:-1], counts

    # ---- ingest ------------------------------------------------------------------------------------------------

    def start_ingest(self, folder: str | None = None) -> int:
        """Scan the images root again (after files were added to `folder`, which must lie inside it)."""
        root = self.project.images_root
        if folder:
            target = (root / folder).resolve() if not Path(folder).is_absolute() else Path(folder).resolve()
            if not target.is_relative_to(root.resolve()):
                raise LabelloopError(f"{folder} is outside the images folder {root}; move the images inside it")
            if not target.is_dir():
                raise LabelloopError(f"folder {target} does not exist")
        return self._submit_ingest({"folder": folder})

    def add_uploads(self, paths: list[str | Path]) -> int:
        """Copy uploaded image files into `uploads/<time>/` under the images root, then ingest."""
        images = [Path(p) for p in paths if Path(p).suffix.lower() in SUPPORTED_EXTENSIONS]
        if not images:
            raise LabelloopError(f"no image files among the uploads; supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}")
        target = self.project.images_root / "uploads" / time.strftime("%Y%m%d-%H%M%S")
        target.mkdir(parents=True, exist_ok=True)
        for path in images:
            destination, number = target / path.name, 1
            while destination.exists():  # two uploads may share a name
                destination, number = target / f"{path.stem}-{number}{path.suffix}", number + 1
            shutil.copy2(path, destination)
        return self._submit_ingest({"uploads": len(images), "folder": str(target)})

    def _submit_ingest(self, config: dict) -> int:
        from engine.ingest import ingest

        def work(context: JobContext) -> dict:
            context.progress(0.0, "loading the model")
            model = self.model()
            report = ingest(self.project, model, workers=self.ingest_workers,
                            progress=lambda done, total: context.progress(done / max(total, 1),
                                                                          f"{done}/{total} images"))
            return report.as_dict()

        return self.runner.submit("ingest", config, work)

    # ---- classes -----------------------------------------------------------------------------------------------

    def add_classes(self, text: str) -> int:
        existing = self.class_names()
        names = parse_class_list(",".join([*existing, text]))[len(existing):]  # refuses empties and duplicates
        self.store.add_classes(names, [None] * len(names))
        return self._submit_zero_shot("add classes")

    def rename_class(self, old: str, new: str) -> int:
        if "," in new:
            raise LabelloopError(f"a class name cannot contain a comma: {new!r}")
        others = [name for name in self.class_names() if name != old]
        new = parse_class_list(",".join([*others, new]))[-1]  # refuses an empty or taken name
        self.store.rename_class(self._class_id(old), new)
        return self._submit_zero_shot("rename class")

    def remove_class(self, name: str) -> int:
        class_id = self._class_id(name)
        humans = self.store.human_label_count(class_id)
        if humans:
            raise LabelloopError(f"class {name!r} has {humans} human labels; relabel them first, or rename the class")
        if len(self.class_names()) <= 2:
            raise LabelloopError("a project needs at least two classes")
        self.store.remove_class(class_id)
        return self._submit_zero_shot("remove class")

    def set_prompts(self, name: str, prompts_text: str) -> int:
        """One prompt per line ({} stands for the class name); empty = the project's default templates."""
        prompts = [line.strip() for line in prompts_text.splitlines() if line.strip()]
        self.store.set_class_prompts(self._class_id(name), prompts or None)
        return self._submit_zero_shot("edit prompts")

    def _submit_zero_shot(self, reason: str) -> int:
        """Rerun zero-shot in the background. Edits that arrive while it runs fold into the running job, which
        goes round again, so quick successive edits never meet a refusal."""
        from engine.zeroshot import run_zero_shot

        def work(context: JobContext) -> dict:
            context.progress(0.0, "loading the model")
            model = self.model()
            predicted = 0
            try:
                while True:
                    with self._zero_shot_lock:
                        self._zero_shot_again = False
                    context.progress(0.3, "scoring every image against the classes")
                    predicted = run_zero_shot(self.store, model)
                    with self._zero_shot_lock:
                        if not self._zero_shot_again:
                            return {"predicted": predicted}
            finally:
                with self._zero_shot_lock:
                    self._zero_shot_job = None

        with self._zero_shot_lock:
            if self._zero_shot_job is not None:
                self._zero_shot_again = True
                return self._zero_shot_job
            self._zero_shot_job = self.runner.submit("zero-shot", {"reason": reason}, work)
            return self._zero_shot_job

    # ---- export ------------------------------------------------------------------------------------------------

    def export(self, **options):
        from engine.export import export

        return export(self.project, **options)
