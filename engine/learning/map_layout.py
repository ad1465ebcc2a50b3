"""2-D layouts of image embeddings for the map, and the geometry the map needs: pure functions over numpy arrays.

PCA (principal component analysis) is exact and takes a second at 100k images, so the map always has it at once;
UMAP (McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and Projection", 2018, via umap-learn) keeps
look-alikes together far better and runs as a background job. UMAP is fitted on a seeded sample of landmarks only
(its cost grows with the images fitted: 851 s for 100k on 2 shared cores) and every other image is placed at the
distance-weighted mean of its nearest landmarks' places, as landmark methods do (de Silva & Tenenbaum, "Global
versus local methods in nonlinear dimensionality reduction", 2003): a matrix product, seconds at 100k, where
umap-learn's `transform` placed 291 images/s. A browser draws a few hundred thousand WebGL points
comfortably; past that the map draws a sample over a density layer of every point (`map_sample`, `density_grid`).
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from engine.jobs.progress import phase_spans, within

UMAP_INPUT_DIMS = 50  # UMAP reads a PCA of the embeddings: the neighbour search is several times faster, same map
UMAP_NEIGHBORS = 15  # umap-learn's default: the size of the neighbourhood each point keeps
UMAP_LANDMARKS = 10_000  # UMAP is fitted on at most this many images (a seeded sample); the rest are placed by them
UMAP_EPOCHS = 200  # umap-learn's own choice above 10,000 images (it takes 500 below, for a small data set's sake)
PLACE_NEIGHBORS = 5  # landmarks an image is placed among
PLACE_SHARPNESS = 8  # how much more the nearest of them counts (place_by_landmarks)
MIN_UMAP_IMAGES = UMAP_NEIGHBORS + 2  # fewer images than this get the PCA map only
PCA_FIT_ROWS = 20_000  # rows the principal axes are computed from (a seeded sample past that)
_PLACE_CHUNK = 8192  # rows placed per step (a progress report each)
# What fitting one landmark costs against placing one image (bench_map, 100,000 images, load 3.6: the fit of
# 10,000 landmarks 9.5 s, placing 90,000 images 5.5 s): the two phases share the job's bar by it.
FIT_COST_PER_PLACED = 15
_CHUNK = 65_536  # rows per step of the projection (a million 512-d rows are 2 GB at once)


def _check_vectors(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"vectors must be a non-empty (N, d) array, got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors hold NaN or infinite values")
    return vectors


def pca_components(vectors: np.ndarray, k: int) -> np.ndarray:
    """The top-`k` principal components of `vectors` (N, d), projected: (N, min(k, d)) float32, first column the
    direction of most variance. The axes come from at most PCA_FIT_ROWS rows (a seeded sample: the axes of 20k
    CLIP vectors are those of a million, at a fixed cost); signs are fixed (each axis's largest
    loading is positive), so the same vectors always give the same map."""
    vectors = _check_vectors(vectors)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    count, dim = vectors.shape
    rows = (np.sort(np.random.default_rng(0).choice(count, PCA_FIT_ROWS, replace=False)) if count > PCA_FIT_ROWS
            else slice(None))
    sample = vectors[rows].astype(np.float32)
    mean = sample.mean(axis=0)
    sample -= mean
    _, axes = np.linalg.eigh(sample.T @ sample)  # ascending
    axes = axes[:, ::-1][:, :min(k, dim)]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    axes, mean = axes.astype(np.float32), mean.astype(np.float32)
    projected = np.empty((count, axes.shape[1]), np.float32)
    for start in range(0, count, _CHUNK):
        projected[start:start + _CHUNK] = (vectors[start:start + _CHUNK] - mean) @ axes
    return projected


def pca_layout(vectors: np.ndarray) -> np.ndarray:
    """(N, d) -> (N, 2) float32: the first two principal components (a single image sits at the origin)."""
    projected = pca_components(vectors, 2)
    if projected.shape[1] < 2:
        projected = np.hstack([projected, np.zeros_like(projected)])
    return projected


def umap_layout(vectors: np.ndarray, *, landmarks: int = UMAP_LANDMARKS, seed: int = 0,
                progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """(N, d) -> (N, 2) float32 UMAP layout of the first UMAP_INPUT_DIMS principal components. At most `landmarks`
    images (a seeded random sample) are fitted, over their exact kNN graph (so umap-learn compiles no
    nearest-neighbour descent); every other one is placed among its nearest landmarks (`place_by_landmarks`), in
    chunks, so `progress(fraction, message)` keeps moving (and may stop the run by raising). The two phases share
    the bar by their measured cost (FIT_COST_PER_PLACED)."""
    vectors = _check_vectors(vectors)
    if len(vectors) < MIN_UMAP_IMAGES:
        raise ValueError(f"UMAP needs at least {MIN_UMAP_IMAGES} images, got {len(vectors)}")
    if landmarks < MIN_UMAP_IMAGES:
        raise ValueError(f"landmarks must be at least {MIN_UMAP_IMAGES}, got {landmarks}")
    report = progress or (lambda fraction, message: None)
    report(0.0, f"PCA of {len(vectors):,} images")
    reduced = pca_components(vectors, UMAP_INPUT_DIMS)
    import umap  # numba compiles on first use: seconds, so only here

    fitted = np.sort(np.random.default_rng(seed).choice(len(reduced), min(landmarks, len(reduced)), replace=False))
    rest = np.setdiff1d(np.arange(len(reduced)), fitted, assume_unique=True)
    fit_span, place_span = phase_spans([FIT_COST_PER_PLACED * len(fitted), len(rest)])
    within(report, fit_span)(0.0, f"fitting UMAP on {len(fitted):,} images")
    graph = nearest_rows(reduced[fitted], reduced[fitted], UMAP_NEIGHBORS)  # each row first: its own neighbour
    reducer = umap.UMAP(n_neighbors=UMAP_NEIGHBORS, n_components=2, min_dist=0.1, n_epochs=UMAP_EPOCHS,
                        random_state=seed, n_jobs=1, precomputed_knn=(*graph, None))
    layout = np.empty((len(reduced), 2), np.float32)
    with warnings.catch_warnings():  # "precomputed_knn ... transform": this reducer transforms nothing
        warnings.simplefilter("ignore", UserWarning)
        layout[fitted] = reducer.fit_transform(reduced[fitted])
    layout[rest] = place_by_landmarks(reduced[rest], reduced[fitted], layout[fitted],
                                      progress=within(report, place_span))
    return layout


def nearest_rows(points: np.ndarray, candidates: np.ndarray, k: int, *,
                 progress: Callable[[float, str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `k` rows of `candidates` (L, d) nearest to each of `points` (M, d) by Euclidean distance, nearest
    first: (rows (M, k) int64, distances (M, k) float32). Exact, by faiss's flat index (4x numpy's matrix product
    and partial sort on 2 cores: it keeps the k best while it multiplies), in chunks reported to `progress`."""
    import faiss  # imported here: only the map's UMAP job needs it

    points, candidates = (np.ascontiguousarray(a, np.float32) for a in (points, candidates))
    if points.ndim != 2 or candidates.ndim != 2 or points.shape[1] != candidates.shape[1]:
        raise ValueError(f"points and candidates must be (M, d) and (L, d), got {points.shape} and {candidates.shape}")
    if not 1 <= k <= len(candidates):
        raise ValueError(f"k must be between 1 and {len(candidates)}, got {k}")
    report = progress or (lambda fraction, message: None)
    index = faiss.IndexFlatL2(candidates.shape[1])
    index.add(candidates)
    rows, distances = np.empty((len(points), k), np.int64), np.empty((len(points), k), np.float32)
    for start in range(0, len(points), _PLACE_CHUNK):
        report(start / len(points), f"{len(points) - start:,} images left to place")
        squared, rows[start:start + _PLACE_CHUNK] = index.search(points[start:start + _PLACE_CHUNK], k)
        distances[start:start + _PLACE_CHUNK] = np.sqrt(np.maximum(squared, 0))
    return rows, distances


