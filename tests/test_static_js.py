"""The page's scripts (app/static/*.js) on a bare harness page in Chromium: no server, a minimal DOM, Gradio's
`trigger` and `server` replaced by recorders. They check the scripts' own logic (the keyboard map, answering ahead
of the server, the order of actions, the newest drawing wins); the end-to-end tests (tests/test_page*.py) check
them with Gradio and the server."""

import pytest

from app.gallery_html import GALLERY_PROPS, HUMAN_COLOUR
from app.static_files import static_text
from engine.views.gallery import NONE_OF_THESE
from tests.browser import skip_without_chromium

skip_without_chromium()

PAGE = """<!doctype html><body>
<div id="class-buttons"><button class="class-button class-key-1">circle [1]</button>
  <button class="class-button">{none}</button></div>
<button id="accept">Accept [A]</button><button id="undo">Undo [U]</button>
<button id="prev-page">◀</button><button id="next-page">▶</button>
<input id="search" type="text"><input id="slider" type="range">
<div id="gallery"></div><div id="detail-view"></div>
<div id="map-plot"><div data-testid="plotly"></div></div>
</body>""".format(none=NONE_OF_THESE)

# Runs a module as Gradio runs a component's js_on_load: a function of element, trigger, props, server; each
# trigger is recorded in window.sent.
RUN = """([source, selector, props]) => {
  window.sent = window.sent || [];
  const server = {hover_card: async (id) => `<b>tile ${id}</b>`};
  Function('element', 'trigger', 'props', 'server', 'upload', 'watch', source)(
    document.querySelector(selector), (name, data) => window.sent.push([name, data]), props, server);
}"""


def page_html(*image_ids, selected=None):
    """A page of tiles as app/gallery_html.py writes it, reduced to what the scripts read."""
    buttons = "".join(f"<button class='tile{' selected' if image_id == selected else ''}' data-image-id='{image_id}' "
                      f"data-path='img{image_id}.png' data-shown='circle'><img src='thumb{image_id}.png'>"
                      f"<span class='badge'>circle 90%</span></button>" for image_id in image_ids)
    return f"<div class='page-text'>page</div><div class='tiles'>{buttons}</div>"


def tiles(*image_ids, drawing=1, selected=None, answers="", next_page=()):
    """A drawing of the gallery: its page, the server's marks, the next page's copy."""
    marks = f" data-answers='{answers}'" if answers else ""
    if next_page:
        marks += f" data-next-page=\"{page_html(*next_page).replace(chr(39), '&#x27;')}\""
    return f"<div class='drawing' data-drawing='{drawing}'{marks}>{page_html(*image_ids, selected=selected)}</div>"


def detail(image_id, drawing=1):
    return (f"<div class='detail-view' data-image-id='{image_id}' data-shown='circle' data-drawing='{drawing}'>"
            f"<div class='detail-title'><strong>img{image_id}.png</strong></div></div>")


@pytest.fixture
def harness(browser):
    tab = browser.new_page()
    tab.set_content(PAGE)
    yield tab
    tab.close()


def run(tab, module, selector, props=None):
    tab.evaluate(RUN, [static_text(module), selector, props or {}])


def draw(tab, selector, html):
    """A new value of a component, as Gradio patches it in; the scripts' observers have run when it returns."""
    tab.evaluate("([selector, html]) => { document.querySelector(selector).innerHTML = html; }", [selector, html])
    tab.evaluate("() => new Promise(resolve => setTimeout(resolve, 0))")


def sent(tab):
    return tab.evaluate("() => window.sent")


def labelling(harness, *image_ids, shown=1):
    """The gallery and the detail view, drawn with image `shown` in the detail view."""
    draw(harness, "#gallery", tiles(*image_ids, selected=shown))
    draw(harness, "#detail-view", detail(shown))
    run(harness, "gallery.js", "#gallery", GALLERY_PROPS)
    run(harness, "detail.js", "#detail-view")
    return harness


