"""Ingest: scan the images folder, then decode, hash, thumbnail and embed what is new or changed, then zero-shot.

The model is never kept waiting. It runs in a thread of its own on one batch while this thread decodes the next
(hash, decode, shrink once, thumbnail, the model's S x S uint8 picture), writes the batch before (vectors and image
rows) and saves thumbnails; it builds the zero-shot classifier first. When decoding is the slower side (a small
model, a GPU), DataLoader worker processes take the decoding over. Each batch is written in its own
transaction, so an interrupted ingest keeps what it finished and the next run picks up the rest. A file that
cannot be read is recorded with its reason and never stops the run: a name that is not UTF-8, something that is
not a regular file (a FIFO would block its reader forever), or a file whose decoding takes over DECODE_SECONDS.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset

from engine.files.content_hash import file_sha256
from engine.errors import LabelloopError
from engine.labels.folder_labels import after_ingest
from engine.files.images import (THUMBNAIL_SIDE, ImageReadError, default_workers, file_kind, model_picture,
                                 quiet_worker, read_image, save_thumbnail, shrink_shorter_side, thumbnail_jpeg,
                                 thumbnail_path)
from engine.learning.models import LoadedModel
from engine.project.folder import Project, image_files
from engine.learning.zeroshot import build_zero_shot_classifier, run_zero_shot, stale_classifier_prompts
from engine.views.map import store_pca_layout

Progress = Callable[[int, int], None]  # (done, total)
# One file's read, decode and thumbnail. A 16000 x 16000 PNG of noise (770 MB) took 23 s on a busy 2-core
# machine; a file still at it after this long is on a hung drive or stuck in a decoder.
DECODE_SECONDS = 120.0
POLL_SECONDS = 1.0  # while waiting for decode workers, progress is reported (and may stop the run) this often
# A decode worker's start: a fresh interpreter importing torch, measured 6.8-9.7 s on 2 cores at load 4-7.
WORKER_START_SECONDS = 8.0


@dataclass
class FileEntry:
    relpath: str
    size: int
    mtime_ns: int
    problem: str | None = None  # why the file is recorded as an error without being read


@dataclass
class IngestReport:
    found: int = 0  # files with an image extension under the images root
    projects_skipped: int = 0  # folders under the images root holding another labelloop project (never read)
    new: int = 0
    changed: int = 0
    removed: int = 0  # known files no longer on disk (kept, marked missing)
    errors: int = 0  # files read in this run that are not usable images
    embedded: int = 0  # images passed through the image encoder in this run
    reused: int = 0  # images not encoded because identical content already has a vector (duplicates, touched files)
    predicted: int = 0  # images given a new zero-shot prediction
    decode_workers: int = 0  # decode worker processes this run used (0: decoded beside the model, in this process)
    folder_labels: dict | None = None  # engine.labels.folder_labels counts, when the project takes labels from folders
    seconds: float = 0.0
    error_paths: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def scan_images(images_root: Path, *, exclude: Path | None = None) -> tuple[list[FileEntry], int]:
    """Every file with an image extension under `images_root` (image_files), sorted, and how many folders were
    skipped as other labelloop projects (their thumbnails are not images of this one). A file that cannot be
    stat'ed (a dangling symlink) is listed with size -1."""
    projects = 0

    def skipped() -> None:
        nonlocal projects
        projects += 1

    entries = [_file_entry(Path(item.path).relative_to(images_root).as_posix(), item)
               for item in image_files(images_root, exclude=exclude, on_project=skipped)]
    return sorted(entries, key=lambda entry: entry.relpath), projects


def _file_entry(relpath: str, item: os.DirEntry) -> FileEntry:
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir hands undecodable bytes back as lone surrogates
        escaped = os.fsencode(relpath).decode("utf-8", "backslashreplace")
        return FileEntry(escaped, -1, -1, "file name is not valid UTF-8; rename the file, then ingest again")
    try:
        found = item.stat()
    except OSError:
        return FileEntry(relpath, -1, -1)
    if not stat.S_ISREG(found.st_mode):
        return FileEntry(relpath, -1, found.st_mtime_ns, f"not a regular file ({file_kind(found.st_mode)}); not read")
    return FileEntry(relpath, found.st_size, found.st_mtime_ns)


