"""Finding images over the cached embeddings of the project's model: text search (CLIP's text tower embeds the
query), "more like this" (an image's nearest neighbours) and near-duplicate groups. The page turns each answer into a
gallery Subset; the CLI prints it. Only text search loads the model; the rest reads stored vectors.

The vectors are read from the project once and kept in memory (2 GB at 1M × 512) until ingest changes them, so a
search is one matrix-vector product (engine.learning.neighbours).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from engine.errors import LabelloopError
from engine.learning.models import LoadedModel
from engine.learning.neighbours import best_matches, duplicate_groups, exact_copies, near_duplicate_graph

if TYPE_CHECKING:
    from engine.project.folder import Project

DEFAULT_K = 50  # matches the CLI prints
# Cosine similarity at or above which two images count as near-duplicates (adjustable on the page and in the CLI).
# Measured on the demo (1,500 drawings, demo model; `python -m benchmarks.bench_discovery --sizes "" --demo`): the
# closest pair of distinct drawings scores 0.9946; copies of 10 drawings score, against their originals, at least
# 0.9961 enlarged to 256 px, 0.9982 re-compressed, 0.9833 shrunk to 96 px (median 0.9954). Photos under a full CLIP
# model sit further apart: lower it there (0.97).
DUPLICATE_THRESHOLD = 0.995


@dataclass(frozen=True)
class Match:
    image_id: int
    path: str  # relative to the images folder
    score: float  # cosine similarity to the query (text, image, or the group's first image)


@dataclass(frozen=True)
class DuplicateGroup:
    matches: tuple[Match, ...]  # in ingest order (image id); each score is the cosine similarity to the first
    exact: tuple[bool, ...]  # per member: another member has the same content (sha256), an exact copy

    def as_json(self) -> list[dict]:
        return [{"path": m.path, "image_id": m.image_id, "score": round(m.score, 4), "exact": exact}
                for m, exact in zip(self.matches, self.exact)]


class Discovery:
    """Search and duplicates over one project. `model` loads the project's model (text search only)."""

    def __init__(self, project: Project, model: Callable[[], LoadedModel] | None = None):
        self.project = project
        self.store = project.store
        self._model = model
        self._lock = threading.Lock()
        self._cached: tuple | None = None  # (key, image ids (N,) ascending, vectors (N, D))
        self._groups: tuple | None = None  # (key, threshold, groups)

    # ---- the vectors -------------------------------------------------------------------------------------------

    def vectors(self) -> tuple[tuple, np.ndarray, np.ndarray]:
        """(key: the model id and the vectors' version, image ids (N,) ascending, unit vectors (N, D)) of every
        embedded image, read again only after ingest changed them."""
        model_id = self.store.get_meta("model_id")
        version = self.store.embeddings_version(model_id) if model_id else (0,)
        if not version[0]:
            raise self._not_ingested()
        key = (model_id, version)
        with self._lock:
            if self._cached is None or self._cached[0] != key:
                self._cached = None  # let the old copy go before the new one is read
                image_ids, vectors = self.store.embeddings(model_id)
                if not len(image_ids):  # vectors only of images that are missing now
                    raise self._not_ingested()
                self._cached = (key, image_ids, vectors)
            return self._cached

    def _not_ingested(self) -> LabelloopError:
        return LabelloopError(f"no embeddings yet; run `labelloop ingest {self.project.root}` first")

    def _matches(self, image_ids: np.ndarray, rows: np.ndarray, scores: np.ndarray) -> list[Match]:
        ids = image_ids[rows].tolist()
        paths = self.store.relpaths_of(ids)
        return [Match(image_id=i, path=paths[i], score=float(s)) for i, s in zip(ids, scores.tolist())]

    # ---- search ------------------------------------------------------------------------------------------------

    def search_text(self, text: str, k: int = DEFAULT_K) -> list[Match]:
        """The `k` images whose embeddings are nearest CLIP's embedding of `text`, best first."""
        text = (text or "").strip()
        if not text:
            raise LabelloopError("the search text is empty; describe what the images show, e.g. 'a red star'")
        _check_k(k)
        (model_id, _), image_ids, vectors = self.vectors()
        if self._model is None:
            raise LabelloopError("text search needs the project's model, and none was given")
        model = self._model()
        if model.model_id != model_id:
            raise LabelloopError(f"the stored embeddings are from another model than {model.spec.text}; run "
                                 f"`labelloop ingest {self.project.root}` to embed the images with it")
        query = model.encode_texts([text])[0]
        return self._matches(image_ids, *best_matches(vectors, query, k))

    def search_like(self, image_id: int, k: int = DEFAULT_K) -> list[Match]:
        """The image itself first, then its `k - 1` nearest neighbours, best first."""
        _check_k(k)
        _, image_ids, vectors = self.vectors()
        row = int(np.searchsorted(image_ids, image_id))
        if row >= len(image_ids) or image_ids[row] != image_id:
            path = self.store.relpaths_of([image_id]).get(image_id, f"image {image_id}")
            raise LabelloopError(f"{path} has no embedding (unreadable, missing or not ingested yet), so it has no "
                                 "neighbours")
        rows, scores = best_matches(vectors, vectors[row], k)
        others = rows != row
        rows = np.concatenate([[row], rows[others]])[:k]  # itself first, even when an exact copy ties with it
        scores = np.concatenate([[1.0], scores[others]])[:k]
        return self._matches(image_ids, rows, scores)

    def image_id(self, path: str | Path) -> int:
        """The id of the image at `path`: relative to the images folder, or absolute inside it."""
        root = self.project.images_root
        given = Path(path).expanduser()
        if given.is_absolute():
            if not given.resolve().is_relative_to(root.resolve()):
                raise LabelloopError(f"{path} is outside the images folder {root}")
            given = given.resolve().relative_to(root.resolve())
        relpath = given.as_posix()
        found = self.store.image_ids([relpath]).get(relpath)
        if found is None or found[1] == "missing":
            raise LabelloopError(f"{path} is not an image of this project (paths are relative to the images "
                                 f"folder {root}; `labelloop ingest` adds new files)")
        return int(found[0])

    # ---- duplicates --------------------------------------------------------------------------------------------

    def duplicates(self, threshold: float = DUPLICATE_THRESHOLD) -> list[DuplicateGroup]:
        """Groups of near-identical images (cosine >= `threshold` through a chain of nearest neighbours) and of
        exact copies (same sha256), largest first. Kept until the vectors or the threshold change."""
        if not 0.0 < threshold <= 1.0:  # NaN fails this too
            raise LabelloopError(f"the duplicate threshold is a cosine similarity in (0, 1], got {threshold}")
        key, image_ids, vectors = self.vectors()
        with self._lock:
            if self._groups is not None and self._groups[:2] == (key, threshold):
                return self._groups[2]
        content = self._content(image_ids)
        if len(image_ids) < 2:
            groups = []
        else:
            neighbours, similarities = near_duplicate_graph(vectors, threshold)
            rows = duplicate_groups(neighbours, similarities, threshold, content=content)
            paths = self.store.relpaths_of(image_ids[np.concatenate(rows)].tolist()) if rows else {}
            groups = [self._group(image_ids, vectors, content, members, paths) for members in rows]
        with self._lock:
            self._groups = (key, threshold, groups)
        return groups

    def _content(self, image_ids: np.ndarray) -> np.ndarray:
        """A content key per image (N,): equal for exact copies (same sha256), else distinct."""
        content = -1 - np.arange(len(image_ids), dtype=np.int64)  # each its own, unless it has a copy
        copied, shared = self.store.same_content()
        rows = np.searchsorted(image_ids, copied)
        found = (rows < len(image_ids)) & (image_ids[np.minimum(rows, len(image_ids) - 1)] == copied)
        content[rows[found]] = shared[found]
        return content

    @staticmethod
    def _group(image_ids, vectors, content, members: np.ndarray, paths: dict[int, str]) -> DuplicateGroup:
        """One group from its rows (ascending, so in ingest order: the first is the image ingested first)."""
        scores = vectors[members] @ vectors[members[0]]
        matches = tuple(Match(image_id=int(image_ids[m]), path=paths[int(image_ids[m])], score=float(min(s, 1.0)))
                        for m, s in zip(members, scores))
        return DuplicateGroup(matches=matches, exact=tuple(exact_copies(content[members]).tolist()))


def _check_k(k: int) -> None:
    if k < 1:
        raise LabelloopError(f"k must be at least 1, got {k}")
