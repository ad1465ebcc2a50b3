"""Ingest throughput: model-only, decode-only and full ingest, same images, same run. Prints one JSON object.

    python -m benchmarks.bench_ingest [--images 600] [--size 640x480] [--model tiny|demo|SPEC] [--workers N]
                                      [--engine local|ray] [--ray-workers N] [--stages] [--repeats N]
                                      [--batch-size N] [--fast-cpu]

Model-only encodes the same images, already preprocessed, in batches of the same size with the threads ingest gives
the model, on the same device: the model's own pace. Decode-only does in decode workers (`--workers`, default cores
- 1, started as ingest starts them) what ingest does to each file before its thumbnail: read, hash, header checks,
decode, the shared shrink and the model's picture. Full ingest adds the thumbnail, the embedding, the database
writes and zero-shot (the first ingest of a project builds its zero-shot classifier). For a real model (ViT-B-32)
the target is full ≥ 0.85 × model-only (`full_over_model_ratio`): decoding, thumbnails and writes hidden behind the
model; for the tiny model, full ≥ 0.8 × decode-only (`full_over_decode_ratio`), the model hidden behind decoding.
Each repeat runs full ingest (`--workers` passed on; by default ingest decides whether to start decode workers),
then the model alone with the threads that ingest gave it, then decode-only; the figures are medians. --stages also
times each step of one file in this process, one thread, in ms per image (where the time goes). The 1-minute load
average is printed with the figures: the machine may be shared.

With --engine ray it also ingests the same images into a second project with `--engine ray` on a local Ray
(started once, its start-up timed apart) and prints both rates: on one small machine the figure is Ray's overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from app.startup import skip_pyarrow_pandas_probe
from engine.files.images import model_picture, quiet_worker
from engine.dataset.ingest import cores_left_to_the_model, default_workers, ingest, read_entry, scan_images
from engine.learning.models import load_model, parse_model_spec
from engine.project.folder import create_project
from tests.imagegen import write_images
from tests.tiny_model import make_tiny_model


class _DecodeOnly(Dataset):
    """Ingest's per-file work up to the model picture (read_entry, as the decode workers run it), no thumbnail."""

    def __init__(self, images_root: Path, entries: list, image_size: int, picture_transform):
        self.images_root, self.entries, self.image_size = images_root, entries, image_size
        self.picture_transform = picture_transform

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, index):
        return read_entry(self.images_root, self.entries[index], self.image_size, self._picture,
                          empty={"picture": None})

    def _picture(self, base: np.ndarray, sha256: str) -> dict:
        return {"picture": np.asarray(self.picture_transform(model_picture(base, self.image_size)))}


def _keep(batch: list) -> list:
    return batch


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the generated images")
    parser.add_argument("--model", default="tiny", help="tiny (random, made here), demo, or any --model spec")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--engine", default="local", help="local, or ray: also time the Ray engine (local Ray)")
    parser.add_argument("--ray-workers", type=int, default=None, help="ray: model actors (default: one per CPU)")
    parser.add_argument("--stages", action="store_true", help="also time each step of one file, ms per image")
    parser.add_argument("--fast-cpu", action="store_true",
                        help="the model as `ingest --fast-cpu` loads it (bfloat16 image tower) for all three; "
                             "benchmarks.bench_fast_cpu prints its speed-up and fidelity")
    parser.add_argument("--repeats", type=int, default=1,
                        help="decode-only then full ingest this many times in turn; medians (load drifts)")
    args = parser.parse_args()
    skip_pyarrow_pandas_probe()  # as `labelloop ingest` starts (the page has pandas loaded already)
    width, height = map(int, args.size.lower().split("x"))
    workers = default_workers() if args.workers is None else args.workers

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        write_images(scratch / "images", args.images, size=(height, width))
        spec_text = str(make_tiny_model(scratch / "tiny")) if args.model == "tiny" else args.model
        entries, _ = scan_images(scratch / "images")
        paths = [scratch / "images" / entry.relpath for entry in entries]
        model = load_model(parse_model_spec(spec_text), fast_cpu=args.fast_cpu)
        decode_only = _DecodeOnly(scratch / "images", entries, model.image_size, model.picture_transform)
        load_before = os.getloadavg()[0]

        started = time.perf_counter()
        pictures = [decode_only[index]["picture"] for index in range(len(decode_only))]
        single = time.perf_counter() - started
        runs = []
        for repeat in range(args.repeats):
            project = create_project(scratch / f"project-{repeat}", images=scratch / "images",
                                     classes="circle,square", model=spec_text)
            full, full_first, report = _ingest_seconds(project, model, args.batch_size, args.workers)
            project.close()
            # the threads ingest gave the model: the cores its decode workers (if it started any) left
            model_threads = cores_left_to_the_model(report.decode_workers)
            alone = _model_only_seconds(model, pictures, args.batch_size, model_threads)
            decode, decode_first = _decode_only_seconds(decode_only, args.batch_size, workers)
            runs.append((alone, decode, full, decode_first, full_first))
        alone, decode, full, decode_first, full_first = (statistics.median(values) for values in zip(*runs))
        stages = _stages(paths, model, scratch / "stage-thumbs") if args.stages else {}
        ray_figures = _ray_figures(scratch, spec_text, model, args) if args.engine == "ray" else {}

    print(json.dumps({
        "benchmark": "ingest", "images": len(paths), "image_size": args.size, "model": args.model,
        "fast_cpu": args.fast_cpu,
        "model_id": model.model_id, "device": str(model.device), "cpus": os.cpu_count(), "workers": workers,
        "embedded": report.embedded, "batch_size": args.batch_size, "ingest_decode_workers": report.decode_workers,
        "model_threads": model_threads,
        "model_only_images_per_s": _rate(len(paths), alone),
        "full_over_model_ratio": round(alone / full, 3),
        "model_ratio_each_repeat": [round(a / f, 3) for a, _, f, _, _ in runs],
        "decode_only_images_per_s": _rate(len(paths), decode),
        "decode_only_single_process_images_per_s": _rate(len(paths), single),
        "full_ingest_images_per_s": _rate(len(paths), full),
        "full_over_decode_ratio": round(decode / full, 3),
        "ratio_each_repeat": [round(d / f, 3) for _, d, f, _, _ in runs],
        # the decode worker's start-up (a fresh interpreter importing torch) is in both rates
        "decode_only_first_batch_s": round(decode_first, 2), "full_first_batch_s": round(full_first, 2),
        "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **stages, **ray_figures,
    }))


