"""Hostile class, file and folder names over every view of the page, in Chromium (issue 25 item 5: an `<img src=...>`
class name sent requests to another server, and a "Session expired" link was live in the detail panel). Each name
that could open a tag, a link or an image points at a small HTTP server of the test's own: no element may come of
it, no request may reach that server, and each name must read as itself."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from playwright.sync_api import expect

from engine.project.audit import draw_audit
from engine.dataset.ingest import ingest
from engine.learning.models import DEMO_SPEC, load_model
from engine.project.folder import create_project
from tests.browser import free_port, select_tile, served, skip_without_chromium, wait_for
from tests.imagegen import random_image, write_images

skip_without_chromium()

# What the page holds that no name may have made: an element carrying the names' own attribute, a script, an image,
# a link or an SVG image or link (Plotly draws its labels' <a> as SVG) pointing at the collector or at a name's host.
INJECTED = r"""(port) => {
  const aimed = (value) => !!value && (value.includes(':' + port) || /^https?:\/\/www\.hostile/.test(value));
  const found = [...document.querySelectorAll('[data-hostile], script, img, a, image, iframe, object, embed, link')]
    .filter(el => el.hasAttribute('data-hostile') || el.textContent.trim().startsWith("fetch('http")
                  || aimed(el.getAttribute('src')) || aimed(el.getAttribute('href'))
                  || aimed(el.getAttribute('xlink:href')) || aimed(el.getAttribute('srcset')));
  return found.map(el => el.outerHTML.slice(0, 200));
}"""


class Collector:
    """An HTTP server that counts the requests it gets: any one is a name acting on the page."""

    def __init__(self):
        self.requests = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                collector.requests.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def hostile_names(port: int) -> tuple[list[str], list[str]]:
    """(class names, file names relative to the images folder): tags, a Markdown link dressed as a sign-in prompt, a
    script, an HTML link Plotly would draw, LaTeX, an autolink; every address the collector's."""
    here = f"127.0.0.1:{port}"
    classes = [f"<img src=http://{here}/class-image data-hostile>",
               f"[Session expired: sign in again](http://{here}/class-link)",
               f"<a href=\"http://{here}/class-anchor\" data-hostile>sign in</a>",
               f"<script>fetch('http://{here}/class-script')</script>",
               f"$$\\href{{http://{here}/class-latex}}{{sign in}}\\includegraphics{{http://{here}/class-tex}}$$"]
    # A file name holds no '/': the addresses go through folders, and http:/host is read as http://host.
    files = [f"a<img src=http:/{here}/file-image data-hostile>.png",
             f"[Session expired: sign in again](http:/{here}/file-link).png",
             "<script data-hostile>alert(1)<\\script>.png", "www.hostile.example.png", "red\x1b[31m\nline.png"]
    return classes, files


@pytest.fixture(scope="module")
def collector():
    running = Collector()
    yield running
    running.close()


@pytest.fixture(scope="module")
def server(collector, tmp_path_factory):
    """A project over a few images and the hostile file names, with the hostile classes (their keys 1-4), a folder
    name that is a tag, and a random audit labelled with each class, so the Quality tab names them too."""
    classes, files = hostile_names(collector.port)
    base = tmp_path_factory.mktemp("names")
    images = base / "images"
    write_images(images, 8)
    for index, relpath in enumerate(files):
        (images / relpath).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(images / relpath), random_image(np.random.default_rng(50 + index)))
    root = base / "<b data-hostile>project"
    with create_project(root, images=images, classes=",".join(classes), model=DEMO_SPEC) as project:
        ingest(project, load_model(project.model_spec), workers=0)
        drawn = draw_audit(project.store, 6, seed=1)
    with served(root) as (url, workspace):
        for index, entry in enumerate(drawn):
            workspace.labeling.label([entry["image_id"]], classes[index % len(classes)], actor="page:auditor")
        yield url, workspace, classes, files


def tile_index(page, relpath: str) -> int:
    paths = page.eval_on_selector_all("#gallery .tile", "tiles => tiles.map(tile => tile.dataset.path)")
    return paths.index(relpath)


def assert_nothing_injected(page, collector, view: str):
    assert page.evaluate(INJECTED, str(collector.port)) == [], view
    assert collector.requests == [], view


def test_hostile_names_stay_text_in_every_view(server, page, collector):
    _, workspace, classes, files = server
    for name in classes:  # the keys line names the classes as they are (no link, no LaTeX)
        expect(page.locator("#hotkeys")).to_contain_text(name)
    expect(page.locator("#header")).to_contain_text("<b data-hostile>project")
    assert_nothing_injected(page, collector, "gallery, header and keys")

    for relpath, key in zip(files, "1234"):  # detail title and text, then a label: the last-action message
        select_tile(page, tile_index(page, relpath))
        expect(page.locator("#detail-text")).to_contain_text("zero-shot")
        assert_nothing_injected(page, collector, f"detail of {relpath!r}")
        page.keyboard.press(key)
        shown = relpath.replace("\x1b", "\\x1b").replace("\n", "\\n")
        expect(page.locator("#last-action")).to_contain_text(f"{shown} → {classes[int(key) - 1]}")
        assert_nothing_injected(page, collector, f"label {relpath!r} as class {key}")
    select_tile(page, tile_index(page, files[0]))
    expect(page.locator("#detail-text")).to_contain_text(f"label: {classes[0]}")
    page.keyboard.press("u")
    expect(page.locator("#last-action")).to_contain_text("undid")
    assert_nothing_injected(page, collector, "detail of a labelled image, undo")

    page.get_by_role("tab", name="Map").click()
    page.wait_for_function("document.querySelector('#map-plot .legendtext')")
    legend = page.eval_on_selector_all("#map-plot .legendtext", "texts => texts.map(t => t.textContent)")
    assert classes[2] in legend  # Plotly draws the name as text
    assert_nothing_injected(page, collector, "Map tab")

    page.get_by_role("tab", name="Rounds").click()
    page.get_by_role("tab", name="Quality").click()
    page.wait_for_function("document.querySelectorAll('#quality-per-class .xtick').length >= 2")
    ticks = page.eval_on_selector_all("#quality-per-class .xtick", "ticks => ticks.map(t => t.textContent)")
    assert classes[2] in ticks
    assert_nothing_injected(page, collector, "Rounds and Quality tabs")

    page.get_by_role("tab", name="Classes").click()  # last: a new class starts the audit over
    added = f"<img src=http://127.0.0.1:{collector.port}/added data-hostile>x"
    page.locator("#new-classes textarea").fill(added)
    page.locator("#add-classes").click()
    expect(page.locator("#classes-message")).to_contain_text(f"added {added}")
    expect(page.locator("#classes-table")).to_contain_text(classes[2])
    page.locator("#new-classes textarea").fill(classes[0])  # refused: a toast quoting the name
    page.locator("#add-classes").click()
    expect(page.get_by_text("appears twice").first).to_be_visible()
    page.locator("#new-classes textarea").fill("d\u202egod")  # reads "ddog": refused, naming the character
    page.locator("#add-classes").click()
    expect(page.get_by_text("U+202E RIGHT-TO-LEFT OVERRIDE").first).to_be_visible()
    assert not any("\u202e" in name for name in workspace.view.class_names())
    assert_nothing_injected(page, collector, "Classes tab, its message and refusals' toasts")
    assert wait_for(lambda: collector.requests != [], timeout=2) is False  # nothing arrives late either
