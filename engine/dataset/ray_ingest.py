"""Ingest on Ray Data: the embedding step of a large collection spread over a cluster (or a local Ray).

The driver, this process beside the project, plans as local ingest does (`plan_ingest`). Ray Data then reads
the file list in parallel: CPU tasks hash, decode and shrink each file by the same rules as local ingest
(`read_entry`), and a pool of actors holding the model (fp16 on a GPU when the actors get one) embeds them. The
driver writes each finished batch as a Parquet shard (image rows, fp16 vectors) with its thumbnails, then DuckDB
imports all shards in one transaction. A killed run leaves its shards: the next run skips the files they hold and
imports them with the rest. Zero-shot then scores the imported vectors on the driver with the function local
ingest uses: a (N, d) x (d, C) product, seconds for millions, so the shards need not carry a second copy of it.

Images must be at a path every Ray worker reads (shared storage mounted at the same place); the project and its
thumbnails stay on the driver. Ray is an optional extra: `pip install -e ".[ray]"`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import LabelloopError
from engine.labels.folder_labels import after_ingest
from engine.files.images import model_picture, save_thumbnail, thumbnail_jpeg, thumbnail_path
from engine.dataset.ingest import FileEntry, IngestReport, Progress, plan_ingest, read_entry
from engine.learning.models import LoadedModel, ModelSpec
from engine.project.folder import Project
from engine.learning.zeroshot import run_zero_shot
from engine.views.map import store_pca_layout

RAY_MISSING = 'the Ray engine needs Ray: pip install -e ".[ray]" (or pip install "ray[data]"), then run again'
SHARDS_DIR = "ingest-shards"  # inside the project, one folder per model fingerprint
_ROW_TYPES = {"relpath": pa.string(), "sha256": pa.string(), "size": pa.int64(), "mtime_ns": pa.int64(),
              "width": pa.int32(), "height": pa.int32(), "status": pa.string(), "error": pa.string()}
_NO_PICTURE = {"thumbnail": None, "picture": None, "picture_height": None, "picture_width": None}
_PICTURE_TYPES = {"thumbnail": pa.binary(), "picture": pa.binary(), "picture_height": pa.int32(),
                  "picture_width": pa.int32()}


def ray_ingest(project: Project, model: LoadedModel, *, address: str | None = None, workers: int = 1,
               gpus_per_worker: float = 0.0, batch_size: int = 64, progress: Progress | None = None,
               verify: bool = False) -> IngestReport:
    """Bring the project up to date with its images folder, embedding on Ray. `address`: a running cluster's
    (or RAY_ADDRESS); without either, a local Ray on this machine. `workers`: model actors; `gpus_per_worker`:
    GPUs each actor holds (0 = CPU). `verify`: hash every known file again, as local ingest does."""
    if workers < 1:
        raise LabelloopError(f"--workers must be at least 1 for the Ray engine, got {workers}")
    if gpus_per_worker < 0:
        raise LabelloopError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker}")
    ray = require_ray()
    started = time.perf_counter()
    report, todo = plan_ingest(project, model, verify=verify)
    shards_dir = project.root / SHARDS_DIR / model.model_id
    written = sorted(shards_dir.glob("*.parquet"))
    held = _rows_held(written)
    remaining = [entry for entry in todo if held.get(entry.relpath) != (entry.size, entry.mtime_ns)]
    seen_shas = project.store.embedded_shas(model.model_id) | {
        sha for sha, embedded in zip(*_shard_column_values(written, "sha256", "embedded")) if embedded}

    if remaining:
        started_ray = _connect(ray, address)
        try:
            shards_dir.mkdir(parents=True, exist_ok=True)
            run_id = time.time_ns()
            done = 0
            for number, batch in enumerate(_embedded_batches(ray, project, model, remaining, workers,
                                                             gpus_per_worker, batch_size)):
                _write_shard(batch, seen_shas, project.thumbs_dir, shards_dir / f"{run_id}-{number:07d}.parquet")
                done += batch.num_rows
                if progress:
                    progress(done, len(remaining))
        finally:
            if started_ray:
                ray.shutdown()

    shards = sorted(shards_dir.glob("*.parquet"))
    wanted = {entry.relpath for entry in todo}  # not a file deleted since a killed run wrote its shard
    rows = [row for row in zip(*_shard_column_values(shards, "relpath", "status", "embedded")) if row[0] in wanted]
    report.error_paths = sorted({relpath for relpath, status, _ in rows if status == "error"})
    report.errors = len(report.error_paths)
    report.embedded = sum(embedded for _, _, embedded in rows)
    report.reused = len({relpath for relpath, _, _ in rows}) - report.errors - report.embedded
    project.store.import_ingest_shards([str(path) for path in shards], model.model_id, sorted(wanted))
    shutil.rmtree(shards_dir, ignore_errors=True)  # imported: the database holds everything they held
    project.store.fill_duplicate_embeddings(model.model_id)
    report.predicted = run_zero_shot(project.store, model)
    store_pca_layout(project.store, model.model_id)  # the first look at the map reads it
    report.folder_labels = after_ingest(project)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def require_ray():
    """The ray module, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the data extra)
    except ImportError:
        raise LabelloopError(RAY_MISSING) from None
    return ray


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local Ray; True when this call started it."""
    if ray.is_initialized():  # a caller (a test, a notebook) already chose the cluster
        return False
    source_root = str(Path(__file__).resolve().parents[2])
    # Workers import labelloop's code: on this machine from this checkout; on a cluster it is installed there.
    local = not (address or os.environ.get("RAY_ADDRESS"))
    runtime_env = {"env_vars": {"PYTHONPATH": source_root}} if local else None
    ray.init(address=address, runtime_env=runtime_env, logging_level=logging.ERROR, log_to_driver=False,
             include_dashboard=False, configure_logging=True)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own bar
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return True


def _embedded_batches(ray, project: Project, model: LoadedModel, entries: list[FileEntry], workers: int,
                      gpus_per_worker: float, batch_size: int) -> Iterator[pa.Table]:
    files = pa.table({"relpath": [e.relpath for e in entries], "size": [e.size for e in entries],
                      "mtime_ns": [e.mtime_ns for e in entries]})
    # One block per batch, so the decode tasks spread over every CPU of the cluster.
    blocks = [files.slice(start, batch_size) for start in range(0, files.num_rows, batch_size)]
    dataset = (ray.data.from_arrow(blocks)
               .map_batches(_decode_batch, batch_format="pyarrow", batch_size=batch_size,
                            fn_kwargs={"images_root": str(project.images_root), "image_size": model.image_size})
               .map_batches(_Embedder, batch_format="pyarrow", batch_size=batch_size, concurrency=workers,
                            num_gpus=gpus_per_worker, fn_constructor_kwargs={"spec": model.spec}))
    yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")


def _decode_batch(files: pa.Table, images_root: str, image_size: int) -> pa.Table:
    """A Ray task: the rows of local ingest for a batch of files, with thumbnail bytes and the model picture."""
    def thumbnail_and_picture(base: np.ndarray, sha256: str) -> dict:
        picture = np.asarray(model_picture(base, image_size))
        return {"thumbnail": thumbnail_jpeg(base), "picture": picture.tobytes(),
                "picture_height": picture.shape[0], "picture_width": picture.shape[1]}

    root = Path(images_root)
    records = [read_entry(root, FileEntry(relpath, size, mtime_ns), image_size, thumbnail_and_picture,
                          empty=_NO_PICTURE)
               for relpath, size, mtime_ns in zip(*(files.column(name).to_pylist()
                                                    for name in ("relpath", "size", "mtime_ns")))]
    types = {**_ROW_TYPES, **_PICTURE_TYPES}
    return pa.table({name: pa.array([record[name] for record in records], kind) for name, kind in types.items()})


class _Embedder:
    """A Ray actor holding the model: model pictures in, fp16 unit vectors out (null for bad files)."""

    def __init__(self, spec: ModelSpec):
        from engine.learning.models import load_model

        self.model = load_model(spec)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import torch
        from PIL import Image

        rows = batch.to_pylist()
        good = [i for i, row in enumerate(rows) if row["status"] == "ok"]
        pictures = [Image.fromarray(np.frombuffer(rows[i]["picture"], np.uint8).reshape(
            rows[i]["picture_height"], rows[i]["picture_width"], 3)) for i in good]
        vectors = (self.model.encode_images(torch.stack([self.model.preprocess(p) for p in pictures]))
                   if good else np.zeros((0, self.model.dim), np.float32)).astype(np.float16)
        column: list = [None] * len(rows)
        for i, vector in zip(good, vectors):
            column[i] = vector
        vec = pa.array(column, pa.list_(pa.float16(), self.model.dim))
        return batch.drop_columns(["picture", "picture_height", "picture_width"]).append_column("vec", vec)


def _write_shard(batch: pa.Table, seen_shas: set[str], thumbs_dir: Path, path: Path) -> None:
    """Thumbnails first, then the shard under its final name in one rename: a shard on disk is complete, and its
    thumbnails are there. `embedded` marks content not embedded before (in the project or earlier in the run), for
    the report; every good row keeps its vector, so a duplicate keeps one when its twin's file is deleted."""
    shas, thumbnails = batch.column("sha256").to_pylist(), batch.column("thumbnail").to_pylist()
    first = []
    for sha, thumbnail in zip(shas, thumbnails):
        if thumbnail is not None and not thumbnail_path(thumbs_dir, sha).exists():
            save_thumbnail(thumbnail, thumbnail_path(thumbs_dir, sha))
        first.append(sha is not None and sha not in seen_shas)
        if sha is not None:
            seen_shas.add(sha)
    shard = batch.drop_columns(["thumbnail"]).append_column("embedded", pa.array(first, pa.bool_()))
    temporary = path.with_suffix(".tmp")
    pq.write_table(shard, temporary)
    temporary.replace(path)


def _rows_held(shards: list[Path]) -> dict[str, tuple[int, int]]:
    """relpath -> (size, mtime_ns) of every file a written shard holds."""
    relpaths, sizes, mtimes = _shard_column_values(shards, "relpath", "size", "mtime_ns")
    return {relpath: (size, mtime) for relpath, size, mtime in zip(relpaths, sizes, mtimes)}


def _shard_column_values(shards: list[Path], *names: str) -> tuple[list, ...]:
    if not shards:
        return tuple([] for _ in names)
    table = pa.concat_tables(pq.read_table(path, columns=list(names)) for path in shards)
    return tuple(table.column(name).to_pylist() for name in names)