def test_a_label_is_shown_ahead_of_the_server(harness):
    tab = labelling(harness, 1, 2, 3)
    tab.evaluate("() => window.labelloop.label('class', {name: 'circle'})")
    assert sent(tab) == [["submit", {"kind": "class", "name": "circle", "sequence": 1, "image_id": 1}]]
    first = tab.locator(".tile[data-image-id='1']")
    assert first.locator(".badge").inner_text() == "circle (you)"
    assert "pending" in first.get_attribute("class").split()
    assert first.evaluate("t => t.style.getPropertyValue('--tile')") == HUMAN_COLOUR
    # the next tile selected and shown in the detail view, where the next key acts
    assert tab.locator(".tile.selected").get_attribute("data-image-id") == "2"
    assert tab.locator(".detail-view").get_attribute("data-image-id") == "2"
    assert tab.locator(".detail-title").inner_text() == "img2.png"


def test_the_none_button_sends_none_and_accept_sends_the_class_shown(harness):
    tab = labelling(harness, 1, 2, 3)
    tab.click("#class-buttons .class-button >> nth=1")
    tab.click("#accept")
    assert sent(tab) == [["submit", {"kind": "none", "name": NONE_OF_THESE, "sequence": 1, "image_id": 1}],
                         ["submit", {"kind": "accept", "name": "circle", "sequence": 2, "image_id": 2}]]
    assert tab.locator(".tile[data-image-id='1'] .badge").inner_text() == f"{NONE_OF_THESE} (you)"


def test_actions_after_a_blind_one_wait_for_its_answer_in_order(harness):
    tab = labelling(harness, 1, 2, 3)
    tab.evaluate("() => { window.labelloop.undo(); window.labelloop.label('none'); window.labelloop.step(1); }")
    assert sent(tab) == [["undo", {"sequence": 1}]]  # the rest wait: the page cannot foresee undo
    assert tab.locator(".detail-title").inner_text() == "waiting for the server…"
    assert tab.evaluate("() => window.labelloop.held()")
    # the answer: image 3 got its label back and is selected; the waiting actions act on it, in order
    draw(tab, "#gallery", tiles(1, 2, 3, drawing=2, selected=3, answers="1"))
    draw(tab, "#detail-view", detail(3, drawing=3))  # numbered after its gallery, as the server draws them
    assert sent(tab)[1:] == [["submit", {"kind": "none", "name": None, "sequence": 2, "image_id": 3}],
                             ["input", {"step": 1, "sequence": 3}]]  # → past the last tile: the server turns the page
    assert tab.locator(".detail-title").inner_text() == "waiting for the server…"  # blind again, on the last page


def test_a_blind_answer_whose_detail_view_lands_before_its_gallery_releases_the_waiting_keys(harness):
    # Issue 24: the answer to U drew the detail view first (another Gradio update, or the detail view's observer run
    # first): while U was still unanswered it was taken for an older drawing and told "waiting" again, and once the
    # gallery said U was answered nothing named an image any more, so the tab stayed "waiting" and kept its keys.
    tab = labelling(harness, 1, 2, 3)
    tab.evaluate("() => { window.labelloop.undo(); window.labelloop.label('none'); }")
    draw(tab, "#detail-view", detail(3, drawing=3))  # the undo's own detail view (drawn after its gallery) lands first
    assert sent(tab) == [["undo", {"sequence": 1}]]  # not yet: the gallery has not said U is answered
    draw(tab, "#gallery", tiles(1, 2, 3, drawing=2, selected=3, answers="1"))
    assert tab.locator(".detail-view").get_attribute("data-image-id") == "3"
    assert tab.locator(".detail-title").inner_text() == "img3.png"
    assert sent(tab)[1:] == [["submit", {"kind": "none", "name": None, "sequence": 2, "image_id": 3}]]
    # a detail view the server drew before it undid (a labels check's) names the image before U: never the keys'
    tab.evaluate("() => { window.labelloop.undo(); window.labelloop.label('none'); }")
    draw(tab, "#detail-view", detail(3, drawing=5))
    draw(tab, "#gallery", tiles(1, 2, 3, drawing=6, selected=2, answers="1,2,3"))
    assert len(sent(tab)) == 3 and tab.locator(".detail-title").inner_text() == "waiting for the server…"
    draw(tab, "#detail-view", detail(2, drawing=7))  # the undo's own
    assert sent(tab)[3:] == [["submit", {"kind": "none", "name": None, "sequence": 4, "image_id": 2}]]