def place_by_landmarks(points: np.ndarray, landmarks: np.ndarray, landmark_xy: np.ndarray, *,
                       neighbors: int = PLACE_NEIGHBORS,
                       progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """(M, 2) float32 places of `points` (M, d) on a map whose `landmarks` (L, d) lie at `landmark_xy` (L, 2): each
    at the mean of its `neighbors` nearest landmarks' places, weighted by (nearest distance / distance) ** 8, so
    the nearest landmark leads unless others are about as near (a plain inverse-distance mean pulls an image
    between two groups: on the demo set it kept fewer images among their own class on the map)."""
    landmark_xy = np.asarray(landmark_xy, np.float32)
    if landmark_xy.shape != (len(landmarks), 2):
        raise ValueError(f"landmark_xy must be ({len(landmarks)}, 2), got {landmark_xy.shape}")
    nearest, distances = nearest_rows(points, landmarks, min(neighbors, len(landmarks)), progress=progress)
    weights = (np.maximum(distances[:, :1], 1e-12) / np.maximum(distances, 1e-12)) ** PLACE_SHARPNESS
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("mk,mkc->mc", weights, landmark_xy[nearest]).astype(np.float32)


def map_sample(count: int, limit: int, *, keep: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """The rows (ascending) a map of `count` points draws when it may draw at most `limit`: all of them when they
    fit, else a seeded uniform sample that always holds the rows in `keep` (e.g. the person's labels) as far as
    `limit` allows."""
    if count < 0 or limit < 1:
        raise ValueError(f"count must be >= 0 and limit >= 1, got {count} and {limit}")
    if count <= limit:
        return np.arange(count)
    rng = np.random.default_rng(seed)
    kept = np.unique(np.asarray(keep if keep is not None else [], np.int64))
    if kept.size and (kept.min() < 0 or kept.max() >= count):
        raise ValueError(f"keep holds rows outside 0..{count - 1}")
    if kept.size >= limit:
        return np.sort(rng.choice(kept, limit, replace=False))
    others = np.setdiff1d(np.arange(count), kept, assume_unique=True)
    return np.sort(np.concatenate([kept, rng.choice(others, limit - kept.size, replace=False)]))


def density_grid(xy: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts (bins, bins) indexed [y, x], x centres (bins,), y centres (bins,)) of the points `xy` (N, 2) over
    their bounding box: the layer under a sampled map that shows where every image lies."""
    xy = np.asarray(xy)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
        raise ValueError(f"xy must be a non-empty (N, 2) array, got shape {xy.shape}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    counts, x_edges, y_edges = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins)
    return counts.T, (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2


def points_in_box(xy: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float]) -> np.ndarray:
    """(N,) bool: which points of `xy` (N, 2) lie in the box (edges included; each range in either order)."""
    xy = np.asarray(xy)
    (x0, x1), (y0, y1) = sorted(x_range), sorted(y_range)
    return (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: which points of `xy` (N, 2) lie inside `polygon` (M, 2), M >= 3, closed implicitly, by the
    even-odd rule (ray casting), as Plotly decides a lasso selection."""
    xy, polygon = np.asarray(xy, np.float64), np.asarray(polygon, np.float64)
    if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
        raise ValueError(f"polygon must be (M, 2) with M >= 3, got shape {polygon.shape}")
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), bool)
    for (ax, ay), (bx, by) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at_x = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < at_x)
    return inside
