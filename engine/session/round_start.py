"""What every round of a project begins with, single-label (engine/session/round_runner.py) or multi-label
(engine/session/tag_rounds.py): the project's zero-shot classifier, checked against today's classes, a progress
report that also stops the round when asked, and the embeddings (`begin_round`); the kNN graph its refinement
spreads predictions over (`neighbour_graph`); and how a round that did not finish is recorded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine.errors import LabelloopError
from engine.jobs.runner import Cancelled
from engine.learning.neighbours import cached_knn_graph, graph_file
from engine.learning.selftrain.propagate import Affinity, affinity_matrix
from engine.project.folder import Project
from storage import Store


def round_classifier(project: Project) -> tuple[str, list[int], np.ndarray, float]:
    """(model id, class ids, zero-shot text weights (C, D), logit scale) the round starts from; refused in one line
    before any embeddings or after the classes changed (zero-shot must run again first)."""
    store = project.store
    model_id = store.get_meta("model_id")
    saved = store.class_weights(model_id) if model_id else None
    if saved is None:
        raise LabelloopError(f"no embeddings yet; run `labelloop ingest {project.root}` first")
    class_ids, text_weights, scale = saved
    if class_ids != [c["id"] for c in store.classes()]:
        raise LabelloopError(f"the classes changed since the last zero-shot; run `labelloop ingest {project.root}`")
    return model_id, class_ids, text_weights, scale


def round_reporter(progress: Callable[[float, str], None] | None,
                   cancel: Callable[[], bool] | None) -> Callable[[float, str], None]:
    """report(fraction, message): passed on to `progress`, after raising Cancelled (the jobs' one) when `cancel()` says so."""
    def report(fraction: float, message: str) -> None:
        if cancel and cancel():
            raise Cancelled()
        if progress:
            progress(fraction, message)

    return report


@dataclass(frozen=True)
class RoundStart:
    """What a round starts from: the project's store, its zero-shot classifier (`round_classifier`), when the round
    began, its progress report (`round_reporter`), and the embeddings it reads (image ids (N,), vectors (N, D))."""

    store: Store
    model_id: str
    class_ids: list[int]
    text_weights: np.ndarray
    scale: float
    started: float  # time.monotonic() when the round began
    report: Callable[[float, str], None]
    image_ids: np.ndarray
    embeddings: np.ndarray

    def seconds(self) -> float:
        """Seconds since the round began, to the hundredth."""
        return round(time.monotonic() - self.started, 2)


def begin_round(project: Project, progress: Callable[[float, str], None] | None,
                cancel: Callable[[], bool] | None, *, reading: str) -> RoundStart:
    """Begin a round of `project`: its classifier (refused in one line when there is none to start from), its report
    (which says it is reading the embeddings and `reading`), and the embeddings it reads."""
    model_id, class_ids, text_weights, scale = round_classifier(project)
    started = time.monotonic()
    report = round_reporter(progress, cancel)
    report(0.0, f"reading embeddings and {reading}")
    image_ids, embeddings = project.store.embeddings(model_id)
    return RoundStart(project.store, model_id, class_ids, text_weights, scale, started, report, image_ids, embeddings)


def neighbour_graph(project: Project, model_id: str, image_ids: np.ndarray, embeddings: np.ndarray, k: int,
                    report: Callable[[float, str], None]) -> tuple[Affinity, tuple[bool, float]]:
    """The affinity matrix of the images' kNN graph, from `models/knn_<model>.npz` when it was built for these
    images with at least k neighbours (duplicate search shares it), else built now and saved there. Returns it and
    whether it was cached and the seconds it took."""
    started = time.monotonic()
    report(0.02, f"the neighbour graph of {len(image_ids)} images (built once per model, then cached)")
    neighbours, similarities, cached = cached_knn_graph(graph_file(project.models_dir, model_id), image_ids,
                                                        embeddings, k)
    affinity = affinity_matrix(neighbours, similarities)
    return affinity, (cached, round(time.monotonic() - started, 2))


def end_unfinished_round(store: Store, round_id: int, error: BaseException) -> None:
    """Record why round `round_id` stopped before writing its results: cancelled, interrupted, or failed (with the
    error's message)."""
    if isinstance(error, Cancelled):
        store.end_round(round_id, "cancelled")
    elif isinstance(error, KeyboardInterrupt):
        store.end_round(round_id, "interrupted")
    else:
        store.end_round(round_id, "failed", str(error) or type(error).__name__)
