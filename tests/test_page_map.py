"""The Map tab in Chromium: it draws one point per image, hovering shows the image's tile, and a box dragged on the
map shows exactly the images inside it in the Label tab's gallery."""

import pytest
from playwright.sync_api import expect

from tests.browser import copy_project, open_page, served, skip_without_chromium, wait_for_page

skip_without_chromium()

PLOT = "document.querySelector('#map-plot [data-testid=plotly]')"
POINTS = f"""() => {PLOT}._fullData.filter(t => t.type === 'scattergl').map(t => ({{
    name: t.name, x: Array.from(t.x), y: Array.from(t.y), ids: Array.from(t.customdata)}}))"""


@pytest.fixture
def served_map(demo_template, tmp_path, browser):
    with served(copy_project(demo_template, tmp_path / "project")) as (url, workspace):
        workspace.map.umap = False  # PCA only: UMAP's first run compiles for a minute
        page = open_page(browser, url)
        page.get_by_role("tab", name="Map").click()
        page.wait_for_function(f"{PLOT} && {PLOT}.data && {PLOT}.data.length > 0 && {PLOT}.dataset.labelloop")
        yield page, workspace
        page.context.close()


def drawn_points(page) -> list[dict]:
    return page.evaluate(POINTS)


def test_the_map_draws_one_point_per_image_coloured_by_class(served_map):
    page, workspace = served_map
    traces = drawn_points(page)
    ids = [image_id for trace in traces for image_id in trace["ids"]]
    usable = workspace.project.store.embedded_ids(workspace.project.store.get_meta("model_id")).tolist()
    assert sorted(ids) == sorted(usable)
    assert {trace["name"] for trace in traces} <= set(workspace.view.class_names()) | {"none of these",
                                                                                       "not predicted"}
    expect(page.locator("#map-note")).to_contain_text(f"PCA of {len(usable):,} images")
    page.get_by_role("radio", name="status").check()
    page.wait_for_function(f"{PLOT}.data.some(t => t.name === 'unlabeled')")


def test_hovering_a_point_shows_its_thumbnail(served_map):
    page, workspace = served_map
    trace = drawn_points(page)[0]
    x, y = pixel_of(page, trace["x"][0], trace["y"][0])
    page.mouse.move(x, y)
    card = page.locator("#map-hover-card")
    expect(card).to_be_visible()
    relpath = workspace.project.store.relpaths_of([trace["ids"][0]])[trace["ids"][0]]
    expect(card.locator("img")).to_have_attribute("alt", relpath)


def pixel_of(page, x: float, y: float) -> tuple[float, float]:
    """Where the data point (x, y) is on the screen."""
    return tuple(page.evaluate(f"""([x, y]) => {{
        const plot = {PLOT}, layout = plot._fullLayout, box = plot.getBoundingClientRect();
        return [box.left + layout._size.l + layout.xaxis.l2p(x), box.top + layout._size.t + layout.yaxis.l2p(y)];
    }}""", [x, y]))


def test_a_box_dragged_on_the_map_shows_exactly_those_images_in_the_gallery(served_map):
    page, _ = served_map
    traces = drawn_points(page)
    points = [(x, y) for trace in traces for x, y in zip(trace["x"], trace["y"])]
    xs, ys = sorted(p[0] for p in points), sorted(p[1] for p in points)
    # a box over the left edge of the cloud: fewer images than a gallery page holds
    start = pixel_of(page, xs[0] - 0.01, ys[len(ys) * 2 // 3])
    end = pixel_of(page, xs[len(xs) // 12], ys[len(ys) // 3])
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=5)
    page.mouse.move(*end, steps=5)
    page.mouse.up()
    # the images Plotly marks selected: those inside the box as the browser drew it
    expected = sorted(page.evaluate(f"""() => {PLOT}._fullData.filter(t => t.type === 'scattergl')
        .flatMap(t => (t.selectedpoints || []).map(row => t.customdata[row]))"""))
    assert 0 < len(expected) <= 48
    wait_for_page(page, rf"selection from map: {len(expected)} images")
    shown = sorted(int(tile.get_attribute("data-image-id")) for tile in page.locator("#gallery .tile").all())
    assert shown == expected
    page.locator("#show-all").click()
    wait_for_page(page, r"^page 1 of")
