"""Labels shown ahead of the server, in Chromium: a key or class button shows its label on the tile at once (dashed:
not written yet) and selects the next tile; the server's answer confirms it, or, when it refuses, puts the tile
back as it was. The server is held in these tests (its label call waits on an event), so what the page shows
meanwhile can only be the page's own answer.
"""

import threading

import pytest
from playwright.sync_api import expect

from engine.errors import LabelloopError
from tests.browser import (copy_project, human_label, select_tile, served, skip_without_chromium, wait_for,
                           wait_for_page)

skip_without_chromium()


@pytest.fixture(scope="module")
def server(demo_template, tmp_path_factory):
    with served(copy_project(demo_template, tmp_path_factory.mktemp("ahead") / "project")) as running:
        yield running


def hold(monkeypatch, owner, name: str, refuse: threading.Event | None = None) -> threading.Event:
    """`owner.name` waits, when called, until the returned event is set (at most 60 s); then it runs, or raises a
    refusal if `refuse` is set."""
    release, real = threading.Event(), getattr(owner, name)

    def held(*args, **kwargs):
        release.wait(60)
        if refuse is not None and refuse.is_set():
            raise LabelloopError("refused by the test")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)
    return release


@pytest.fixture
def held(server, monkeypatch):
    """The server's label and accept calls wait until `release()`; with `refuse` set, they are refused."""
    refuse = threading.Event()
    events = [hold(monkeypatch, server[1].labeling, name, refuse) for name in ("label", "accept")]

    def release():
        for event in events:
            event.set()

    yield release, refuse
    release()


SERVER_DRAWN = "document.querySelector('#gallery .drawing').dataset.nextPage"  # only the server's drawings carry it


def paths(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('#gallery .tile')].map(t => t.dataset.path)")


def tile(page, index: int):
    return page.locator("#gallery .tile").nth(index)


def test_keys_show_their_labels_at_once_and_the_server_confirms_them_in_order(server, page, held):
    _, workspace = server
    release, _ = held
    classes = workspace.view.class_names()
    paths = [select_tile(page, 2)] + [tile(page, i).get_attribute("data-path") for i in (3, 4)]
    accepted = tile(page, 4).get_attribute("data-shown")
    for key in ("1", "2", "a"):
        page.keyboard.press(key)
    for index, caption in ((2, classes[0]), (3, classes[1]), (4, accepted)):
        expect(tile(page, index).locator(".badge")).to_have_text(f"{caption} (you)")
        expect(tile(page, index)).to_have_class("tile human pending")
    expect(tile(page, 5)).to_have_class("tile selected")
    assert all(human_label(workspace, path)[1] != "human" for path in paths)  # nothing written while it is held

    release()
    assert wait_for(lambda: [human_label(workspace, path) for path in paths]
                    == [(classes[0], "human"), (classes[1], "human"), (accepted, "human")]), \
        ([human_label(workspace, path) for path in paths], classes, accepted)
    expect(page.locator("#gallery .tile.pending")).to_have_count(0)
    expect(tile(page, 4).locator(".badge")).to_have_text(f"{accepted} (you)")
    expect(page.locator("#detail-view strong").first).to_have_text(tile(page, 5).get_attribute("data-path"))


def test_a_refused_label_puts_the_tile_back_as_it_was(server, page, held):
    _, workspace = server
    release, refuse = held
    classes = workspace.view.class_names()
    relpath = select_tile(page, 10)
    before = tile(page, 10).locator(".badge").inner_text()
    key = str(next(i for i, name in enumerate(classes, 1) if not before.startswith(name + " ")))
    page.keyboard.press(key)
    expect(tile(page, 10)).to_have_class("tile human pending")
    expect(tile(page, 11)).to_have_class("tile selected")
    expect(page.locator("#detail-view strong")).to_have_text(tile(page, 11).get_attribute("data-path"))  # ahead

    refuse.set()
    release()
    expect(page.get_by_text("refused by the test")).to_be_visible()
    expect(tile(page, 10).locator(".badge")).to_have_text(before)
    expect(tile(page, 10)).to_have_class("tile selected")
    expect(page.locator("#detail-view strong")).to_have_text(relpath)  # the next key acts on it again
    expect(page.locator("#gallery .tile.pending")).to_have_count(0)
    assert human_label(workspace, tile(page, 10).get_attribute("data-path"))[1] != "human"


def test_turning_the_page_draws_the_next_page_at_once_and_the_server_confirms_it(server, page, monkeypatch):
    _, workspace = server
    page.keyboard.press("]")  # one turn first: the page each later drawing carries must be the one after it
    wait_for_page(page, "page 2 of")
    page.wait_for_function(f"() => ({SERVER_DRAWN})")
    release = hold(monkeypatch, workspace.view, "next_offset")
    ahead = page.evaluate(f"() => {{ const d = document.createElement('div'); d.innerHTML = ({SERVER_DRAWN});"
                          f"return [...d.querySelectorAll('.tile')].map(t => t.dataset.path); }}")
    assert len(ahead) == 48 and not set(ahead) & set(paths(page))
    page.keyboard.press("]")
    expect(page.locator("#gallery .page-text")).to_contain_text("page 3 of")  # while the server is held
    assert paths(page) == ahead

    release.set()
    page.wait_for_function(f"() => !!({SERVER_DRAWN})")  # the server's drawing, which carries page 4
    expect(page.locator("#gallery .page-text")).to_contain_text("page 3 of")
    assert paths(page) == ahead


