"""Projects with planted embeddings instead of images: for round tests and for benchmarks at 100k-1M images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.project.folder import Project, create_project
from engine.learning.probabilities import cosine_probs, prediction_stats
from storage import Store

MODEL_ID = "synthetic0"
FILE_SIZE = 1000  # bytes of each image's file as the store records it


def planted_relpath(index: int) -> str:
    """The name of the `index`-th planted image (from 0)."""
    return f"img_{index:07d}.jpg"


def file_bytes(relpath: str) -> bytes:
    """What the file of a planted image holds, should a test write it: the store records this content's sha256."""
    return relpath.encode().ljust(FILE_SIZE, b"x")


def planted_sha256(relpath: str) -> str:
    """The sha256 the store records for the planted image `relpath` (that of `file_bytes`): its thumbnail's key."""
    return hashlib.sha256(file_bytes(relpath)).hexdigest()


def planted_embeddings(n: int, dim: int, n_classes: int, *, seed: int = 0, spread: float = 0.9,
                       text_noise: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (n, dim) unit vectors around one centre per class, y (n,), text weights (C, dim) = centres knocked
    off by `text_noise`, so zero-shot is mediocre while the clusters stay separable)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, n_classes, n)
    x = np.empty((n, dim), np.float32)
    for start in range(0, n, 65_536):  # in chunks: the same draws as one, without GBs of float64 at 1M images
        stop = min(n, start + 65_536)
        x[start:stop] = centres[y[start:stop]] + spread * rng.standard_normal((stop - start, dim)).astype(
            np.float32) / np.sqrt(dim) * 4
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    text = centres + text_noise * rng.standard_normal(centres.shape).astype(np.float32) / np.sqrt(dim) * 4
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return x.astype(np.float32), y, text.astype(np.float32)


def fill_store(store: Store, embeddings: np.ndarray, text_weights: np.ndarray, *, logit_scale: float = 50.0,
               chunk: int = 100_000) -> None:
    """Images img_0000000.jpg... with `embeddings`, the zero-shot classifier and its round-0 predictions."""
    n, dim = embeddings.shape
    class_ids = [c["id"] for c in store.classes()]
    store.register_model(MODEL_ID, "synthetic", dim)
    store.set_meta(model_id=MODEL_ID)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        relpaths = [planted_relpath(i) for i in range(start, stop)]
        rows = pa.table({
            "relpath": pa.array(relpaths),
            "sha256": pa.array([planted_sha256(relpath) for relpath in relpaths]),
            "size": pa.array(np.full(stop - start, FILE_SIZE, np.int64)),
            "mtime_ns": pa.array(np.zeros(stop - start, np.int64)),
            "width": pa.array(np.full(stop - start, 64, np.int32)),
            "height": pa.array(np.full(stop - start, 64, np.int32)),
            "status": pa.array(["ok"] * (stop - start)), "error": pa.array([None] * (stop - start), pa.string())})
        store.write_ingest_batch(rows, MODEL_ID, relpaths, embeddings[start:stop])
    store.save_class_weights(MODEL_ID, class_ids, text_weights, logit_scale)
    image_ids, _ = store.embeddings(MODEL_ID)
    probs = cosine_probs(embeddings, text_weights, logit_scale)
    store.replace_predictions(round_id=0, source="zeroshot", model_id=MODEL_ID, image_ids=image_ids,
                              class_ids=class_ids, probs=probs, stats=prediction_stats(probs), replace_all=True)


def synthetic_project(root: Path, images: Path, model: Path, embeddings: np.ndarray, text_weights: np.ndarray,
                      **kwargs) -> Project:
    """A project whose folder is empty but whose database holds `embeddings` as if they were ingested."""
    images.mkdir(parents=True, exist_ok=True)
    names = ",".join(f"class{c:02d}" for c in range(len(text_weights)))
    project = create_project(root, images=images, classes=names, model=str(model))
    fill_store(project.store, embeddings, text_weights, **kwargs)
    return project
