"""What the browser tests share: Debian's chromium driven by Playwright, a page served in this process over a
copy of the demo project, and small helpers to select tiles and wait for the database.

Without /usr/bin/chromium the browser tests are skipped, unless LABELLOOP_REQUIRE_BROWSER=1 (CI sets it).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.server import launch
from engine.views.gallery import PAGE_SIZE
from engine.project.folder import open_project
from engine.session.workspace import Workspace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def skip_without_chromium() -> None:
    if not Path(CHROMIUM).exists() and not os.environ.get("LABELLOOP_REQUIRE_BROWSER"):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(project_root: Path, **launch_options):
    """The page over the project at `project_root`, served in this process; yields (url, workspace)."""
    project = open_project(project_root)
    workspace = Workspace(project, ingest_workers=0)
    port = free_port()
    page = launch(workspace, port=port, block=False, **launch_options)
    try:
        yield f"http://127.0.0.1:{port}/", workspace
    finally:
        page.close()
        workspace.close()
        project.close()


def copy_project(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def open_page(browser, url: str, width: int = 1280, height: int = 800):
    tab = browser.new_context(viewport={"width": width, "height": height}).new_page()
    tab.goto(url, wait_until="load")
    tab.wait_for_selector("#gallery img", timeout=60_000)
    return tab


def select_tile(page, index: int) -> str:
    """Click the gallery's `index`-th tile and wait for the server's answer to show it in the detail view (the page
    shows it at once, ahead of the server); returns its path. A test's next action then reaches the server after the
    click: two events sent within a few milliseconds can reach it in either order."""
    tile = page.locator("#gallery .tile").nth(index)
    relpath = tile.get_attribute("data-path")
    tile.click()
    expect(page.locator("#detail-view .detail-view:not(.pending) strong")).to_have_text(relpath)
    return relpath


def detail_path(page) -> str:
    return page.locator("#detail-view strong").first.inner_text()


def human_label(workspace, relpath: str):
    rows = [row for row in workspace.project.store.current_labels().to_pylist() if row["path"] == relpath]
    return (rows[0]["label"], rows[0]["source"]) if rows else None


def wait_for(predicate, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def wait_for_job(page, status: str = "done", timeout_ms: int = 120_000, kind: str = "round") -> None:
    """Until the header says the newest job, of `kind` (a neighbour graph job ingest ran before is done already),
    is `status`."""
    page.wait_for_function(f"document.querySelector('#job-status') && "
                           f"document.querySelector('#job-status').dataset.status === '{status}' && "
                           f"document.querySelector('#job-status').dataset.kind === '{kind}'", timeout=timeout_ms)


def wait_for_page(page, pattern: str, timeout_ms: int = 30_000) -> None:
    """Wait until the page text matches the regular expression `pattern` and, when the filter holds less than a
    page, until the gallery draws that many tiles: text and gallery are two components and the text can land
    first, so a test reading tiles right after the text would read the previous page's."""
    page.wait_for_function("""([pattern, pageSize]) => {
        const text = document.querySelector('#gallery .page-text')?.innerText || '';
        if (!new RegExp(pattern).test(text)) return false;
        // the images shown: "page 1 of 2 · 57 images", or "· 12 of 57 images shown" when filters hide some
        const total = Number((text.match(/page \\d+ of \\d+ · ([\\d,]+)/) || ['', '-1'])[1].replace(/,/g, ''));
        if (total < 0 || total >= pageSize) return true;
        return total === 0 ? !!document.querySelector('#gallery .empty')
                           : document.querySelectorAll('#gallery .tile').length === total;
    }""", arg=[pattern, PAGE_SIZE], timeout=timeout_ms) if not os.environ.get("DEBUG_PAGE") else _debug_wait(page, pattern, timeout_ms)


def _debug_wait(page, pattern, timeout_ms):
    try:
        page.wait_for_function("(p) => new RegExp(p).test(document.querySelector('#gallery .page-text')?.innerText || '')", arg=pattern, timeout=timeout_ms)
    except Exception:
        print("DEBUG text:", page.evaluate("() => document.querySelector('#gallery .page-text')?.innerText"),
              page.evaluate("() => document.querySelector('#gallery .drawing').outerHTML.slice(0, 300)"))
        raise


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the dropdown labelled `label`."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def export_csv_from_page(page) -> tuple[Path, dict[str, dict]]:
    """Export tab → Export (the default: CSV): the file the page says it wrote, and its rows by path."""
    page.get_by_role("tab", name="Export").click()
    page.locator("#export").click()
    page.wait_for_function("/wrote \\d+ rows/.test(document.querySelector('#export-message').innerText)",
                           timeout=30_000)
    written = re.search(r"wrote \d+ rows to (\S+)", page.locator("#export-message").inner_text()).group(1)
    with open(written, newline="") as handle:
        return Path(written), {row["path"]: row for row in csv.DictReader(handle)}