def test_a_detail_view_drawn_before_the_blind_answer_landing_after_it_never_takes_the_waiting_keys(harness):
    # Issue 24 (bench_page_random seed 24: keys pressed while "waiting" sent to an image the view never named): the
    # gallery said U was answered, then a detail view the server drew before it (a labels check's, a click's) landed
    # and named the image of before U; the keys that waited went to it. Only one drawn after the answer names it.
    tab = labelling(harness, 1, 2, 3)
    tab.evaluate("() => { window.labelloop.undo(); window.labelloop.label('none'); }")
    draw(tab, "#gallery", tiles(1, 2, 3, drawing=6, selected=2, answers="1"))
    draw(tab, "#detail-view", detail(3, drawing=5))  # drawn before the undo's gallery, landing after it
    assert sent(tab) == [["undo", {"sequence": 1}]]
    assert tab.locator(".detail-title").inner_text() == "waiting for the server…"
    tab.evaluate("() => window.labelloop.label('none')")  # a key pressed now waits too, in order
    draw(tab, "#detail-view", detail(2, drawing=7))  # the undo's own
    assert sent(tab)[1:] == [["submit", {"kind": "none", "name": None, "sequence": 2, "image_id": 2}],
                             ["submit", {"kind": "none", "name": None, "sequence": 3, "image_id": 3}]]


def test_an_action_answered_after_a_newer_one_moves_nothing_as_on_the_server(harness):
    # A click sent before U reached the server after it: the server left U's selection (app/action_order.py), but
    # the page showed the click again over U's answer, with its move, and the key that waited for U went to the
    # clicked image. Its label still shows (it lands); its move does not.
    tab = labelling(harness, 1, 2, 3)
    tab.click(".tile[data-image-id='2']")
    tab.evaluate("() => { window.labelloop.label('class', {name: 'circle'}); }")  # on 2, moves to 3
    tab.evaluate("() => { window.labelloop.undo(); window.labelloop.label('none'); }")
    assert [name for name, _ in sent(tab)] == ["click", "submit", "undo"]
    # U answered first (it undid image 1's label and selected it); the click and the label are still on their way
    draw(tab, "#gallery", tiles(1, 2, 3, drawing=2, selected=1, answers="3"))
    draw(tab, "#detail-view", detail(1, drawing=3))
    assert sent(tab)[3:] == [["submit", {"kind": "none", "name": None, "sequence": 4, "image_id": 1}]]
    assert tab.locator(".tile[data-image-id='2'] .badge").inner_text() == "circle (you)"  # its label still shown
    assert tab.locator(".tile.selected").get_attribute("data-image-id") == "2"  # where the none key moved


def test_keys_waiting_for_a_detail_view_that_never_lands_are_dropped_saying_so(harness):
    # the blind action answered, but no detail view drawn after the answer ever lands: the keys are not kept for good
    tab = labelling(harness, 1, 2, 3)
    tab.clock.install()  # before the stall timer is set: run_for then fires it (a real one took 20 s)
    tab.evaluate("() => { window.labelloop.undo(); window.labelloop.label('none'); }")
    draw(tab, "#gallery", tiles(1, 2, 3, drawing=6, selected=2, answers="1"))
    tab.clock.run_for(20_000)
    assert sent(tab) == [["undo", {"sequence": 1}]]
    assert "1 action(s) not sent" in tab.locator(".detail-note").inner_text()


