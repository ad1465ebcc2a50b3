"""Finding images at scale: text search, "more like this" and near-duplicate groups over synthetic 100k and 1M ×
512-d embeddings in a real DuckDB project (tests/synthetic.py, as benchmarks/bench_scale.py builds it), timed through
`Discovery` (what `Workspace.discovery` is) and `Workspace.view.gallery`: exactly what the page calls. Prints one
JSON line per measurement with the load average beside it (the machine is shared), then a summary line with the
targets.

    python -m benchmarks.bench_discovery [--sizes 100000,1000000] [--repeats 10] [--demo] [--map] [--map-umap]

Targets on the 2-core development machine: text search and more-like-this ≤ 300 ms at 1M (median, engine call plus
the gallery page it fills); duplicate groups over 1M ≤ 120 s.

`--demo` also measures what the default duplicate threshold rests on: on the demo (demo model), the cosine of the
closest pair of distinct drawings and of planted copies (exact, enlarged, re-compressed, shrunk) to their originals.

`--map` adds the Map tab's figures from benchmarks/bench_map.py: PCA layout time at each size and the browser time
to draw the map at 100k points in Chromium (target ≤ 2 s); `--map-umap` also fits UMAP on 100k (about 15 minutes
here).

Each measurement is a function; `main` calls them in turn (add new figures as functions of their own).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.find import SEARCH_RESULTS
from engine.project.discovery import Discovery
from engine.views.gallery import GalleryQuery, Subset
from engine.learning.models import LoadedModel, load_model, parse_model_spec
from engine.session.workspace import Workspace
from tests.synthetic import MODEL_ID, planted_embeddings, synthetic_project
from tests.tiny_model import make_tiny_model

TARGETS_MS = {"text_search": 300, "more_like_this": 300, "duplicates": 120_000}
DIM = 512
COPY_NOISE = 0.05  # planted near-copies: an original plus this much noise (cosine about 0.999 to it)


def emit(measure: str, images: int, seconds: list[float], **extra) -> float:
    """Print one JSON line (median and max in ms, the load average now) and return the median in ms."""
    median = 1000 * statistics.median(seconds)
    line = {"benchmark": "discovery", "measure": measure, "images": images, "median_ms": round(median, 1),
            "max_ms": round(1000 * max(seconds), 1), "n": len(seconds),
            "load_average": [round(v, 2) for v in os.getloadavg()], **extra}
    if measure in TARGETS_MS:
        line.update(target_ms=TARGETS_MS[measure], meets_target=median <= TARGETS_MS[measure])
    print(json.dumps(line), flush=True)
    return median


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@dataclass
class LiftedTextTower:
    """The demo model's text tower with its 128-d output lifted to the synthetic project's 512 dimensions by a fixed
    random matrix: a query costs the real text encoding, then a search over the synthetic vectors."""

    model: LoadedModel
    lift: np.ndarray  # (128, DIM)
    model_id: str = MODEL_ID

    @property
    def spec(self):
        return self.model.spec

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        lifted = self.model.encode_texts(texts) @ self.lift
        return (lifted / np.linalg.norm(lifted, axis=1, keepdims=True)).astype(np.float32)


def build_workspace(folder: Path, images: int) -> tuple[Workspace, Discovery, np.ndarray]:
    """A project of `images` synthetic 512-d embeddings, the last 1 in 1000 planted near-copies of the first ones;
    returns its workspace, a Discovery whose text tower is the lifted demo one, and the (original, copy) image id
    pairs."""
    copies = max(1, images // 1000)
    x, _, text = planted_embeddings(images - copies, DIM, 20, seed=11)
    rng = np.random.default_rng(3)
    planted = x[:copies] + COPY_NOISE * rng.standard_normal((copies, DIM)).astype(np.float32) / np.sqrt(DIM)
    x = np.concatenate([x, planted / np.linalg.norm(planted, axis=1, keepdims=True)])
    project = synthetic_project(folder / "p", folder / "images", make_tiny_model(folder / "m"), x, text)
    pairs = np.stack([np.arange(copies) + 1, np.arange(images - copies, images) + 1], axis=1)  # ids count from 1
    demo = load_model(parse_model_spec("demo"))
    tower = LiftedTextTower(demo, np.random.default_rng(5).standard_normal((demo.dim, DIM)).astype(np.float32))
    return Workspace(project), Discovery(project, lambda: tower), pairs


def measure_vectors_load(discovery: Discovery, images: int) -> None:
    """The first search reads every vector from DuckDB into memory (once per ingest)."""
    emit("vectors_load", images, [timed(discovery.vectors)])


def measure_text_search(workspace: Workspace, discovery: Discovery, images: int, repeats: int) -> float:
    """Text search as the page runs it: the query through the text tower, the best SEARCH_RESULTS matches, and the
    first gallery page over them (sort "best match")."""
    queries = [f"a drawing of shape number {i}" for i in range(repeats)]
    engine, page = [], []
    for query in queries:
        started = time.perf_counter()
        matches = discovery.search_text(query, SEARCH_RESULTS)
        engine.append(time.perf_counter() - started)
        subset = Subset(f"search: {query!r}", tuple(m.image_id for m in matches), tuple(m.score for m in matches))
        workspace.view.gallery(GalleryQuery(subset=subset, sort="match"))
        page.append(time.perf_counter() - started)
    emit("text_search_engine", images, engine)
    return emit("text_search", images, page)


def measure_more_like_this(workspace: Workspace, discovery: Discovery, images: int, repeats: int) -> float:
    """"More like this" as the page runs it: an image's SEARCH_RESULTS nearest neighbours, then the gallery page."""
    image_ids = np.random.default_rng(9).choice(np.arange(1, images + 1), repeats, replace=False).tolist()
    engine, page = [], []
    for image_id in image_ids:
        started = time.perf_counter()
        matches = discovery.search_like(image_id, SEARCH_RESULTS)
        engine.append(time.perf_counter() - started)
        subset = Subset("like", tuple(m.image_id for m in matches), tuple(m.score for m in matches))
        workspace.view.gallery(GalleryQuery(subset=subset, sort="match"))
        page.append(time.perf_counter() - started)
    emit("more_like_this_engine", images, engine)
    return emit("more_like_this", images, page)