@contextmanager
def _time_limit(seconds: float):
    """Raise ImageReadError when the block runs past `seconds`. Enforced where signals can be (the main thread
    of a decode worker, or of the CLI when it decodes in-process); elsewhere the block runs unlimited."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(*_):
        raise ImageReadError(f"reading and decoding took longer than {seconds:.0f} s; not read")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_NO_PICTURE = {"thumbnail": None, "picture": None}


class _ImageFiles(Dataset):
    """Reads one file per item: hash, decode, the thumbnail's JPEG bytes (None when the project has that content's
    thumbnail already) and the model picture, (S, S, 3) uint8 RGB as the model's `picture_transform` leaves it.
    Runs in the ingest process or in decode worker processes."""

    def __init__(self, images_root: Path, entries: list[FileEntry], thumbs_dir: Path, image_size: int,
                 picture_transform: Callable):
        self.images_root, self.entries, self.thumbs_dir, self.image_size = images_root, entries, thumbs_dir, image_size
        self.picture_transform = picture_transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        def thumbnail_and_picture(base, sha256: str) -> dict:
            known = thumbnail_path(self.thumbs_dir, sha256).exists()
            return {"thumbnail": None if known else thumbnail_jpeg(base),
                    "picture": np.asarray(self.picture_transform(model_picture(base, self.image_size)))}

        return read_entry(self.images_root, self.entries[index], self.image_size, thumbnail_and_picture,
                          empty=_NO_PICTURE)


def read_entry(images_root: Path, entry: FileEntry, image_size: int, finish: Callable[[np.ndarray, str], dict],
               *, empty: dict) -> dict:
    """The bad-file rules of every ingest engine (local and Ray): hash and decode one file, shrink it once, then
    `finish(base, sha256)` makes the thumbnail and model input from the shrunk picture and returns the fields it
    adds (`empty` holds them for a bad file). A file that is not a usable image, whatever step fails, comes back
    with status error and its reason; it never stops the run."""
    record = {"relpath": entry.relpath, "size": entry.size, "mtime_ns": entry.mtime_ns, "sha256": None,
              "width": None, "height": None, "status": "ok", "error": None, **empty}
    try:
        if entry.problem:
            raise ImageReadError(entry.problem)
        path = images_root / entry.relpath
        if path.is_symlink() and not path.resolve().is_relative_to(images_root.resolve()):
            raise ImageReadError("symlink points outside the images folder; not read")
        with _time_limit(DECODE_SECONDS):
            image = read_image(path)
            # One area resize of the full picture feeds both the thumbnail and the model input.
            base = shrink_shorter_side(image.pixels, max(image_size, THUMBNAIL_SIDE))
            added = finish(base, image.sha256)
        record.update(sha256=image.sha256, size=image.size, width=image.pixels.shape[1],
                      height=image.pixels.shape[0], **added)
    except ImageReadError as error:
        record.update(status="error", error=str(error), **empty)
    except Exception as error:  # an unexpected decoder failure is still one bad file, not a failed ingest
        record.update(status="error", error=f"cannot decode: {type(error).__name__}: {error}", **empty)
    return record


def _keep_records(batch: list[dict]) -> list[dict]:
    return batch


def plan_ingest(project: Project, model: LoadedModel, *, verify: bool = False) -> tuple[IngestReport, list[FileEntry]]:
    """Scan the images folder against the project: mark vanished files missing, count what is new or changed, and
    list the files to read (new, changed, or without a vector for `model`). A file is changed when its size or
    modification time is; with `verify`, also when its content hash is (a replacement that kept both). Shared by
    every ingest engine."""
    store, images_root = project.store, project.images_root
    if not images_root.is_dir():
        raise LabelloopError(f"images folder {images_root} is gone; restore it (nothing in the project was changed)")
    store.register_model(model.model_id, model.spec.text, model.dim)
    store.set_meta(model_id=model.model_id)
    report = IngestReport()
    known = store.image_index()
    entries, report.projects_skipped = scan_images(images_root, exclude=project.root)
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
        elif row[4] == "missing" or (row[2], row[3]) != (entry.size, entry.mtime_ns) or (
                verify and row[4] == "ok" and _content_differs(images_root / entry.relpath, row[1])):
            report.changed += 1
        elif entry.relpath not in needs_vector:
            continue
        todo.append(entry)
    return report, todo


def _content_differs(path: Path, sha256: str) -> bool:
    """Whether the file at `path` no longer holds the content `sha256`; one that cannot be read differs (reading it
    again records why)."""
    try:
        return file_sha256(path) != sha256
    except OSError:
        return True


def ingest(project: Project, model: LoadedModel, *, batch_size: int = 64, workers: int | None = None,
           progress: Progress | None = None, verify: bool = False) -> IngestReport:
    """Bring the project up to date with its images folder. Idempotent: a second run reads nothing unchanged;
    `verify` hashes every known file again (plan_ingest).
    `progress(done, total)` is also called every POLL_SECONDS while decode workers are busy: a callback that
    raises (a cancelled job) stops the ingest at once, and its worker processes with it."""
    if batch_size < 1:
        raise LabelloopError(f"--batch-size must be at least 1, got {batch_size}")
    if workers is not None and workers < 0:
        raise LabelloopError(f"--workers must be 0 (decode in this process) or more, got {workers}")
    started = time.perf_counter()
    store, images_root = project.store, project.images_root
    report, todo = plan_ingest(project, model, verify=verify)
    embedded_shas = store.embedded_shas(model.model_id)
    # Decoding starts here, beside the model: one batch ahead of it, it is hidden whenever it takes less time than
    # the model. Decode worker processes (spawned: a fresh interpreter importing torch, 3-10 s on 2 busy cores)
    # take over the files left after the first batch when `workers` asks for them, or, by default, once decoding
    # here takes more than half the model's time per image (a small model, or a GPU) and enough files are left to
    # repay their start (IngestTimings.workers_pay_off); outside the main thread, from the start.
    here = _ImageFiles(images_root, todo, project.thumbs_dir, model.image_size, model.picture_transform)
    timings = IngestTimings()
    done = 0
    waiting = (lambda: progress(done, len(todo))) if progress else None
    stall_seconds = DECODE_SECONDS * batch_size  # a batch of files each at the limit; longer: stuck in C code
    prompts = stale_classifier_prompts(store, model.model_id)
    previous_threads = torch.get_num_threads()
    # the model's threads: the cores decode workers leave (set again in the model thread once workers start)
    threads = cores_left_to_the_model(workers or 0)
    torch.set_num_threads(threads)
    model_thread = ThreadPoolExecutor(1, thread_name_prefix="labelloop-model", initializer=torch.set_num_threads,
                                      initargs=(threads,))

    # DECODE_SECONDS holds a file read here only in the main thread (an alarm); elsewhere (a job of the server)
    # decoding stays in worker processes, whose stall guard also catches a decoder looping inside C.
    limited_here = threading.current_thread() is threading.main_thread()

    def workers_for_the_rest(position: int) -> int:
        """How many decode workers take over the files left (0: go on decoding here)."""
        if workers is not None:
            return workers
        if not limited_here:
            return default_workers()
        return default_workers() if timings.workers_pay_off(len(todo) - position) else 0

    def batches():
        position = 0
        while position < len(todo) and not ((position or not limited_here) and workers_for_the_rest(position)):
            started_decoding = time.perf_counter()
            batch = [here[index] for index in range(position, min(position + batch_size, len(todo)))]
            timings.decoded(len(batch), time.perf_counter() - started_decoding)
            position += len(batch)
            yield batch
        if position < len(todo):
            report.decode_workers = workers_for_the_rest(position)
            model_thread.submit(torch.set_num_threads, cores_left_to_the_model(report.decode_workers))
            yield from _batches(iter(_loader(images_root, todo[position:], project.thumbs_dir, model, batch_size,
                                             report.decode_workers)), waiting, stall_seconds)

    def encode(pictures: np.ndarray) -> np.ndarray:
        started_encoding = time.perf_counter()
        vectors = model.encode_pictures(pictures)
        timings.encoded(len(pictures), time.perf_counter() - started_encoding)
        return vectors

    try:
        classifier = model_thread.submit(build_zero_shot_classifier, model, prompts) if prompts else None
        embedding: tuple[list[dict], list[dict], Future | None] | None = None  # the batch the model is on
        for batch in batches():
            to_embed = _new_contents(batch, embedded_shas, project.thumbs_dir, report)
            vectors = model_thread.submit(encode, np.stack([r["picture"] for r in to_embed])) if to_embed else None
            if embedding:
                done += _write_batch(store, model, *embedding, report)
                if progress:
                    progress(done, len(todo))
            embedding = (batch, to_embed, vectors)
        if embedding:
            done += _write_batch(store, model, *embedding, report)
            if progress:
                progress(done, len(todo))
        store.fill_duplicate_embeddings(model.model_id)
        report.predicted = run_zero_shot(store, model, weights=classifier.result() if classifier else None)
        store_pca_layout(store, model.model_id)  # the first look at the map reads it
    finally:
        model_thread.shutdown(wait=True, cancel_futures=True)  # a cancelled run waits for the batch the model is on
        torch.set_num_threads(previous_threads)
    report.folder_labels = after_ingest(project)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


class IngestTimings:
    """Seconds per image of decoding here and of the model, as measured during an ingest."""

    def __init__(self):
        self.decode_seconds, self.decoded_images, self.encode_seconds, self.encoded_images = 0.0, 0, 0.0, 0
        self.lock = threading.Lock()

    def decoded(self, images: int, seconds: float) -> None:
        with self.lock:
            self.decoded_images, self.decode_seconds = self.decoded_images + images, self.decode_seconds + seconds

    def encoded(self, images: int, seconds: float) -> None:
        with self.lock:
            self.encoded_images, self.encode_seconds = self.encoded_images + images, self.encode_seconds + seconds

    def workers_pay_off(self, files_left: int) -> bool:
        """Whether decode workers would end the ingest sooner: decoding here takes more than half the model's time
        per image, and the files left would keep this process decoding for over twice WORKER_START_SECONDS (not
        known until the model has encoded a batch: then not)."""
        with self.lock:
            if not (self.decoded_images and self.encoded_images):
                return False
            decode_each = self.decode_seconds / self.decoded_images
            return (2 * decode_each > self.encode_seconds / self.encoded_images
                    and decode_each * files_left > 2 * WORKER_START_SECONDS)


def _loader(images_root: Path, entries: list[FileEntry], thumbs_dir: Path, model: LoadedModel, batch_size: int,
            workers: int) -> DataLoader:
    """Decode worker processes over `entries`. Spawned, not forked: a fork of a process whose OpenMP pool already
    ran (torch, in a server or after a round) can deadlock in the child."""
    return DataLoader(_ImageFiles(images_root, entries, thumbs_dir, model.image_size, model.picture_transform),
                      batch_size=batch_size, num_workers=workers, collate_fn=_keep_records,
                      worker_init_fn=quiet_worker, multiprocessing_context="spawn", persistent_workers=False,
                      timeout=POLL_SECONDS)


def _new_contents(batch: list[dict], embedded_shas: set[str], thumbs_dir: Path, report: IngestReport) -> list[dict]:
    """The records of `batch` whose content has no vector yet (each content once); counts the errors and the
    reused contents in `report` and saves the thumbnails the decoding made."""
    to_embed = []
    for record in batch:
        if record["status"] == "error":
            report.errors += 1
            report.error_paths.append(record["relpath"])
            continue
        if record["thumbnail"] is not None:
            save_thumbnail(record["thumbnail"], thumbnail_path(thumbs_dir, record["sha256"]))
        if record["sha256"] in embedded_shas:
            report.reused += 1
        else:
            embedded_shas.add(record["sha256"])
            to_embed.append(record)
    return to_embed


def _write_batch(store, model: LoadedModel, batch: list[dict], to_embed: list[dict], vectors: Future | None,
                 report: IngestReport) -> int:
    """Write one batch's image rows and, once the model has them, its vectors, in one transaction; returns the
    number of files the batch held."""
    found = vectors.result() if vectors else np.zeros((0, model.dim), np.float32)
    store.write_ingest_batch(_image_rows(batch), model.model_id, [r["relpath"] for r in to_embed], found)
    report.embedded += len(to_embed)
    return len(batch)


def cores_left_to_the_model(workers: int) -> int:
    """The model's intra-op threads for an ingest: the cores the decode workers leave. More threads than free cores
    spin against the decoders: on 2 busy cores with one decode worker, the demo model embedded at 70-270 images/s
    with 2 threads and 600-700 with 1."""
    return max(1, (os.cpu_count() or 1) - workers)


def _batches(iterator, waiting: Callable[[], None] | None, stall_seconds: float):
    """The batches of a DataLoader's `iterator` (made by the caller: making it starts the workers). With worker
    processes the loader gives up waiting every POLL_SECONDS (its iterator resumes where it was): `waiting()` runs
    then, and workers that send nothing for `stall_seconds` end the run with one line. Leaving early drops the
    iterator, which stops the workers."""
    waited = 0.0
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as error:
            if "timed out" not in str(error):
                raise
            waited += POLL_SECONDS
            if waited >= stall_seconds:
                raise LabelloopError(f"no image was decoded for {stall_seconds:.0f} s (a file on a hung network "
                                     "drive?); what was ingested is kept; fix or move the file, then run ingest "
                                     "again") from None
            if waiting:
                waiting()
            continue
        waited = 0.0
        yield batch


def _image_rows(batch: list[dict]) -> pa.Table:
    columns = ("relpath", "sha256", "size", "mtime_ns", "width", "height", "status", "error")
    types = (pa.string(), pa.string(), pa.int64(), pa.int64(), pa.int32(), pa.int32(), pa.string(), pa.string())
    return pa.table({name: pa.array([record[name] for record in batch], kind) for name, kind in zip(columns, types)})
