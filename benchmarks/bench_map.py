"""The map's figures on synthetic 512-d embeddings, one JSON line each, with the machine's load average beside
them (a shared machine: a busy one is slower):

- `map_layout`: seconds of the PCA layout and of the UMAP layout (engine.learning.map_layout) of N images. UMAP is
  fitted on at most UMAP_FIT_SIZE images and places the rest with umap-learn's `transform`; `--umap-place` times
  placing that many more on top of a fit, so the cost of a larger map is fit + (N - fit) at the measured rate;
- `map_draw`: the real page served over an N-image project (planted embeddings and zero-shot), in Debian's
  Chromium at 1280×800: milliseconds from opening the Map tab until Plotly has drawn every point (the first open
  computes and stores the PCA layout; a change of colouring reads it back).

    python -m benchmarks.bench_map [--layout 100000 1000000] [--umap 100000] [--umap-place 65536] [--draw 100000]

bench_discovery.py calls `layout_figures` and `draw_figures`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


from engine.learning.map_layout import UMAP_FIT_SIZE, pca_components, pca_layout, umap_layout
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


def layout_figures(counts: list[int], *, umap_counts: list[int] = (), place: int = 0) -> list[dict]:
    """PCA seconds at each of `counts`, UMAP seconds at each of `umap_counts` (fitted on all of them, up to
    UMAP_FIT_SIZE), and the seconds to place `place` more images with a fitted UMAP."""
    records = []
    for count in sorted(set(counts) | set(umap_counts)):
        vectors, _, _ = planted_embeddings(count, 512, 20, seed=3)
        if count in counts:
            started = time.perf_counter()
            pca_layout(vectors)
            records.append(_emit({"benchmark": "map_layout", "method": "pca", "images": count, "dim": 512,
                                  "seconds": round(time.perf_counter() - started, 2)}))
        if count in umap_counts:
            umap_layout(vectors[:200], fit_size=200)  # numba compiles on the first call: not part of the figure
            started = time.perf_counter()
            umap_layout(vectors, fit_size=min(count, UMAP_FIT_SIZE))
            records.append(_emit({"benchmark": "map_layout", "method": "umap", "images": count, "dim": 512,
                                  "fitted": min(count, UMAP_FIT_SIZE),
                                  "seconds": round(time.perf_counter() - started, 2)}))
        del vectors
    if place:
        records.append(_emit(_placing(place)))
    return records


def _placing(place: int) -> dict:
    """Seconds to place `place` images on a UMAP fitted to UMAP_FIT_SIZE others (what each image of a map past
    UMAP_FIT_SIZE costs)."""
    import umap

    vectors, _, _ = planted_embeddings(UMAP_FIT_SIZE + place, 512, 20, seed=4)
    reduced = pca_components(vectors, 50)
    reducer = umap.UMAP(n_neighbors=15, random_state=0, n_jobs=1).fit(reduced[:UMAP_FIT_SIZE])
    reducer.transform(reduced[UMAP_FIT_SIZE:UMAP_FIT_SIZE + 100])  # compiles transform's kernels
    started = time.perf_counter()
    reducer.transform(reduced[UMAP_FIT_SIZE:])
    seconds = time.perf_counter() - started
    return {"benchmark": "map_layout", "method": "umap_transform", "fitted": UMAP_FIT_SIZE, "placed": place,
            "seconds": round(seconds, 2), "images_per_second": round(place / seconds)}


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
    parser.add_argument("--umap-place", type=int, default=65_536, help="time placing this many on a fitted UMAP")
    parser.add_argument("--draw", type=int, nargs="*", default=[100_000], help="browser draw at these sizes")
    parser.add_argument("--samples", type=int, default=3, help="redraws timed at each size")
    args = parser.parse_args()
    layout_figures(args.layout, umap_counts=args.umap, place=args.umap_place)
    draw_figures(args.draw, samples=args.samples)


if __name__ == "__main__":
    main()
