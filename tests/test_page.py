"""Browser tests: the real page in headless Chromium (Debian's `chromium`, driven by Playwright) on the demo
project: labeling by key, rounds from the page, export, and what the server refuses (a wrong password, files
outside the project and images folder, one person's undo of another's label). The trust rules of the page (a key
acts on the image shown, every view shows the truth) are in test_page_trust.py.
"""

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from playwright.sync_api import expect

from engine.project.folder import DB_FILE
from tests.browser import choose, copy_project, export_csv_from_page, human_label as _human_label, open_page
from tests.browser import select_tile as _select, served
from tests.browser import skip_without_chromium, wait_for as _wait_for, wait_for_page

skip_without_chromium()


@pytest.fixture(scope="module")
def server(demo_template, tmp_path_factory):
    """The page over a copy of the demo project; yields (url, workspace)."""
    with served(copy_project(demo_template, tmp_path_factory.mktemp("page") / "project")) as running:
        yield running


@pytest.fixture
def page(server, browser):
    url, _ = server
    tab = open_page(browser, url, 1600, 1200)
    yield tab
    tab.context.close()


def _screenshot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / name), full_page=True)


def test_keyboard_correction_persists_and_undo_restores(server, page, screenshots):
    _, workspace = server
    classes = workspace.view.class_names()
    _screenshot(page, screenshots, "gallery.png")
    relpath = _select(page, 3)
    before = _human_label(workspace, relpath)
    assert before[1] != "human"
    page.locator("#heatmap-toggle input").check()  # the detail view with its Grad-CAM overlay
    page.wait_for_function("document.querySelector('#detail-view img') && "
                           "document.querySelector('#detail-view img').src.length > 0")
    page.wait_for_timeout(500)
    _screenshot(page, screenshots, "detail.png")
    page.locator("#heatmap-toggle input").uncheck()

    page.keyboard.press("3")
    assert _wait_for(lambda: _human_label(workspace, relpath) == (classes[2], "human"))
    expect(page.locator("#last-action")).to_contain_text(relpath)
    events = workspace.project.store.label_events()
    assert events[-1]["actor"] == "page" and events[-1]["to_class"] == workspace.view.class_id(classes[2])

    page.reload(wait_until="load")  # survives a reload: the page shows it among human labels
    page.wait_for_selector("#gallery img")
    page.locator("#gallery img").first.wait_for()
    page.get_by_label("status").click()
    page.get_by_role("option", name="human", exact=True).click()
    wait_for_page(page, r"page 1 of 1 · 1 images")
    assert _select(page, 0) == relpath
    expect(page.locator("#detail-text")).to_contain_text(f"label: {classes[2]} (human)")

    page.keyboard.press("u")
    assert _wait_for(lambda: _human_label(workspace, relpath) == before)
    expect(page.locator("#last-action")).to_contain_text("undid")


def _newest_round_job(workspace) -> str | None:
    """The status of the project's newest job if it is a round job (None otherwise), as the server records it."""
    jobs = workspace.project.store.jobs(limit=1)
    return jobs[0]["status"] if jobs and jobs[0]["kind"] == "round" else None


def test_round_from_the_page_runs_while_the_gallery_answers_and_the_plot_gains_a_point(server, page, screenshots):
    _, workspace = server
    rounds_before = len(workspace.view.round_history())
    page.get_by_role("tab", name="Rounds").click()
    page.locator("#metrics-table").wait_for()
    page.get_by_role("spinbutton", name="number of rounds").fill("12")
    page.locator("#start-round").click()
    # The server's word, not the page's: the job line is redrawn by the page's poll, which under load lags the job by
    # seconds (8 s measured at load 15), so it could show a 12-round job only once it was done.
    assert _wait_for(lambda: _newest_round_job(workspace) == "running"), "the page's Start ran no round job"
    page.get_by_role("tab", name="Label").click()
    answered = time.monotonic()
    page.locator("#next-page").click()
    wait_for_page(page, r"page 2 of", timeout_ms=10_000)
    answered = time.monotonic() - answered
    still_running = _newest_round_job(workspace)
    page.wait_for_function("document.querySelector('#job-status').dataset.status === 'done'", timeout=120_000)
    assert still_running == "running", f"the round ended before the gallery answered ({answered:.1f}s)"
    assert len(workspace.view.round_history()) == rounds_before + 12
    page.get_by_role("tab", name="Rounds").click()
    expect(page.locator("#rounds-summary")).to_contain_text(f"{rounds_before + 12} finished rounds")
    assert page.locator("#metrics-plot canvas, #metrics-plot svg").count() > 0
    _screenshot(page, screenshots, "rounds.png")