def test_actions_waiting_on_a_server_that_never_answers_are_dropped_saying_so(harness):
    # no answer to U at all (a server error): after STALL the view names the image the server last drew and says
    # that the key waiting meanwhile was not sent, instead of saying "waiting" for good with the key kept unsent
    tab = labelling(harness, 1, 2, 3)
    draw(tab, "#detail-view", detail(1, drawing=2))  # the page's load answer: the server's newest detail view
    tab.clock.install()  # after the drawings above: their settling waits on a real timer
    tab.evaluate("() => { window.labelloop.undo(); window.labelloop.label('none'); }")
    tab.clock.run_for(20_000)
    assert sent(tab) == [["undo", {"sequence": 1}]]
    assert tab.locator(".detail-view").get_attribute("data-image-id") == "1"
    assert tab.locator(".detail-title").inner_text() == "img1.png"
    assert "1 action(s) not sent" in tab.locator(".detail-note").inner_text()
    assert not tab.evaluate("() => window.labelloop.held()")


def test_the_newest_gallery_drawing_wins_with_the_unanswered_actions_over_it(harness):
    tab = labelling(harness, 1, 2, 3)
    draw(tab, "#gallery", tiles(1, 2, 3, drawing=5, selected=1))
    tab.evaluate("() => window.labelloop.label('class', {name: 'circle'})")
    draw(tab, "#gallery", tiles(7, 8, drawing=4))  # an older answer, applied after the newer one
    assert tab.locator(".drawing").get_attribute("data-drawing") == "5"
    assert tab.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.imageId)") == ["1", "2", "3"]
    # the label, not answered by that drawing, is shown again over it
    assert tab.locator(".tile[data-image-id='1'] .badge").inner_text() == "circle (you)"
    draw(tab, "#gallery", tiles(1, 2, 3, drawing=6, selected=2, answers="1"))  # its answer: the server's truth
    assert tab.locator(".tile[data-image-id='1'] .badge").inner_text() == "circle 90%"


def test_the_next_page_is_drawn_ahead_from_its_copy(harness):
    tab = labelling(harness, 1, 2, shown=2)
    draw(tab, "#gallery", tiles(1, 2, drawing=2, selected=2, next_page=(3, 4)))
    tab.evaluate("() => window.labelloop.step(1)")  # → on the page's last tile
    assert sent(tab) == [["input", {"step": 1, "sequence": 1}]]
    assert tab.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.imageId)") == ["3", "4"]
    assert tab.locator(".tile.selected").get_attribute("data-image-id") == "3"
    assert tab.locator(".detail-view").get_attribute("data-image-id") == "3"


def test_the_detail_view_follows_a_click_at_once_and_its_newest_drawing_wins(harness):
    tab = labelling(harness, 1, 2, 3)
    tab.click(".tile[data-image-id='3']")
    assert sent(tab) == [["click", {"image_id": 3, "sequence": 1}]]
    view = tab.locator(".detail-view")
    assert view.get_attribute("data-image-id") == "3" and "pending" in view.get_attribute("class").split()
    thumbnail = tab.locator(".tile[data-image-id='3'] img").evaluate("picture => picture.src")
    assert view.locator("img").evaluate("picture => picture.src") == thumbnail
    draw(tab, "#detail-view", detail(3, drawing=7))
    draw(tab, "#detail-view", detail(2, drawing=6))  # older, applied late
    assert view.get_attribute("data-drawing") == "7" and view.get_attribute("data-image-id") == "3"
    tab.evaluate("() => window.labelloop.similar()")
    assert sent(tab)[-1] == ["submit", {"image_id": 3}]


def test_the_detail_picture_zooms_and_escape_zooms_out(harness):
    draw(harness, "#detail-view", detail(1).replace("</div></div>", "</div><img src='x.png'></div>"))
    run(harness, "detail.js", "#detail-view")
    harness.locator(".detail-view img").dispatch_event("click")  # a broken picture has no size to click
    assert "zoomed" in harness.locator(".detail-view").get_attribute("class").split()
    harness.keyboard.press("Escape")
    assert "zoomed" not in harness.locator(".detail-view").get_attribute("class").split()


