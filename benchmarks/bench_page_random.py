"""A long randomized run over two tabs of the real page (tests/page_fuzz.py; the tests run 300 actions): the demo
project served in this process, driven in Debian's Chromium at 1280×800 with clicks, keys typed ahead, ← and →
across page ends, page turns, sort and filter changes, undo, picked tiles, and a round finishing meanwhile. Prints
one JSON object: actions (by kind), label keys, sends and server calls, mismatches (every one), how long
the tabs took to equal the database after the last action (median, max) and after a round's end, and the load
(the server's CPU seconds per second of the run, the machine's load average), and stalls: actions the page did not
let the driver do in time (the first one's screenshot is kept in a temporary folder the JSON names).

    python -m benchmarks.bench_page_random [--actions 5000] [--seed 24] [--checks 50]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from engine.demo.setup import prepare_demo
from tests import page_fuzz
from tests.browser import CHROMIUM, CHROMIUM_ARGS, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--checks", type=int, default=50, help="sync checks along the way")
    args = parser.parse_args()
    evidence = Path(tempfile.mkdtemp(prefix="bench_page_random-"))
    with tempfile.TemporaryDirectory() as scratch:
        root, _ = prepare_demo(Path(scratch) / "demo")
        with served(root) as (url, workspace), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            patches = pytest.MonkeyPatch()
            cpu, wall = time.process_time(), time.monotonic()
            try:
                report = page_fuzz.run(browser, url, workspace, patches, actions=args.actions, seed=args.seed,
                                       checks=args.checks, evidence=evidence)
            finally:
                patches.undo()
                browser.close()
            summary = report.summary()
            summary["server_cpu_per_second"] = round((time.process_time() - cpu) / (time.monotonic() - wall), 2)
            summary["load_average_1min"] = round(os.getloadavg()[0], 2)
            summary["cores"] = os.cpu_count()
            summary["evidence"] = str(evidence)
            summary["all_mismatches"] = report.mismatches
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
