"""The map's figures on synthetic 512-d embeddings, one JSON line each, with the machine's load average beside
them (a shared machine: a busy one is slower):

- `map_layout`: seconds of the PCA layout and of the UMAP layout (engine.learning.map_layout) of N images, the
  first one in a process (numba compiling UMAP's kernels, what the first map of a server waits for) apart. UMAP is
  fitted on at most UMAP_LANDMARKS images and places the rest among their nearest landmarks. UMAP reports to a job
  record as the map job does: `eta` lists [seconds in, seconds left shown, seconds left in truth] at each report
  with an ETA, and `eta_worst_error` the largest |shown / truth - 1| among those more than a second from the end;
- `map_fidelity`: whether the landmark layout is as good for selecting on the map as UMAP fitted on every image:
  on the demo set (its model's embeddings of its 1,500 images, 8 shapes) and on N planted 512-d embeddings (20
  classes), each layout's class separation (share of images whose 10 nearest on the map mostly share their class:
  what a lasso around a group picks up) and kNN preservation (share of each image's 10 nearest neighbours among
  the embeddings that are among its 10 nearest on the map), with the landmarks as the same share of the images
  as at 100k (UMAP_LANDMARKS / 100,000);
- `map_draw`: the real page served over an N-image project (planted embeddings and zero-shot), in Debian's
  Chromium at 1280×800: milliseconds from opening the Map tab until Plotly has drawn every point (the first open
  computes and stores the PCA layout; a change of colouring reads it back).

    python -m benchmarks.bench_map [--layout 100000 1000000] [--umap 100000] [--fidelity 20000] [--draw 100000]

bench_discovery.py calls `layout_figures` and `draw_figures`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.jobs.runner import JobContext
from engine.learning.map_layout import UMAP_INPUT_DIMS, UMAP_LANDMARKS, pca_components, pca_layout, umap_layout
from storage import Store
from tests.synthetic import planted_embeddings

# Resolves with the milliseconds until the plot holds `expected` points and a trace named `name`.
DRAWN = """([expected, name]) => new Promise(resolve => {
    const start = performance.now();
    const check = () => {
        const plot = document.querySelector('#map-plot [data-testid=plotly]');
        const traces = plot && plot.data ? plot.data.filter(t => t.type === 'scattergl') : [];
        // a numpy array comes as {dtype, bdata}: its length is its bytes over the size of one value
        const count = x => !x ? 0 : x.bdata ? atob(x.bdata).length / Number(x.dtype.slice(1)) : x.length;
        const points = traces.reduce((sum, t) => sum + count(t.x), 0);
        points >= expected && traces.some(t => t.name === name) ? resolve(performance.now() - start)
                                                                : requestAnimationFrame(check); };
    requestAnimationFrame(check); })"""
OPEN_TAB = "[...document.querySelectorAll('button[role=tab]')].find(b => b.innerText.trim() === 'Map').click()"
COLOUR = "[...document.querySelectorAll('#map-colour input')].find(i => i.value === '%s').click()"


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _emit(record: dict) -> dict:
    print(json.dumps({**record, "load_average": _load()}), flush=True)
    return record


def layout_figures(counts: list[int], *, umap_counts: list[int] = ()) -> list[dict]:
    """PCA seconds at each of `counts`, UMAP seconds at each of `umap_counts` (the first UMAP in this process,
    numba's compiling, timed apart)."""
    records = []
    compiled = False
    for count in sorted(set(counts) | set(umap_counts)):
        vectors, _, _ = planted_embeddings(count, 512, 20, seed=3)
        if count in counts:
            started = time.perf_counter()
            pca_layout(vectors)
            records.append(_emit({"benchmark": "map_layout", "method": "pca", "images": count, "dim": 512,
                                  "seconds": round(time.perf_counter() - started, 2)}))
        if count in umap_counts:
            compile_seconds = None
            if not compiled:
                started = time.perf_counter()
                umap_layout(vectors[:300], landmarks=200)
                compile_seconds, compiled = round(time.perf_counter() - started, 1), True
            seconds, eta = _with_eta(lambda progress: umap_layout(vectors, progress=progress))
            records.append(_emit({"benchmark": "map_layout", "method": "umap", "images": count, "dim": 512,
                                  "landmarks": min(count, UMAP_LANDMARKS), "seconds": round(seconds, 2),
                                  "compile_seconds_before": compile_seconds, "eta": eta,
                                  "eta_worst_error": max((round(abs(shown / truth - 1), 3)
                                                          for _, shown, truth in eta if truth > 1), default=None)}))
        del vectors
    return records


def _with_eta(work) -> tuple[float, list[list[float]]]:
    """Seconds `work(progress)` took, reporting to a job record as a job does, and [seconds in, ETA shown] at each
    report that had one, with the seconds that were truly left."""
    store = Store.memory()
    context = JobContext(store.create_job("map", {}), store)
    shown = []

    def progress(fraction: float, message: str) -> None:
        context.progress(fraction, message)
        shown.append((time.perf_counter(), store.jobs()[0]["eta_seconds"]))

    started = time.perf_counter()
    work(progress)
    ended = time.perf_counter()
    return ended - started, [[round(at - started, 2), round(eta, 2), round(ended - at, 2)]
                             for at, eta in shown if eta is not None]


def fidelity_figures(planted: int) -> list[dict]:
    """Class separation and kNN preservation of PCA, UMAP on every image and the landmark UMAP, on the demo set
    and on `planted` planted embeddings."""
    records = []
    for name, (vectors, classes) in (("demo", _demo_embeddings()),
                                     (f"planted_{planted}", planted_embeddings(planted, 512, 20, seed=6)[:2])):
        landmarks = max(100, round(len(vectors) * UMAP_LANDMARKS / 100_000))
        reduced = pca_components(vectors, UMAP_INPUT_DIMS)
        for method, layout in (("pca", lambda: pca_layout(vectors)),
                               ("umap_all", lambda: umap_layout(vectors, landmarks=len(vectors))),
                               ("umap_landmarks", lambda: umap_layout(vectors, landmarks=landmarks))):
            started = time.perf_counter()
            xy = layout()
            seconds = time.perf_counter() - started
            records.append(_emit({"benchmark": "map_fidelity", "set": name, "images": len(vectors),
                                  "method": method, "landmarks": landmarks if method == "umap_landmarks" else None,
                                  "class_separation": round(_class_separation(xy, classes), 3),
                                  "knn_preservation": round(_knn_preservation(reduced, xy), 3),
                                  "seconds": round(seconds, 1)}))
    return records


def _demo_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """The demo model's embeddings of the demo set's images, and each image's shape."""
    from engine.demo.dataset import GROUND_TRUTH, read_ground_truth
    from engine.demo.setup import prepare_demo
    from engine.project.folder import open_project

    with tempfile.TemporaryDirectory() as scratch:
        root, _ = prepare_demo(Path(scratch))
        truth = read_ground_truth(Path(scratch) / GROUND_TRUTH)
        with open_project(root) as project:
            store = project.store
            image_ids, vectors = store.embeddings(store.get_meta("model_id"))
            relpaths = store.relpaths()
    names = sorted(set(truth.values()))
    return vectors, np.array([names.index(truth[relpaths[i]]) for i in image_ids.tolist()])


def _nearest(points: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The `k` nearest rows of `points` to each of `rows` (itself left out), by Euclidean distance."""
    squared = (points ** 2).sum(axis=1)[None, :] - 2 * points[rows] @ points.T  # less each row's own |p|^2
    squared[np.arange(len(rows)), rows] = np.inf
    return np.argpartition(squared, k, axis=1)[:, :k]


def _class_separation(xy: np.ndarray, classes: np.ndarray, *, k: int = 10, sample: int = 2000) -> float:
    """Share of `sample` images whose `k` nearest on the map mostly share their class."""
    rows = np.random.default_rng(0).choice(len(xy), min(sample, len(xy)), replace=False)
    votes = classes[_nearest(np.asarray(xy, np.float64), rows, k)]
    return float(np.mean([np.bincount(v).argmax() == c for v, c in zip(votes, classes[rows])]))


def _knn_preservation(reduced: np.ndarray, xy: np.ndarray, *, k: int = 10, sample: int = 2000) -> float:
    """Mean share of each of `sample` images' `k` nearest in `reduced` that are among its `k` nearest on the map."""
    rows = np.random.default_rng(0).choice(len(xy), min(sample, len(xy)), replace=False)
    near = _nearest(np.asarray(reduced, np.float64), rows, k)
    near_on_map = _nearest(np.asarray(xy, np.float64), rows, k)
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(near, near_on_map)]))