KEYS = """() => {
  window.calls = [];
  window.labelloop = {label: (...a) => calls.push(['label', ...a]), step: (s) => calls.push(['step', s]),
                      undo: () => calls.push(['undo']), similar: () => calls.push(['similar'])};
  document.querySelectorAll('button').forEach(
    b => b.addEventListener('click', () => calls.push(['click', b.id || b.innerText])));
}"""


@pytest.mark.parametrize(("key", "call"), [
    ("a", ["label", "accept"]), ("N", ["label", "none"]), ("s", ["similar"]), ("u", ["undo"]),
    ("ArrowRight", ["step", 1]), ("ArrowLeft", ["step", -1]), ("1", ["click", "circle [1]"]),
    ("[", ["click", "prev-page"]), ("]", ["click", "next-page"]), ("PageDown", ["click", "next-page"]),
    ("x", None), ("Control+a", None)])
def test_the_keyboard_map(harness, key, call):
    harness.evaluate(KEYS)
    harness.evaluate(f"() => ({static_text('keys.js')})()")
    harness.keyboard.press(key)
    assert harness.evaluate("() => window.calls") == ([call] if call else [])


def test_keys_leave_typing_alone_and_a_slider_its_arrows(harness):
    harness.evaluate(KEYS)
    harness.evaluate(f"() => ({static_text('keys.js')})()")
    harness.click("#search")
    harness.keyboard.press("a")
    harness.focus("#slider")
    harness.keyboard.press("ArrowRight")
    harness.keyboard.press("n")
    assert harness.evaluate("() => window.calls") == [["label", "none"]]
    assert harness.evaluate("() => document.querySelector('#search').value") == "a"


def test_keys_do_nothing_while_the_gallery_is_hidden(harness):
    harness.evaluate(KEYS)
    harness.evaluate(f"() => ({static_text('keys.js')})()")
    harness.evaluate("() => { document.querySelector('#gallery').style.display = 'none'; }")
    harness.keyboard.press("a")
    assert harness.evaluate("() => window.calls") == []


def test_a_map_selection_sends_its_box_and_the_legend_entries_shown(harness):
    harness.evaluate("""() => {
      const plot = document.querySelector('#map-plot [data-testid=plotly]');
      plot.handlers = {};
      plot.on = (name, handler) => { plot.handlers[name] = handler; };
      plot.data = [{type: 'heatmap', name: 'density'}, {type: 'scattergl', name: 'circle'},
                   {type: 'scattergl', name: 'square', visible: 'legendonly'},
                   {type: 'scattergl', name: 'star', visible: true}];
    }""")
    run(harness, "map.js", "#map-plot")
    harness.wait_for_function("() => document.querySelector('[data-testid=plotly]').dataset.labelloop")
    harness.evaluate("""() => {
      const on = document.querySelector('[data-testid=plotly]').handlers;
      on.plotly_selected({range: {x: [0, 1], y: [2, 3]}});
      on.plotly_selected({lassoPoints: {x: [0, 1, 0], y: [0, 0, 1]}});
      on.plotly_selected(undefined);  // a click that drops the selection
      return on.plotly_hover({points: [{customdata: 7}], event: {clientX: 10, clientY: 20}});
    }""")
    assert sent(harness) == [["select", {"box": [[0, 1], [2, 3]], "visible": ["circle", "star"]}],
                             ["select", {"lasso": [[0, 1, 0], [0, 0, 1]], "visible": ["circle", "star"]}]]
    card = harness.locator("#map-hover-card")
    assert card.inner_html() == "<b>tile 7</b>" and card.is_visible()
    assert card.evaluate("c => [c.style.left, c.style.top]") == ["24px", "34px"]
    harness.evaluate("() => document.querySelector('[data-testid=plotly]').handlers.plotly_unhover()")
    assert not card.is_visible()
