"""Nearest neighbours of unit vectors (cosine similarity = inner product): the kNN graph of a whole collection (the
learning loop's label propagation, near-duplicate groups), the best matches of one query (text search, "more like
this"), and groups of near-identical images. Pure functions over numpy arrays, plus the graph's cache file.

Exact search is numpy matrix products: on the 2-core machine, 2,000 queries against 20,000 × 512 vectors took
4.4 s in numpy and 8.7 s in faiss's flat index (load average 9; faiss's OpenMP threads suffer more from a shared
machine). Above EXACT_LIMIT images the graph uses faiss's inverted-file index over a PCA projection (an exact graph
of a million images is 5e14 multiply-adds); it is cached per model, as building it takes minutes at 1M.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from engine.errors import DAMAGED_NPZ
from engine.jobs.progress import Progress

EXACT_LIMIT = 20_000  # at most this many images: exact inner-product search (seconds); above: approximate
DUPLICATE_K = 4  # neighbours per image a duplicate search looks at; a larger group joins up through chains
PROJECTION_SLACK = 0.05  # a pair whose projected cosine is this far under the threshold may still reach it
_GRAPH_BLOCK = 2048  # rows per block of the exact graph: a 2048 × 20,000 product is 160 MB
PCA_DIM = 64  # approximate search runs in this many dimensions (neighbours of unit vectors survive it well)
_QUERY_CHUNK = 131_072  # rows per matrix-vector product: bounds the temporary to a few MB
_SEARCH_CHUNK = 65_536  # rows per step of the approximate graph's search (a progress report each)


def knn_graph(embeddings: np.ndarray, k: int, *, seed: int = 0,
              progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest neighbours of every row of `embeddings` (N, D) (unit vectors), itself left out: returns
    (neighbours (N, k) int32, cosine similarities (N, k) float32), nearest first. Exact up to EXACT_LIMIT rows;
    above, faiss's IVF index over a PCA_DIM projection (approximate: most true neighbours, a few near misses).
    `progress(fraction, message)` hears of each block of rows searched."""
    x = np.ascontiguousarray(embeddings, np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings must be (N, D) with N >= 2, got shape {x.shape}")
    if not 1 <= k < len(x):
        raise ValueError(f"k must be between 1 and N - 1 = {len(x) - 1}, got {k}")
    report = progress or (lambda fraction, message: None)
    if len(x) <= EXACT_LIMIT:
        neighbours, similarities = _exact_graph(x, k + 1, report)
    else:
        _, neighbours = _projected_search(x, k + 1, nprobe=6, seed=seed, progress=report)
        # similarities in the projection are only for ranking; the affinities use the true cosines
        safe = np.maximum(neighbours, 0)
        similarities = np.concatenate([np.einsum("nd,nkd->nk", x[i:i + 10_000], x[safe[i:i + 10_000]])
                                       for i in range(0, len(x), 10_000)])
    return _drop_self(neighbours, similarities, k)


def near_duplicate_graph(embeddings: np.ndarray, threshold: float, *, k: int = DUPLICATE_K,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`knn_graph` as far as near-duplicates need it: each row's `k` nearest rows (N, k) and cosines (N, k), where
    only pairs that may reach `threshold` carry their true cosine (the others -1). Exact up to EXACT_LIMIT rows;
    above, faiss's IVF index over the PCA projection probed in 2 lists, not 6 (near-identical vectors share a
    list), and only candidate pairs (projected cosine >= threshold - PROJECTION_SLACK) are checked against their
    true cosine: several times cheaper than the full graph at a million images."""
    x = np.ascontiguousarray(embeddings, np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings must be (N, D) with N >= 2, got shape {x.shape}")
    k = min(k, len(x) - 1)
    if len(x) <= EXACT_LIMIT:
        return knn_graph(x, k, seed=seed)
    projected, neighbours = _projected_search(x, k + 1, nprobe=2, seed=seed)
    neighbours, projected = _drop_self(neighbours, projected, k)
    rows, columns = np.nonzero(projected >= threshold - PROJECTION_SLACK)
    similarities = np.full(neighbours.shape, -1.0, np.float32)
    for start in range(0, len(rows), 100_000):  # 100,000 pairs gather 400 MB of vectors at 512-d
        r, c = rows[start:start + 100_000], columns[start:start + 100_000]
        similarities[r, c] = np.einsum("pd,pd->p", x[r], x[neighbours[r, c]])
    return neighbours, similarities


def _projected_search(x: np.ndarray, k: int, *, nprobe: int, seed: int,
                      progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `k` nearest rows (itself among them) by faiss's IVF index over a PCA_DIM projection of `x`, about
    sqrt(N) lists, `nprobe` of them searched: (projected cosines (N, k), rows (N, k), -1 where none), searched in
    chunks of _SEARCH_CHUNK rows, each reported to `progress`."""
    import faiss  # imported here: only large collections need it

    faiss.omp_set_num_threads(faiss.omp_get_max_threads())
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), min(len(x), 50_000), replace=False)]
    dim = min(PCA_DIM, x.shape[1])
    pca = faiss.PCAMatrix(x.shape[1], dim)
    pca.train(sample)
    reduced = pca.apply(x)
    faiss.normalize_L2(reduced)
    lists = int(np.sqrt(len(x)))  # about sqrt(N) lists of sqrt(N) images each
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    trained = pca.apply(sample[:40 * lists])
    faiss.normalize_L2(trained)
    index.train(trained)
    index.add(reduced)
    index.nprobe = nprobe
    report = progress or (lambda fraction, message: None)
    projected, rows = np.empty((len(x), k), np.float32), np.empty((len(x), k), np.int64)
    for start in range(0, len(x), _SEARCH_CHUNK):
        report(start / len(x), f"nearest neighbours of {start:,}/{len(x):,} images")
        stop = min(start + _SEARCH_CHUNK, len(x))
        projected[start:stop], rows[start:stop] = index.search(reduced[start:stop], k)
    return projected, rows


