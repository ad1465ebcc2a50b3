"""2-D layouts of image embeddings for the map, and the geometry the map needs: pure functions over numpy arrays.

PCA (principal component analysis) is exact and takes a second at 100k images, so the map always has it at once;
UMAP (McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and Projection", 2018, via umap-learn) keeps
look-alikes together far better and runs as a background job. A browser draws a few hundred thousand WebGL points
comfortably; past that the map draws a sample over a density layer of every point (`map_sample`, `density_grid`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.jobs.progress import phase_spans, within

UMAP_INPUT_DIMS = 50  # UMAP reads a PCA of the embeddings: the neighbour search is several times faster, same map
UMAP_NEIGHBORS = 15  # umap-learn's default: the size of the neighbourhood each point keeps
UMAP_FIT_SIZE = 100_000  # UMAP is fitted on at most this many images (a seeded sample); `transform` places the rest
MIN_UMAP_IMAGES = UMAP_NEIGHBORS + 2  # fewer images than this get the PCA map only
PCA_FIT_ROWS = 20_000  # rows the principal axes are computed from (a seeded sample past that)
# What fitting one image costs against placing one with `transform` (bench_map under load: UMAP fitted 100,000
# images in 851 s, 8.5 ms each; `transform` placed 291 images/s, 3.4 ms each): the two phases share the job's bar
# by it, so the pace measured while placing holds for the rest.
FIT_COST_PER_PLACED = 2.5
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


def umap_layout(vectors: np.ndarray, *, fit_size: int = UMAP_FIT_SIZE, seed: int = 0,
                progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """(N, d) -> (N, 2) float32 UMAP layout of the first UMAP_INPUT_DIMS principal components. At most `fit_size`
    images (a seeded random sample) are fitted; the others are placed next to their neighbours among them by
    umap-learn's `transform`, in chunks, so `progress(fraction, message)` keeps moving (and may stop the run by
    raising)."""
    vectors = _check_vectors(vectors)
    if len(vectors) < MIN_UMAP_IMAGES:
        raise ValueError(f"UMAP needs at least {MIN_UMAP_IMAGES} images, got {len(vectors)}")
    if fit_size < MIN_UMAP_IMAGES:
        raise ValueError(f"fit_size must be at least {MIN_UMAP_IMAGES}, got {fit_size}")
    report = progress or (lambda fraction, message: None)
    report(0.0, f"PCA of {len(vectors):,} images")
    reduced = pca_components(vectors, UMAP_INPUT_DIMS)
    import umap  # numba compiles on first use: seconds, so only here

    fitted = np.sort(np.random.default_rng(seed).choice(len(reduced), min(fit_size, len(reduced)), replace=False))
    rest = np.setdiff1d(np.arange(len(reduced)), fitted, assume_unique=True)
    fit_span, place_span = phase_spans([FIT_COST_PER_PLACED * len(fitted), len(rest)])
    within(report, fit_span)(0.0, f"fitting UMAP on {len(fitted):,} images")
    reducer = umap.UMAP(n_neighbors=UMAP_NEIGHBORS, n_components=2, min_dist=0.1, random_state=seed, n_jobs=1)
    layout = np.empty((len(reduced), 2), np.float32)
    layout[fitted] = reducer.fit_transform(reduced[fitted])
    placing = within(report, place_span)
    for start in range(0, len(rest), _CHUNK):
        placing(start / len(rest), f"placing {len(rest) - start:,} more images")
        rows = rest[start:start + _CHUNK]
        layout[rows] = reducer.transform(reduced[rows])
    return layout


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
