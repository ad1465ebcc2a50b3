"""Ingest throughput: decode-only vs full ingest (decode + hash + thumbnail + embed + DB write), same images, same
run. Prints one JSON object.

    python -m benchmarks.bench_ingest [--images 600] [--size 640x480] [--model tiny|demo|SPEC] [--workers N]
                                      [--engine local|ray] [--ray-workers N]

With --engine ray it also ingests the same images into a second project with `--engine ray` on a local Ray
(started once, its start-up timed apart) and prints both rates: on one small machine the figure is Ray's overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from engine.imageio import read_image
from engine.ingest import default_workers, ingest, scan_images
from engine.models import load_model, parse_model_spec
from engine.project import create_project
from tests.imagegen import write_images
from tests.tiny_model import make_tiny_model


class _DecodeOnly(torch.utils.data.Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return read_image(self.paths[index]).pixels.shape


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
    args = parser.parse_args()
    width, height = map(int, args.size.lower().split("x"))
    workers = default_workers() if args.workers is None else args.workers

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        write_images(scratch / "images", args.images, size=(height, width))
        spec_text = str(make_tiny_model(scratch / "tiny")) if args.model == "tiny" else args.model
        paths = [scratch / "images" / entry.relpath for entry in scan_images(scratch / "images")]

        started = time.perf_counter()
        for path in paths:
            read_image(path)
        single = time.perf_counter() - started

        loader = DataLoader(_DecodeOnly(paths), batch_size=args.batch_size, num_workers=workers,
                            collate_fn=lambda batch: batch)
        started = time.perf_counter()
        for _ in loader:
            pass
        decode = time.perf_counter() - started

        project = create_project(scratch / "project", images=scratch / "images", classes="circle,square",
                                 model=spec_text)
        model = load_model(parse_model_spec(spec_text))
        started = time.perf_counter()
        report = ingest(project, model, batch_size=args.batch_size, workers=workers)
        full = time.perf_counter() - started
        project.close()
        ray_figures = _ray_figures(scratch, spec_text, model, args) if args.engine == "ray" else {}

    print(json.dumps({
        "benchmark": "ingest", "images": len(paths), "image_size": args.size, "model": args.model,
        "model_id": model.model_id, "device": str(model.device), "cpus": os.cpu_count(), "workers": workers,
        "embedded": report.embedded,
        "decode_only_images_per_s": _rate(len(paths), decode),
        "decode_only_single_process_images_per_s": _rate(len(paths), single),
        "full_ingest_images_per_s": _rate(len(paths), full),
        "full_over_decode_ratio": round(decode / full, 3),
        **ray_figures,
    }))


def _ray_figures(scratch: Path, spec_text: str, model, args) -> dict:
    """The same images through `ingest --engine ray` on a local Ray; Ray's start-up is timed apart."""
    import ray

    from engine.ray_ingest import ray_ingest

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