def draw_figures(counts: list[int], *, samples: int = 3) -> list[dict]:
    """Milliseconds from opening the Map tab to every point drawn, at each of `counts` images."""
    from playwright.sync_api import sync_playwright

    from app.map_tab import MAX_POINTS
    from tests.browser import CHROMIUM, CHROMIUM_ARGS, open_page, served
    from tests.synthetic import synthetic_project
    from tests.tiny_model import make_tiny_model

    records = []
    for count in counts:
        x, _, text = planted_embeddings(count, 512, 20, seed=5)
        with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
            scratch = Path(scratch)
            project = synthetic_project(scratch / "p", scratch / "images", make_tiny_model(scratch / "m"), x, text)
            root = project.root
            project.close()
            del x
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            with served(root) as (url, workspace):
                workspace.map.umap = False  # the draw is measured, not a UMAP job competing for the cores
                page = open_page(browser, url, 1280, 800)
                expected = min(count, MAX_POINTS)
                first = _timed(page, OPEN_TAB, expected, "class00")
                redraws = []  # colour by status, then by class again: the stored layout drawn anew
                for sample in range(samples):
                    colour, name = ("status", "unlabeled") if sample % 2 == 0 else ("class", "class00")
                    redraws.append(_timed(page, COLOUR % colour, expected, name))
                browser.close()
        records.append(_emit({"benchmark": "map_draw", "images": count, "points_drawn": expected,
                              "viewport": "1280x800", "first_open_ms": round(first),
                              "redraw_ms": sorted(round(ms) for ms in redraws),
                              "target_2s": bool(first <= 2000 and max(redraws) <= 2000)}))
    return records


def _timed(page, action: str, expected: int, name: str) -> float:
    return page.evaluate(f"(a) => {{ const drawn = ({DRAWN})(a); {action}; return drawn; }}", [expected, name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", type=int, nargs="*", default=[100_000, 1_000_000], help="PCA at these sizes")
    parser.add_argument("--umap", type=int, nargs="*", default=[100_000], help="UMAP at these sizes")
    parser.add_argument("--fidelity", type=int, default=20_000,
                        help="planted images the landmark UMAP is compared with UMAP on every image (0: none)")
    parser.add_argument("--draw", type=int, nargs="*", default=[100_000], help="browser draw at these sizes")
    parser.add_argument("--samples", type=int, default=3, help="redraws timed at each size")
    args = parser.parse_args()
    layout_figures(args.layout, umap_counts=args.umap)
    if args.fidelity:
        fidelity_figures(args.fidelity)
    draw_figures(args.draw, samples=args.samples)


if __name__ == "__main__":
    main()
