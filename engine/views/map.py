"""The map of a project: every usable image's embedding laid out in 2-D, with what the map colours it by.

The layout is keyed by the model and by the embeddings it was computed over (storage.embeddings_key), so a new
model (a finetune round switches the project to its adapted one) or new images give a new map. PCA is stored by
ingest at its end (else computed in the request: a second at 100k images) and shown while UMAP runs as a
background job; the next look at the map after that job finishes shows UMAP. Both are stored in the project, so
reopening the page costs one query.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from engine.project.audit import pending_audit
from engine.errors import LabelloopError
from engine.jobs.runner import Cancelled, JobContext, JobRunner
from engine.learning.tags import TAG_PRESENT
from engine.learning.map_layout import (MIN_UMAP_IMAGES, UMAP_LANDMARKS, pca_layout, points_in_box, points_in_polygon,
                                        umap_layout)
from engine.project.folder import Project
from engine.views.gallery import UNCERTAIN_TAG
from storage import Store

MAP_JOB = "map"
# What a point says of one tag (`tag_states`), as the gallery's tag filters read it.
HAS_TAG, LACKS_TAG, UNSURE_OF_TAG, TAG_NOT_PREDICTED = range(4)


@dataclass
class MapState:
    """What the map shows now."""

    method: str  # umap | pca
    note: str  # one line for the page: which layout, and why not UMAP yet
    points: dict  # storage.map_points arrays: image_id, x, y, shown, confidence, source, outlier; with `tag` also
    # tag_probability (1 or 0 where a person answered it, else predicted; NaN without a prediction) and tag_looked
    class_names: dict[int, str]  # class id -> name
    version: tuple  # changes whenever the map would be drawn differently (see MapView.version)
    tag: str | None = None  # the tag of a multi-label project the points carry


def tag_states(probability: np.ndarray, looked: np.ndarray, *, present: float = TAG_PRESENT,
               sure: float = UNCERTAIN_TAG) -> np.ndarray:
    """What each point says of one tag, as the gallery's tag filters read it (storage.gallery.TAG_FILTERS): (N,)
    of UNSURE_OF_TAG where no person answered and the prediction is less than `sure` sure either way (max(p, 1 - p)),
    else HAS_TAG (probability at least `present`) or LACKS_TAG; TAG_NOT_PREDICTED where the probability is NaN."""
    probability, looked = np.asarray(probability, np.float32), np.asarray(looked, bool)
    states = np.where(probability >= present, HAS_TAG, LACKS_TAG)
    states[~looked & (np.maximum(probability, 1 - probability) < sure)] = UNSURE_OF_TAG
    states[np.isnan(probability)] = TAG_NOT_PREDICTED
    return states


def store_pca_layout(store: Store, model_id: str) -> None:
    """Compute and store the PCA layout of `model_id`'s embeddings as they are now (ingest does it at its end, so
    the first look at the map reads it), unless it is stored for them already or no image is embedded."""
    started = time.perf_counter()
    key = store.embeddings_key(model_id)
    if key.startswith("0:") or store.layout_key(model_id, "pca") == key:
        return
    image_ids, vectors = store.embeddings(model_id)
    store.save_layout(model_id, "pca", key, image_ids, pca_layout(vectors), seconds=time.perf_counter() - started)


class MapView:
    """Layouts for the map. `umap=False` keeps the map on PCA (tests that must not spend a minute compiling UMAP)."""

    def __init__(self, project: Project, runner: JobRunner, *, umap: bool = True, landmarks: int = UMAP_LANDMARKS):
        self.project = project
        self.store = project.store
        self.runner = runner
        self.umap = umap
        self.landmarks = landmarks
        self._failed: dict[tuple[str, str], str] = {}  # (model id, embeddings key) -> why UMAP failed
        self._lock = threading.Lock()  # two pages opening the map at once compute one PCA and start one job

    def version(self) -> tuple:
        """(model id, embeddings key, the best stored layout's method): the page redraws when it changes."""
        model_id = self.store.get_meta("model_id")
        if model_id is None:
            return (None, None, None)
        key = self.store.embeddings_key(model_id)
        best = next((method for method in ("umap", "pca") if self.store.layout_key(model_id, method) == key), None)
        return model_id, key, best

    def current(self, tag: str | None = None) -> MapState:
        """The best layout there is for the project's model now: UMAP when it is stored for these embeddings, else
        PCA (computed now if need be) while a UMAP job is started. `tag`: a multi-label project's tag the points
        also carry (MapState.points)."""
        with self._lock:
            model_id = self.store.get_meta("model_id")
            key = self.store.embeddings_key(model_id) if model_id else "0:0"
            count = int(key.split(":")[0])
            if not count:
                raise LabelloopError("the map has nothing to show yet: ingest images first (Ingest tab or "
                                     "`labelloop ingest PROJECT`)")
            if self.store.layout_key(model_id, "umap") == key:
                method, note = "umap", f"UMAP of {count:,} images"
            else:
                store_pca_layout(self.store, model_id)
                method, note = "pca", f"PCA of {count:,} images · {self._umap_note(model_id, key, count)}"
        round_id = self.store.shown_round()
        points = self.store.map_points(model_id, method, round_id)
        blind = np.isin(points["image_id"], pending_audit(self.store))  # no prediction of an audit image: see audit
        points["shown"][blind], points["confidence"][blind] = -1, np.nan
        names = {c["id"]: c["name"] for c in self.store.classes()}
        if tag is not None:
            tag_id = next((class_id for class_id, name in names.items() if name == tag), None)
            if tag_id is None:
                raise LabelloopError(f"the map cannot colour by tag {tag!r}: the project has no such tag; choose "
                                     f"one of {', '.join(names.values())}")
            column = self.store.tag_probabilities(tag_id, round_id)
            rows = np.searchsorted(column["image_id"], points["image_id"])
            points["tag_probability"], points["tag_looked"] = column["probability"][rows], column["looked"][rows]
            points["tag_probability"][blind] = np.nan
        return MapState(method=method, note=note, points=points, class_names=names,
                        version=(model_id, key, method), tag=tag)

    def selected(self, state: MapState, *, box: tuple | None = None, lasso: np.ndarray | None = None,
                 rows: np.ndarray | None = None) -> list[int]:
        """The image ids inside a box ((x0, x1), (y0, y1)) or lasso polygon (M, 2) on the map, in map order,
        among `rows` of the state's points (the groups the legend shows; default all)."""
        xy = np.column_stack([state.points["x"], state.points["y"]])
        if box is not None:
            inside = points_in_box(xy, *box)
        elif lasso is not None:
            inside = points_in_polygon(xy, lasso)
        else:
            raise LabelloopError("draw a box or lasso on the map first")
        if rows is not None:
            allowed = np.zeros(len(xy), bool)
            allowed[rows] = True
            inside &= allowed
        return state.points["image_id"][inside].tolist()

    # ---- layouts -----------------------------------------------------------------------------------------------

    def _umap_note(self, model_id: str, key: str, count: int) -> str:
        """Start the UMAP job for these embeddings unless it runs or cannot run; say which in a few words."""
        if not self.umap:
            return "UMAP is off for this server"
        if count < MIN_UMAP_IMAGES:
            return f"UMAP needs at least {MIN_UMAP_IMAGES} images"
        if (model_id, key) in self._failed:
            return f"UMAP failed: {self._failed[model_id, key]}"
        running = next((job_id for job_id, kind in self.runner.running() if kind == MAP_JOB), None)
        if running is None:
            running = self.runner.submit(MAP_JOB, {"model_id": model_id, "images": count},
                                         lambda context: self._compute_umap(context, model_id))
        return f"UMAP is being computed (job {running}); the map switches when it is done"

    def _compute_umap(self, context: JobContext, model_id: str) -> dict:
        started = time.perf_counter()
        key = self.store.embeddings_key(model_id)
        context.progress(0.0, "reading the embeddings")
        image_ids, vectors = self.store.embeddings(model_id)
        try:
            xy = umap_layout(vectors, landmarks=self.landmarks, progress=context.progress)
        except Cancelled:
            raise
        except Exception as error:  # remembered, so opening the map again does not start the same failure
            self._failed[model_id, key] = str(error) or type(error).__name__
            raise
        seconds = time.perf_counter() - started
        self.store.save_layout(model_id, "umap", key, image_ids, xy, seconds=seconds)
        return {"images": len(image_ids), "seconds": round(seconds, 1)}