def test_a_click_shows_the_file_and_its_thumbnail_at_once_then_the_server_shows_the_picture(server, page, monkeypatch):
    _, workspace = server
    release = hold(monkeypatch, workspace.view, "detail")
    clicked = tile(page, 6)
    relpath, thumbnail = clicked.get_attribute("data-path"), clicked.locator("img").get_attribute("src")
    clicked.click()
    expect(page.locator("#detail-view strong")).to_have_text(relpath)  # while the server is held
    assert page.locator("#detail-view img").get_attribute("src").endswith(thumbnail)

    release.set()
    page.wait_for_function("() => !document.querySelector('#detail-view .detail-view').classList.contains('pending')")
    expect(page.locator("#detail-view strong")).to_have_text(relpath)
    assert page.locator("#detail-view img").get_attribute("src").endswith(relpath)  # the picture itself
    expect(page.locator("#detail-view")).to_contain_text("×")  # its size, which only the server knows


@pytest.mark.timeout(120)  # a frozen tab never answers Playwright, whose waits time out inside the page
def test_an_older_answer_applied_after_a_newer_one_redrawn_ahead_never_freezes_the_page(server, page):
    """Found by bench_page: Gradio applies answers in the order they finish, so an older detail drawing can land after
    a newer one the page has already redrawn ahead (a click right after). The newest drawing must win and the page
    stay alive; it once put back a copy older still, which was replaced again, for good (the tab froze). Simulated
    here in the DOM, in the order the bug needs."""
    select_tile(page, 3)
    page.evaluate("""() => setTimeout(() => {
        const view = document.querySelector('#detail-view .detail-view');
        const kept = Number(view.dataset.drawing);
        view.classList.add('pending');  // a newer answer, already redrawn ahead by a click
        view.dataset.drawing = String(kept + 10);
        setTimeout(() => {
            const late = view.cloneNode(true);  // an older answer, applied after it
            late.classList.remove('pending');
            late.dataset.drawing = String(kept + 5);
            view.replaceWith(late);
            setTimeout(() => {
                const oldest = late.cloneNode(true);  // older than every other: the newest kept is put back
                oldest.dataset.drawing = String(kept + 1);
                late.replaceWith(oldest);
                window.lateAnswer = String(kept + 5);
            }, 50);
        }, 50);
    }, 50)""")
    page.wait_for_function("() => window.lateAnswer && document.querySelectorAll('#detail-view .detail-view').length"
                           " === 1 && document.querySelector('#detail-view .detail-view').dataset.drawing"
                           " === window.lateAnswer", timeout=5000)


def test_a_click_reaching_the_server_after_the_key_pressed_next_leaves_the_keys_selection(server, page):
    """Gradio sends a click and the key pressed right after it on separate requests, and they can reach the server
    in either order. Here the click's request is held in the browser until the key's has been answered: the key
    labels the clicked image (it carries its id) and moves on, and the late click must not move the selection back
    to it (the next key would label it again)."""
    _, workspace = server
    clicked, after = tile(page, 8), tile(page, 9)
    relpath, next_path = clicked.get_attribute("data-path"), after.get_attribute("data-path")
    held = []

    def hold_the_click(route):
        body = route.request.post_data or ""
        if not held and '"sequence"' in body and '"kind"' not in body:  # the click's event, not a label's
            held.append(route)
        else:
            route.continue_()

    page.route("**/queue/join*", hold_the_click)
    clicked.click()
    expect(page.locator("#detail-view strong")).to_have_text(relpath)  # shown ahead; the server has not seen it
    name = workspace.view.class_names()[0]
    page.keyboard.press("1")
    assert wait_for(lambda: human_label(workspace, relpath) == (name, "human"))
    assert held, "the click's request was not held"
    held[0].continue_()
    page.wait_for_function("() => !document.querySelector('#gallery .tile.pending')")
    page.wait_for_timeout(1000)  # the click's answer
    expect(page.locator("#detail-view strong")).to_have_text(next_path)
    expect(page.locator("#gallery .tile.selected")).to_have_attribute("data-path", next_path)
    page.unroute("**/queue/join*")


def test_more_like_this_asks_for_the_image_the_detail_view_shows_even_before_the_server_knows_it(server, page):
    """S right after a click, its request reaching the server first: the search is for the clicked image (the one
    the detail view names), not the one the server had selected before."""
    select_tile(page, 2)
    clicked = tile(page, 12)
    relpath = clicked.get_attribute("data-path")
    held = []

    def hold_the_click(route):
        body = route.request.post_data or ""
        if not held and '"sequence"' in body and '"kind"' not in body:
            held.append(route)
        else:
            route.continue_()

    page.route("**/queue/join*", hold_the_click)
    clicked.click()
    expect(page.locator("#detail-view strong")).to_have_text(relpath)
    page.keyboard.press("s")
    wait_for_page(page, f"like {relpath}")
    assert held, "the click's request was not held"
    held[0].continue_()
    page.unroute("**/queue/join*")
    assert tile(page, 0).get_attribute("data-path") == relpath