def measure_duplicates(discovery: Discovery, images: int, pairs: np.ndarray) -> float:
    """Duplicate groups with the vectors in memory (the page after its first search), with the share of planted
    near-copies found in their original's group; then as `labelloop duplicates` runs (the vectors read first)."""
    groups = []
    seconds = timed(lambda: groups.extend(discovery.duplicates()))
    group_of = {m.image_id: number for number, group in enumerate(groups) for m in group.matches}
    found = float(np.mean([group_of.get(a, -1) == group_of.get(b, -2) for a, b in pairs.tolist()]))
    median = emit("duplicates", images, [seconds], groups=len(groups), planted_pairs=len(pairs),
                  planted_found=round(found, 4))
    emit("duplicates_cli", images, [timed(Discovery(discovery.project).duplicates)])
    return median


def measure_demo_threshold(folder: Path) -> None:
    """Cosines behind DUPLICATE_THRESHOLD: on the demo, the closest pair of distinct drawings and each kind of
    planted copy of 10 drawings against its original."""
    import cv2

    from engine.demo.setup import prepare_demo
    from engine.dataset.ingest import ingest
    from engine.project.folder import open_project

    root, _ = prepare_demo(folder)
    images = folder / "images"
    kinds = {
        "exact": lambda name, picture: shutil.copy(images / name, images / f"exact_{name}"),
        "enlarged": lambda name, picture: cv2.imwrite(str(images / f"enlarged_{name}"), cv2.resize(
            picture, (256, 256), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 80]),
        "recompressed": lambda name, picture: cv2.imwrite(str(images / f"recompressed_{name}"), picture,
                                                          [cv2.IMWRITE_JPEG_QUALITY, 50]),
        "shrunk": lambda name, picture: cv2.imwrite(str(images / f"shrunk_{name}"), cv2.resize(
            picture, (96, 96), interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 92]),
    }
    originals = [f"sketch_{i:04d}.jpg" for i in range(0, 1500, 150)]
    for name in originals:
        picture = cv2.imread(str(images / name))
        for plant in kinds.values():
            plant(name, picture)
    with open_project(root) as project:
        ingest(project, load_model(project.model_spec))
        discovery = Discovery(project)
        _, image_ids, vectors = discovery.vectors()
        paths = project.store.relpaths_of(image_ids.tolist())
        row = {paths[i]: r for r, i in enumerate(image_ids.tolist())}
        distinct = np.array([r for p, r in row.items() if p.startswith("sketch_")])
        similar = vectors[distinct] @ vectors[distinct].T
        np.fill_diagonal(similar, -1.0)
        line = {"benchmark": "discovery", "measure": "demo_threshold", "images": len(distinct),
                "distinct_closest_pair": round(float(similar.max()), 4),
                "distinct_pairs_above_0.99": int((np.triu(similar, 1) >= 0.99).sum())}
        for kind in kinds:
            scores = [float(vectors[row[f"{kind}_{name}"]] @ vectors[row[name]]) for name in originals]
            line[f"{kind}_copy_min"] = round(min(scores), 4)
            line[f"{kind}_copy_median"] = round(statistics.median(scores), 4)
        print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated numbers of images (\"\": none)")
    parser.add_argument("--repeats", type=int, default=10, help="timed searches per measure")
    parser.add_argument("--demo", action="store_true", help="also measure the demo's duplicate cosines")
    parser.add_argument("--map", action="store_true", help="also the map's PCA layout and browser draw times")
    parser.add_argument("--map-umap", action="store_true", help="with --map: also UMAP's layout time at 100k")
    args = parser.parse_args()
    summary = {}
    for images in [int(size) for size in args.sizes.split(",") if size]:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            workspace, discovery, pairs = build_workspace(Path(scratch), images)
            print(json.dumps({"benchmark": "discovery", "measure": "build", "images": images,
                              "seconds": round(time.perf_counter() - started, 1)}), flush=True)
            measure_vectors_load(discovery, images)
            summary[images] = {"text_search": measure_text_search(workspace, discovery, images, args.repeats),
                               "more_like_this": measure_more_like_this(workspace, discovery, images, args.repeats),
                               "duplicates": measure_duplicates(discovery, images, pairs)}
            workspace.close()
            workspace.project.close()
    if args.map:
        from benchmarks.bench_map import draw_figures, layout_figures

        layout_figures([int(size) for size in args.sizes.split(",") if size],
                       umap_counts=[100_000] if args.map_umap else [])
        draw_figures([100_000])
    if args.demo:
        with tempfile.TemporaryDirectory() as scratch:
            measure_demo_threshold(Path(scratch))
    print(json.dumps({"benchmark": "discovery", "medians_ms": summary,
                      "meets_targets": {images: {k: v <= TARGETS_MS[k] for k, v in medians.items()}
                                        for images, medians in summary.items()}}), flush=True)


if __name__ == "__main__":
    main()
