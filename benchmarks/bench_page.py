"""What a person waits for on the labeling page, measured in the browser: the real page served over a
100,000-image project (planted embeddings and zero-shot predictions, one real thumbnail under every image's
name), driven in Debian's Chromium at 1280×800. Prints one JSON object with medians and p95 in milliseconds:

- `key_to_tile_ms`: a class key pressed until the labelled image's tile shows its new label (the page shows it
  ahead of the server, dashed); `key_to_confirmed_ms`: until the server's answer has drawn it (the label written);
- `page_turn_ms`: "page ▶" clicked until the next page's tiles are drawn and those in view loaded
  (`page_turn_drawn_ms`: until its text and tiles are drawn, their pictures still loading);
- `click_to_detail_ms`: a tile clicked until the detail panel names it and its image is loaded.

    python -m benchmarks.bench_page [--images 100000] [--samples 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from engine.project.folder import DB_FILE

from benchmarks.bench_app import link_thumbnails
from tests.browser import CHROMIUM, CHROMIUM_ARGS, open_page, served
from tests.synthetic import planted_embeddings, planted_relpath, synthetic_project
from tests.tiny_model import make_tiny_model

VISIBLE = """() => [...document.querySelectorAll('#gallery img')].filter(i => {
    const box = i.getBoundingClientRect(); return box.bottom > 0 && box.top < window.innerHeight; })"""

FIRST_THUMBNAIL_LOADS = """() => new Promise(resolve => {
    const first = document.querySelector('#gallery img');
    if (first.complete) resolve(first.naturalWidth > 0);
    else { first.onload = () => resolve(true); first.onerror = () => resolve(false); } })"""

# Each probe acts in the page and resolves with the milliseconds until what a person waits for is on screen.
WAIT = """(done) => new Promise(resolve => {
    const start = performance.now();
    const check = () => done() ? resolve(performance.now() - start) : requestAnimationFrame(check);
    requestAnimationFrame(check); })"""

# The key is the first class the tile does not show already (a kept project holds the labels of earlier runs).
KEY_TO_TILE = """async (index) => {
    const tile = document.querySelectorAll('#gallery .tile')[index];
    const path = tile.dataset.path, before = tile.querySelector('.badge').innerText;
    const names = [...document.querySelectorAll('.class-button')].map(b => b.innerText.replace(/ \\[\\d\\]$/, ''));
    const key = String(names.findIndex(name => !before.startsWith(name + ' ')) + 1);
    tile.click();
    await (%s)(() => document.querySelector('#detail-view strong')?.innerText === path);
    const start = performance.now();
    document.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
    const tileNow = () => document.querySelector(`#gallery .tile[data-path="${path}"]`);
    const shown = await (%s)(() => tileNow() && tileNow().querySelector('.badge').innerText !== before);
    await (%s)(() => tileNow() && !tileNow().classList.contains('pending')
                     && tileNow().querySelector('.badge').innerText !== before);
    return [shown, performance.now() - start]; }""" % (WAIT, WAIT, WAIT)

PAGE_TURN = """async () => {
    const visibleTiles = %s;
    const text = document.querySelector('#gallery .page-text').innerText;
    const first = document.querySelector('#gallery .tile').dataset.path;
    const start = performance.now();
    document.querySelector('#next-page').click();
    const drawn = await (%s)(() => document.querySelector('#gallery .page-text').innerText !== text
                                   && document.querySelector('#gallery .tile')?.dataset.path !== first);
    await (%s)(() => visibleTiles().every(i => i.complete && i.naturalWidth > 0));
    return [drawn, performance.now() - start]; }""" % (VISIBLE, WAIT, WAIT)

CLICK_TO_DETAIL = """async (index) => {
    const tile = document.querySelectorAll('#gallery .tile')[index];
    const start = performance.now();
    tile.click();
    await (%s)(() => { const shown = document.querySelector('#detail-view img');
                       return document.querySelector('#detail-view strong')?.innerText === tile.dataset.path
                              && shown && shown.complete && shown.naturalWidth > 0; });
    return performance.now() - start; }""" % WAIT


def link_images(project, count: int) -> None:
    """A real picture under every image's name, so the detail panel has a file to show."""
    source = next(project.thumbs_dir.rglob("*.jpg"))
    for index in range(count):
        if index % 50_000 == 0:  # file systems cap the links to one file (ext4: 65,000)
            picture = project.root / f"picture{index}.jpg"
            picture.write_bytes(source.read_bytes())
        (project.images_root / planted_relpath(index)).hardlink_to(picture)


def timed(page, probe: str, argument=None):
    """Milliseconds the probe reports (one figure or several), or None when what it waits for is not on screen
    within 10 s."""
    return page.evaluate(f"(a) => Promise.race([({probe})(a), new Promise(r => setTimeout(() => r(null), 10000))])",
                         argument)


def summary(samples: list[float | None]) -> dict:
    ordered = sorted(sample for sample in samples if sample is not None)
    return {"median": round(statistics.median(ordered), 1) if ordered else None,
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1) if ordered else None,
            "n": len(ordered), "timed_out": len(samples) - len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30, help="measurements of each kind")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the project in this folder and keep it; a later run reuses it (with the labels "
                             "the earlier runs' keys wrote)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        scratch = args.keep or Path(scratch)
        root = scratch / "p"
        if not (root / DB_FILE).exists():
            x, _, text = planted_embeddings(args.images, 512, 20, seed=5)
            project = synthetic_project(root, scratch / "images", make_tiny_model(scratch / "m"), x, text)
            del x
            link_thumbnails(project, args.images)
            link_images(project, args.images)
            project.close()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        with served(root) as (url, _):
            page = open_page(browser, url, 1280, 800)
            page.locator("#gallery img").first.wait_for()
            if not page.evaluate(FIRST_THUMBNAIL_LOADS):
                raise SystemExit("the gallery's first thumbnail did not load, so no page turn would finish: check "
                                 "that benchmarks/bench_app.py link_thumbnails names them by the images' sha256")
            keys, turns, clicks = [], [], []
            for sample in range(args.samples):
                clicks.append(timed(page, CLICK_TO_DETAIL, (sample * 7) % 40))
                keys.append(timed(page, KEY_TO_TILE, (sample * 5) % 40))
                turns.append(timed(page, PAGE_TURN))
            browser.close()
    result = {"benchmark": "page", "images": args.images, "viewport": "1280x800",
              "key_to_tile_ms": summary([key and key[0] for key in keys]),
              "key_to_confirmed_ms": summary([key and key[1] for key in keys]),
              "page_turn_ms": summary([turn and turn[1] for turn in turns]),
              "page_turn_drawn_ms": summary([turn and turn[0] for turn in turns]),
              "click_to_detail_ms": summary(clicks)}
    result["targets"] = {name: bool(result[name]["n"]) and not result[name]["timed_out"]
                         and result[name]["median"] <= 150 and result[name]["p95"] <= 300
                         for name in ("key_to_tile_ms", "page_turn_ms", "click_to_detail_ms")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