def test_export_from_the_page_holds_the_corrected_label(server, page):
    _, workspace = server
    classes = workspace.view.class_names()
    relpath = _select(page, 5)
    page.keyboard.press("n")  # "none of these"
    assert _wait_for(lambda: _human_label(workspace, relpath) == ("", "human"))
    expect(page.locator("#last-action")).to_contain_text(relpath)  # the page has caught up
    second = _select(page, 9)
    page.keyboard.press("1")
    assert _wait_for(lambda: _human_label(workspace, second) == (classes[0], "human"))

    written, rows = export_csv_from_page(page)
    assert (rows[relpath]["label"], rows[relpath]["source"]) == ("", "human")
    assert (rows[second]["label"], rows[second]["source"]) == (classes[0], "human")
    link = page.locator("#export-file a").first
    expect(link).to_be_visible()  # the download link
    # what it downloads is a copy only this user reads, in a folder only this user opens (not the system temp
    # folder's world-readable gradio/)
    offered = Path(unquote(link.get_attribute("href").partition("file=")[2]))
    assert offered.read_bytes() == Path(written).read_bytes() and offered.stat().st_mode & 0o777 == 0o600
    cache = Path(os.environ["GRADIO_TEMP_DIR"])
    assert offered.is_relative_to(cache) and cache.stat().st_mode & 0o777 == 0o700


# ---- what the server refuses ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def locked_server(demo_template, tmp_path_factory):
    """A second copy of the demo project, served with a login for two people."""
    root = copy_project(demo_template, tmp_path_factory.mktemp("locked") / "project")
    with served(root, auth=[("ann", "s3cret"), ("bob", "pw2")]) as (url, workspace):
        yield url.rstrip("/"), workspace.project


def test_the_page_exports_fiftyone_beside_the_other_formats(server, page):
    _, workspace = server
    page.get_by_role("tab", name="Export").click()
    choose(page, "format", "fiftyone")
    page.locator("#export").click()
    page.wait_for_function("/wrote \\d+ rows .*-fiftyone/.test(document.querySelector('#export-message').innerText)",
                           timeout=60_000)
    found = re.search(r"wrote (\d+) rows to (\S+)", page.locator("#export-message").inner_text())
    document = json.loads((Path(found.group(2)) / "labels.json").read_text())
    assert document["classes"] == workspace.view.class_names() and len(document["labels"]) == int(found.group(1))
    expect(page.locator("#export-file a")).to_have_count(0)  # a folder: nothing to download


def test_wrong_password_is_refused_and_the_right_one_lets_in(locked_server):
    url, _ = locked_server
    with httpx.Client(base_url=url) as client:
        assert client.get("/config").status_code in (401, 403)
        wrong = client.post("/login", data={"username": "ann", "password": "guess"})
        assert wrong.status_code in (400, 401, 403)
        assert client.get("/config").status_code in (401, 403)
        right = client.post("/login", data={"username": "ann", "password": "s3cret"})
        assert right.status_code == 200
        assert client.get("/config").status_code == 200


def test_files_outside_the_project_and_images_folder_get_no_content(locked_server, tmp_path):
    url, project = locked_server
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    thumbnail = next(project.thumbs_dir.rglob("*.jpg"))
    with httpx.Client(base_url=url) as client:
        client.post("/login", data={"username": "ann", "password": "s3cret"})
        assert client.get(f"/image{thumbnail}").status_code == 200  # the control: thumbnails are served
        for path in (secret, Path("/etc/passwd"), project.root / DB_FILE, project.images_root / ".." / "demo.json"):
            for route in ("/gradio_api/file=", "/image"):
                response = client.get(f"{route}{path}")
                assert response.status_code >= 400 and b"do not serve" not in response.content
                assert b"root:" not in response.content and b"DUCK" not in response.content


def test_two_people_logged_in_label_under_their_names_and_undo_only_their_own(locked_server, browser):
    url, project = locked_server

    def signed_in(user: str, password: str):
        tab = browser.new_context(viewport={"width": 1600, "height": 1200}).new_page()  # a cookie jar each
        tab.goto(url, wait_until="load")
        tab.get_by_label("username").fill(user)
        tab.get_by_label("password").fill(password)
        tab.get_by_role("button", name="Login").click()
        tab.wait_for_selector("#gallery img", timeout=60_000)
        return tab

    def newest_actor():
        events = project.store.label_events()
        return events[-1]["actor"] if events else None

    ann, bob = signed_in("ann", "s3cret"), signed_in("bob", "pw2")
    _select(ann, 0)
    ann.keyboard.press("2")
    assert _wait_for(lambda: newest_actor() == "page:ann")
    bob.locator("#undo").click()  # bob has changed nothing: ann's label stays
    expect(bob.locator("#last-action")).to_contain_text("nothing to undo")
    assert newest_actor() == "page:ann"
    ann.keyboard.press("u")
    assert _wait_for(lambda: newest_actor() == "page:ann:undo")
    for tab in (ann, bob):
        tab.context.close()