def _model_only_seconds(model, pictures: list[np.ndarray], batch_size: int, threads: int) -> float:
    """Seconds the model alone takes to encode `pictures`, preprocessed beforehand, in batches of `batch_size` with
    `threads` intra-op threads (one warm-up batch first, untimed)."""
    batches = [model.preprocess_pictures(np.stack(pictures[start:start + batch_size]))
               for start in range(0, len(pictures), batch_size)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    model.encode_images(batches[0][:2])
    started = time.perf_counter()
    for batch in batches:
        model.encode_images(batch)
    seconds = time.perf_counter() - started
    torch.set_num_threads(previous)
    return seconds


def _decode_only_seconds(decode_only: Dataset, batch_size: int, workers: int) -> tuple[float, float]:
    """(seconds for all files, seconds to the first batch) in decode workers started as ingest starts them."""
    loader = DataLoader(decode_only, batch_size=batch_size, num_workers=workers, collate_fn=_keep,
                        worker_init_fn=quiet_worker if workers else None,
                        multiprocessing_context="spawn" if workers else None)
    started, first_batch = time.perf_counter(), None
    for _ in loader:
        first_batch = first_batch or time.perf_counter() - started
    return time.perf_counter() - started, first_batch or 0.0


def _ingest_seconds(project, model, batch_size: int, workers: int | None) -> tuple[float, float, object]:
    """(seconds for the whole ingest, seconds to its first batch, its report)."""
    first_batch = []

    def progress(done: int, total: int) -> None:
        if done and not first_batch:
            first_batch.append(time.perf_counter() - started)

    started = time.perf_counter()
    report = ingest(project, model, batch_size=batch_size, workers=workers, progress=progress)
    return time.perf_counter() - started, (first_batch or [0.0])[0], report


def _stages(paths: list[Path], model, thumbs: Path) -> dict:
    """Milliseconds per image of each step ingest takes for a file, run one after another in this process with one
    thread (the split between decode workers and this process is ingest's; this is where the time goes)."""
    import hashlib

    from engine.files.images import probe_header, decode_image, save_thumbnail, shrink_shorter_side, thumbnail_jpeg

    cv2_threads, torch_threads = _single_threaded()
    totals: dict[str, float] = {}
    pictures = []

    def timed(name: str, step, *inputs):
        started = time.perf_counter()
        result = step(*inputs)
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - started
        return result

    for number, path in enumerate(paths):
        data = timed("read", Path.read_bytes, path)
        timed("sha256", lambda: hashlib.sha256(data).hexdigest())
        timed("header", probe_header, data)
        pixels = timed("decode incl. header", decode_image, data)
        base = timed("shrink", shrink_shorter_side, pixels, max(model.image_size, 256))
        jpeg = timed("thumbnail encode", thumbnail_jpeg, base)
        timed("thumbnail write", save_thumbnail, jpeg, thumbs / f"{number}.jpg")
        pictures.append(timed("model picture", lambda: np.asarray(model.picture_transform(
            model_picture(base, model.image_size)))))
    for start in range(0, len(pictures), 64):
        batch = timed("preprocess (batches of 64)", model.preprocess_pictures, np.stack(pictures[start:start + 64]))
        timed("embed (batches of 64)", model.encode_images, batch)
    _single_threaded(cv2_threads, torch_threads)
    return {"stages_ms_per_image": {name: round(1000 * seconds / len(paths), 2) for name, seconds in totals.items()}}


def _single_threaded(cv2_threads: int = 1, torch_threads: int = 1) -> tuple[int, int]:
    import cv2

    previous = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(cv2_threads)
    torch.set_num_threads(torch_threads)
    return previous


def _ray_figures(scratch: Path, spec_text: str, model, args) -> dict:
    """The same images through `ingest --engine ray` on a local Ray; Ray's start-up is timed apart."""
    import ray

    from engine.dataset.ray_ingest import ray_ingest

    actors = args.ray_workers or os.cpu_count() or 1
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    start_up = time.perf_counter() - started
    project = create_project(scratch / "ray-project", images=scratch / "images", classes="circle,square",
                             model=spec_text)
    started = time.perf_counter()
    report = ray_ingest(project, model, workers=actors, batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    project.close()
    ray.shutdown()
    return {"ray_actors": actors, "ray_start_seconds": round(start_up, 1), "ray_embedded": report.embedded,
            "ray_ingest_images_per_s": _rate(report.found, seconds)}


if __name__ == "__main__":
    main()
