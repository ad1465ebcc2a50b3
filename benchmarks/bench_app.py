"""Server time of the labeling page on a 100,000-image project (planted embeddings and zero-shot predictions,
one real thumbnail hard-linked under every image's name). Prints one JSON object.

    python -m benchmarks.bench_app [--images 100000] [--pages 20] [--writes 50]

`gallery_page_ms`: one filtered, sorted page of 48 as the page's handler asks for it (GalleryView.gallery) plus
the gallery's HTML. `cold` pages are read for the first time; `warm` pages were read before. `label_write_ms`: one
human label written (with its label_events row); `keypress_label_and_page_ms`: that plus the page shown again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from engine.files.images import thumbnail_path
from engine.views.gallery import PAGE_SIZE, GalleryQuery
from engine.session.workspace import Workspace
from tests.synthetic import planted_embeddings, planted_relpath, planted_sha256, synthetic_project
from tests.tiny_model import make_tiny_model

QUERIES = [
    GalleryQuery(sort="confidence_up"),
    GalleryQuery(sort="confidence_down", min_confidence=0.5),
    GalleryQuery(class_name="class03", sort="confidence_up"),
    GalleryQuery(status="unlabeled", sort="name"),
    GalleryQuery(min_confidence=0.2, max_confidence=0.6, sort="confidence_down"),
    GalleryQuery(sort="queue"),
]


def link_thumbnails(project, count: int) -> None:
    """A 256-px thumbnail for every planted image (tests/synthetic.py), under its content's key as ingest leaves
    them (one file, hard-linked: same bytes to read)."""
    pixels = (np.random.default_rng(0).random((192, 256, 3)) * 255).astype(np.uint8)
    for index in range(count):
        if index % 50_000 == 0:  # file systems cap the links to one file (ext4: 65,000)
            source = project.root / f"sample{index}.jpg"
            cv2.imwrite(str(source), pixels)
        target = thumbnail_path(project.thumbs_dir, planted_sha256(planted_relpath(index)))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)


def _ms(seconds: list[float]) -> dict:
    return {"median": round(1000 * statistics.median(seconds), 1), "max": round(1000 * max(seconds), 1),
            "n": len(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=20, help="pages timed per kind (cold, warm)")
    parser.add_argument("--writes", type=int, default=50)
    args = parser.parse_args()

    from app.gallery_html import ShownPage, gallery_html

    x, _, text = planted_embeddings(args.images, 512, 20, seed=5)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        project = synthetic_project(scratch / "p", scratch / "images", make_tiny_model(scratch / "m"), x, text)
        link_thumbnails(project, args.images)
        setup = time.perf_counter() - started
        workspace = Workspace(project)
        started = time.perf_counter()
        workspace.view.gallery(GalleryQuery(sort="queue", page_size=1))
        queue_seconds = time.perf_counter() - started  # ranking the review queue, once per round or label change

        def one_page(query: GalleryQuery) -> float:
            started = time.perf_counter()
            page = workspace.view.gallery(query)
            gallery_html(ShownPage(page.items, "", page.following), None)
            return time.perf_counter() - started

        queries = [replace(QUERIES[i % len(QUERIES)], offset=i * PAGE_SIZE) for i in range(args.pages)]
        cold = [one_page(query) for query in queries]
        warm = [one_page(query) for query in queries]
        rng = np.random.default_rng(1)
        writes, keypresses = [], []
        for image_id in rng.choice(np.arange(1, args.images + 1), args.writes, replace=False).tolist():
            started = time.perf_counter()
            workspace.labeling.label([image_id], f"class{image_id % 20:02d}")
            writes.append(time.perf_counter() - started)
            one_page(queries[0])  # what a keypress does next: the page again, with the new tile
            keypresses.append(time.perf_counter() - started)
        started = time.perf_counter()
        workspace.view.header()
        header_seconds = time.perf_counter() - started
        workspace.close()
        project.close()

    result = {
        "benchmark": "app", "images": args.images, "setup_seconds": round(setup, 1),
        "gallery_page_ms": {"cold": _ms(cold), "warm": _ms(warm)},
        "label_write_ms": _ms(writes),
        "keypress_label_and_page_ms": _ms(keypresses),
        "review_queue_rank_seconds": round(queue_seconds, 2),
        "header_poll_ms": round(1000 * header_seconds, 1),
        "targets": {"gallery_page_median_at_most_300ms": statistics.median(cold) <= 0.3,
                    "label_write_median_at_most_50ms": statistics.median(writes) <= 0.05},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
