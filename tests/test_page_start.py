"""Starting from the page: `labelloop serve` without a project shows the start page; a project created there on a
generated folder with the embedded demo model is ingested and labeled by key on its labeling page, which replaced
the start page on the same address; a second server opens it from the start page's list of projects. Meanwhile
the read-only commands are answered beside the server."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import choose, free_port, select_tile, skip_without_chromium
from tests.imagegen import write_images

skip_without_chromium()
pytestmark = pytest.mark.slow  # starts `labelloop serve` twice as a process

MODEL_LABEL = "model (or an open_clip NAME:TAG, NAME:/path/weights.pt or a local folder)"


def _labelloop(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def _start_page_served(home: Path):
    """`labelloop serve --home HOME` as a process, once it answers; returns (process, url)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--home", str(home), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        try:
            if httpx.get(f"{url}config", timeout=5).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)


def _stop(process) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


def _statuses(url: str, path: Path) -> list[int]:
    """What the image route and Gradio's file route answer for `path`."""
    return [httpx.get(f"{url}{route}{path}", timeout=30).status_code for route in ("image", "gradio_api/file=")]


def _toast(page, text: str) -> None:
    expect(page.locator(".toast-body").filter(has_text=text)).to_be_visible()


@pytest.fixture
def home(tmp_path):
    write_images(tmp_path / "shapes", 12)
    write_images(tmp_path / "elsewhere", 1)  # images of no project: never served
    return tmp_path


def test_create_a_project_from_the_start_page_label_one_image_then_open_it_again(home, browser, screenshots):
    shape, elsewhere = next((home / "shapes").rglob("img_*")), next((home / "elsewhere").rglob("img_*"))
    server, url = _start_page_served(home)
    tab = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    try:
        # the start page serves no file, and only its own origin drives it
        assert all(status >= 400 for path in (shape, Path("/etc/passwd")) for status in _statuses(url, path))
        assert httpx.get(f"{url}config", headers={"Origin": "http://evil.example"}).status_code == 403
        tab.goto(url, wait_until="load")
        tab.get_by_label("project folder (new or empty; not inside the images folder)").fill("shapes-project")
        tab.get_by_label("images folder (read, never changed)").fill("no-such-folder")
        tab.get_by_label("classes: one a line, or comma-separated (at least two)").fill("circle\nsquare\nother")
        choose(tab, MODEL_LABEL, "demo (embedded, offline: shapes, digits and colours only)")
        tab.screenshot(path=str(screenshots / "start-page.png"))
        tab.locator("#create-project").click()
        _toast(tab, f"images folder {home}/no-such-folder does not exist")
        assert not (home / "shapes-project").exists()

        tab.get_by_label("images folder (read, never changed)").fill("shapes")
        tab.locator("#create-project").click()
        tab.wait_for_selector("#gallery img", timeout=120_000)  # the project's page, once ingest has drawn tiles
        expect(tab.locator("#header")).to_contain_text("12 images")
        relpath = select_tile(tab, 0)
        tab.keyboard.press("1")
        expect(tab.locator("#last-action")).to_contain_text(relpath)
        expect(tab.locator("#last-action")).to_contain_text("circle")
        tab.screenshot(path=str(screenshots / "created-from-start-page.png"))
        status = _labelloop("status", home / "shapes-project", "--json")  # answered by the server beside it
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["labels"]["human"] == 1
    finally:
        tab.context.close()
        _stop(server)

    server, url = _start_page_served(home)
    tab = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    try:
        tab.goto(url, wait_until="load")
        tab.locator("#found-projects label").filter(has_text=str(home / "shapes-project")).click()
        expect(tab.get_by_label("project folder", exact=True)).to_have_value(str(home / "shapes-project"))
        tab.locator("#open-project").click()
        tab.wait_for_selector("#gallery img", timeout=120_000)
        expect(tab.locator("#header")).to_contain_text("1 labeled by you")
        # the image route follows the opened project: its images folder, nothing beside it
        assert httpx.get(f"{url}image{shape}", timeout=30).status_code == 200
        assert all(status >= 400 for status in _statuses(url, elsewhere))
    finally:
        tab.context.close()
        _stop(server)