def _exact_graph(x: np.ndarray, k: int, progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `k` most similar rows (itself among them), most similar first, by blocks of matrix products."""
    neighbours = np.empty((len(x), k), np.int64)
    similarities = np.empty((len(x), k), np.float32)
    for start in range(0, len(x), _GRAPH_BLOCK):
        progress(start / len(x), f"nearest neighbours of {start:,}/{len(x):,} images")
        block = x[start:start + _GRAPH_BLOCK] @ x.T
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        scores = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")
        neighbours[start:start + len(block)] = np.take_along_axis(top, order, axis=1)
        similarities[start:start + len(block)] = np.take_along_axis(scores, order, axis=1)
    return neighbours, similarities


def _drop_self(neighbours: np.ndarray, similarities: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k neighbours other than itself (and other than faiss's -1 for a missing one, given similarity 0)."""
    rows = np.arange(len(neighbours))[:, None]
    keep = neighbours != rows
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the first k entries that are not the row itself
    picked = np.take_along_axis(neighbours, order, axis=1)
    sims = np.take_along_axis(similarities, order, axis=1).astype(np.float32)
    missing = picked < 0
    return np.where(missing, rows, picked).astype(np.int32), np.where(missing, 0.0, sims).astype(np.float32)


def graph_file(folder: Path, model_id: str) -> Path:
    """Where a project keeps the kNN graph of one model's embeddings (`models/knn_<model>.npz`)."""
    return folder / f"knn_{model_id}.npz"


def cached_knn_graph(path: Path, image_ids: np.ndarray, embeddings: np.ndarray, k: int, *,
                     progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """`knn_graph(embeddings, k)` read from `path` when it was saved there for these `image_ids` (N,) with at least
    k neighbours (nearest first, so its first k columns are the answer), else built now (telling `progress`) and
    saved there. Returns (neighbours, similarities, whether it came from the file). A damaged file is a cache like
    any other: built again and replaced."""
    if path.is_file():
        try:
            with np.load(path) as saved:
                if saved["neighbours"].shape[1] >= k and np.array_equal(saved["image_ids"], image_ids):
                    return saved["neighbours"][:, :k], saved["similarities"][:, :k], True
        except DAMAGED_NPZ as error:
            logging.getLogger(__name__).warning("%s is damaged (%s); building the neighbour graph again", path, error)
    neighbours, similarities = knn_graph(embeddings, k, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    try:
        np.savez(partial, image_ids=image_ids, neighbours=neighbours, similarities=similarities)
        partial.replace(path)
    except BaseException:  # a full disk: no half-written file stays behind
        partial.unlink(missing_ok=True)
        raise
    return neighbours, similarities, False


def best_matches(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` rows of `vectors` (N, D) most similar to `query` (D,) (unit vectors): (row indices (k,),
    cosine similarities (k,)), most similar first; fewer when N < k. Exact."""
    vectors, query = np.asarray(vectors), np.asarray(query, np.float32)
    if vectors.ndim != 2 or query.shape != (vectors.shape[1],):
        raise ValueError(f"vectors must be (N, D) and query (D,), got {vectors.shape} and {query.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    similarities = np.concatenate([vectors[start:start + _QUERY_CHUNK] @ query
                                   for start in range(0, len(vectors), _QUERY_CHUNK)] or [np.empty(0, np.float32)])
    k = min(k, len(similarities))
    top = np.argpartition(-similarities, k - 1)[:k] if k < len(similarities) else np.arange(k)
    order = top[np.lexsort((top, -similarities[top]))]  # best first; ties by row, so the answer is stable
    return order, similarities[order].astype(np.float32)


def duplicate_groups(neighbours: np.ndarray, similarities: np.ndarray, threshold: float, *,
                     content: np.ndarray | None = None) -> list[np.ndarray]:
    """Groups of near-identical rows: the connected components (union-find over pairs) of the graph whose edges are
    the kNN pairs (`neighbours`, `similarities`, both (N, k)) with cosine >= `threshold`, plus rows with equal
    `content` keys (N,) (equal content hashes: exact copies, whatever their vectors). Returns each group of two or more
    as ascending row indices, largest group first (then by first row)."""
    import scipy.sparse as sp  # imported here: the CLI imports this module (via engine.project.discovery) at start-up
    from scipy.sparse.csgraph import connected_components

    neighbours, similarities = np.asarray(neighbours), np.asarray(similarities)
    if neighbours.shape != similarities.shape or neighbours.ndim != 2:
        raise ValueError(f"neighbours and similarities must be (N, k) alike, got {neighbours.shape} and "
                         f"{similarities.shape}")
    if not -1.0 <= threshold <= 1.0:  # NaN fails this too
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")
    n = len(neighbours)
    close = similarities >= threshold
    rows = [np.repeat(np.arange(n), neighbours.shape[1])[close.ravel()]]
    cols = [neighbours[close]]
    if content is not None:
        content = np.asarray(content)
        if content.shape != (n,):
            raise ValueError(f"content must have one key per row ({n}), got shape {content.shape}")
        _, first, inverse = np.unique(content, return_index=True, return_inverse=True)
        rows.append(np.arange(n))
        cols.append(first[inverse])  # each row joined to the first row with its content
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = sp.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    members = np.flatnonzero(np.bincount(component)[component] > 1)  # rows in a group of two or more
    members = members[np.argsort(component[members], kind="stable")]
    groups = np.split(members, np.flatnonzero(np.diff(component[members])) + 1) if len(members) else []
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def exact_copies(content: np.ndarray) -> np.ndarray:
    """Which of a group's members (content keys (m,)) share their content with another member: (m,) bool."""
    _, inverse, counts = np.unique(np.asarray(content), return_inverse=True, return_counts=True)
    return counts[inverse] > 1
