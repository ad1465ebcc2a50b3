"""Ingest: scan the images folder, then decode, hash, thumbnail and embed what is new or changed, then zero-shot.

Decoding runs in DataLoader worker processes so the model is never starved; each batch is written in its own
transaction, so an interrupted ingest keeps what it finished and the next run picks up the rest. A file that
cannot be read is recorded with its reason and never stops the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset

from engine.errors import LabelloopError
from engine.imageio import (SUPPORTED_EXTENSIONS, THUMBNAIL_SIDE, ImageReadError, default_workers, model_picture,
                            quiet_worker, read_image, shrink_shorter_side, thumbnail_path, write_thumbnail)
from engine.models import LoadedModel
from engine.project import Project
from engine.zeroshot import run_zero_shot

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class FileEntry:
    relpath: str
    size: int
    mtime_ns: int


@dataclass
class IngestReport:
    found: int = 0  # files with an image extension under the images root
    new: int = 0
    changed: int = 0
    removed: int = 0  # known files no longer on disk (kept, marked missing)
    errors: int = 0  # files read in this run that are not usable images
    embedded: int = 0  # images passed through the image encoder in this run
    reused: int = 0  # images not encoded because identical content already has a vector (duplicates, touched files)
    predicted: int = 0  # images given a new zero-shot prediction
    seconds: float = 0.0
    error_paths: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def scan_images(images_root: Path, *, exclude: Path | None = None) -> list[FileEntry]:
    """Every file with an image extension under `images_root`, sorted. Directory symlinks are not followed, so
    nothing outside the root is read; a file that cannot be stat'ed (a dangling symlink) is listed with size -1
    and reported by the reader."""
    entries: list[FileEntry] = []
    stack = [images_root]
    while stack:
        folder = stack.pop()
        try:
            items = list(os.scandir(folder))
        except OSError:
            continue
        for item in items:
            if item.is_dir(follow_symlinks=False):
                if exclude is None or Path(item.path).resolve() != exclude:
                    stack.append(Path(item.path))
            elif os.path.splitext(item.name)[1].lower() in SUPPORTED_EXTENSIONS:
                relpath = Path(item.path).relative_to(images_root).as_posix()
                try:
                    stat = item.stat()
                    entries.append(FileEntry(relpath, stat.st_size, stat.st_mtime_ns))
                except OSError:
                    entries.append(FileEntry(relpath, -1, -1))
    return sorted(entries, key=lambda entry: entry.relpath)


class _ImageFiles(Dataset):
    """Reads one file per item: hash, decode, thumbnail, model preprocessing. Runs in worker processes."""

    def __init__(self, images_root: Path, entries: list[FileEntry], thumbs_dir: Path, preprocess: Callable,
                 image_size: int):
        self.images_root, self.entries, self.thumbs_dir = images_root, entries, thumbs_dir
        self.preprocess, self.image_size = preprocess, image_size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        record = {"relpath": entry.relpath, "size": entry.size, "mtime_ns": entry.mtime_ns, "sha256": None,
                  "width": None, "height": None, "status": "ok", "error": None, "tensor": None}
        try:
            path = self.images_root / entry.relpath
            if path.is_symlink() and not path.resolve().is_relative_to(self.images_root.resolve()):
                raise ImageReadError("symlink points outside the images folder; not read")
            image = read_image(path)
            # One area resize of the full picture feeds both the thumbnail and the model input.
            base = shrink_shorter_side(image.pixels, max(self.image_size, THUMBNAIL_SIDE))
            write_thumbnail(base, thumbnail_path(self.thumbs_dir, image.sha256))
            record.update(sha256=image.sha256, size=image.size, width=image.pixels.shape[1],
                          height=image.pixels.shape[0], tensor=self.preprocess(model_picture(base, self.image_size)))
        except ImageReadError as error:
            record.update(status="error", error=str(error))
        except Exception as error:  # an unexpected decoder failure is still one bad file, not a failed ingest
            record.update(status="error", error=f"cannot decode: {type(error).__name__}: {error}")
        return record


def _keep_records(batch: list[dict]) -> list[dict]:
    return batch


def ingest(project: Project, model: LoadedModel, *, batch_size: int = 64, workers: int | None = None,
           progress: Progress | None = None) -> IngestReport:
    """Bring the project up to date with its images folder. Idempotent: a second run reads nothing unchanged."""
    started = time.perf_counter()
    store, images_root = project.store, project.images_root
    if not images_root.is_dir():
        raise LabelloopError(f"images folder {images_root} is gone; restore it (nothing in the project was changed)")
    store.register_model(model.model_id, model.spec.text, model.dim)
    store.set_meta(model_id=model.model_id)
    report = IngestReport()
    known = store.image_index()
    entries = scan_images(images_root, exclude=project.root)
    report.found = len(entries)
    on_disk = {entry.relpath for entry in entries}
    gone = [relpath for relpath, row in known.items() if relpath not in on_disk and row[4] != "missing"]
    store.mark_missing(gone)
    report.removed = len(gone)

    needs_vector = set(store.paths_missing_embedding(model.model_id))
    todo = []
    for entry in entries:
        row = known.get(entry.relpath)
        if row is None:
            report.new += 1
        elif row[4] == "missing" or (row[2], row[3]) != (entry.size, entry.mtime_ns):
            report.changed += 1
        elif entry.relpath not in needs_vector:
            continue
        todo.append(entry)

    embedded_shas = store.embedded_shas(model.model_id)
    dataset = _ImageFiles(images_root, todo, project.thumbs_dir, model.preprocess, model.image_size)
    workers = default_workers() if workers is None else workers
    # Workers are spawned, not forked: a fork of a process whose OpenMP pool already ran (torch, in a server or
    # after a round) can deadlock in the child.
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_keep_records,
                        worker_init_fn=quiet_worker if workers else None,
                        multiprocessing_context="spawn" if workers else None,
                        pin_memory=model.device.type == "cuda", persistent_workers=False)
    done = 0
    for batch in loader if todo else ():  # no worker processes to start when nothing changed
        to_embed = []
        for record in batch:
            if record["status"] == "error":
                report.errors += 1
                report.error_paths.append(record["relpath"])
            elif record["sha256"] in embedded_shas:
                report.reused += 1
            else:
                embedded_shas.add(record["sha256"])
                to_embed.append(record)
        vectors = (model.encode_images(torch.stack([r["tensor"] for r in to_embed])) if to_embed
                   else np.zeros((0, model.dim), np.float32))
        store.write_ingest_batch(_image_rows(batch), model.model_id, [r["relpath"] for r in to_embed], vectors)
        report.embedded += len(to_embed)
        done += len(batch)
        if progress:
            progress(done, len(todo))
    store.fill_duplicate_embeddings(model.model_id)
    report.predicted = run_zero_shot(store, model)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _image_rows(batch: list[dict]) -> pa.Table:
    columns = ("relpath", "sha256", "size", "mtime_ns", "width", "height", "status", "error")
    types = (pa.string(), pa.string(), pa.int64(), pa.int64(), pa.int32(), pa.int32(), pa.string(), pa.string())
    return pa.table({name: pa.array([record[name] for record in batch], kind) for name, kind in zip(columns, types)})
