"""The Map tab in Chromium: it draws one point per image, hovering shows the image's tile, and a box dragged on the
map shows exactly the images inside it in the Label tab's gallery, saying which of them a filter set before hides; a
multi-label project's map is coloured by the tag chosen."""

import pytest
from playwright.sync_api import expect

from tests.browser import choose, copy_project, open_page, served, skip_without_chromium, wait_for_page
from tests.test_multilabel import multi_project  # noqa: F401 (a fixture)

skip_without_chromium()

PLOT = "document.querySelector('#map-plot [data-testid=plotly]')"
# The figure as the page gave it to Plotly (the plot's public `data` and `layout`), never Plotly's private fields.
# Plotly's JSON sends a numpy array as {dtype, bdata: base64 of its bytes}; VALUES reads it (or a plain list) back.
VALUES = """(v => {
    const types = {f4: Float32Array, f8: Float64Array, i1: Int8Array, i2: Int16Array, i4: Int32Array,
                   u1: Uint8Array, u2: Uint16Array, u4: Uint32Array};
    return v && v.bdata ? Array.from(new types[v.dtype](Uint8Array.from(atob(v.bdata), c => c.charCodeAt(0)).buffer))
                        : Array.from(v || []); })"""
POINTS = f"""() => {PLOT}.data.filter(t => t.type === 'scattergl').map(t => ({{
    name: t.name, x: {VALUES}(t.x), y: {VALUES}(t.y), ids: {VALUES}(t.customdata)}}))"""


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
    """Where the data point (x, y) is on the screen: the axes' ranges (Plotly writes the ranges it chose into the
    plot's layout) over the plotting area (its drag surface, the `nsewdrag` rectangle)."""
    return tuple(page.evaluate(f"""([x, y]) => {{
        const plot = {PLOT}, area = plot.querySelector('.nsewdrag').getBoundingClientRect();
        const [x0, x1] = plot.layout.xaxis.range, [y0, y1] = plot.layout.yaxis.range;
        return [area.left + (x - x0) / (x1 - x0) * area.width, area.bottom - (y - y0) / (y1 - y0) * area.height];
    }}""", [x, y]))


def drag_box_over_the_left_edge(page) -> dict[str, list[int]]:
    """Drag a box over the left edge of the cloud (fewer images than a gallery page holds); returns the images
    Plotly marks selected, those inside the box as the browser drew it, by legend entry (class). The plot is
    scrolled into view first, as a person would: a box dragged where the window does not show is no drag."""
    page.locator("#map-plot").scroll_into_view_if_needed()
    points = [(x, y) for trace in drawn_points(page) for x, y in zip(trace["x"], trace["y"])]
    xs, ys = sorted(p[0] for p in points), sorted(p[1] for p in points)
    start = pixel_of(page, xs[0] - 0.01, ys[len(ys) * 2 // 3])
    end = pixel_of(page, xs[len(xs) // 12], ys[len(ys) // 3])
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=5)
    page.mouse.move(*end, steps=5)
    page.mouse.up()
    return page.evaluate(f"""() => Object.fromEntries({PLOT}.data.filter(t => t.type === 'scattergl')
        .map(t => {{ const ids = {VALUES}(t.customdata);
                    return [t.name, Array.from(t.selectedpoints || []).map(row => ids[row])]; }}))""")


def tiles_shown(page) -> list[int]:
    return sorted(int(tile.get_attribute("data-image-id")) for tile in page.locator("#gallery .tile").all())


def test_a_box_dragged_on_the_map_shows_exactly_those_images_in_the_gallery(served_map):
    page, _ = served_map
    expected = sorted(image_id for ids in drag_box_over_the_left_edge(page).values() for image_id in ids)
    assert 0 < len(expected) <= 48
    wait_for_page(page, rf"selection from map: {len(expected)} images")
    assert tiles_shown(page) == expected
    page.locator("#show-all").click()
    wait_for_page(page, r"^page 1 of")


def test_a_map_selection_under_a_class_filter_says_what_the_filter_hides_and_clears_it(served_map):
    """The selection's images the class filter set before hides are counted and the filter named, never an empty
    gallery without a word; ✕ clear filters shows them all and resets the filter's control."""
    page, workspace = served_map
    # the class fewest images at the cloud's left edge show: the filter hides most of the box's images
    traces = drawn_points(page)
    left_edge = sorted(x for trace in traces for x in trace["x"])[sum(len(t["x"]) for t in traces) // 12]
    at_edge = {trace["name"]: sum(x <= left_edge for x in trace["x"]) for trace in traces}
    rare = min(workspace.view.class_names(), key=lambda name: at_edge.get(name, 0))
    page.get_by_role("tab", name="Label").click()
    choose(page, "shows class", rare)
    wait_for_page(page, r"^page 1 of")
    page.get_by_role("tab", name="Map").click()
    by_class = drag_box_over_the_left_edge(page)
    everything = sorted(image_id for ids in by_class.values() for image_id in ids)
    shown = sorted(by_class.get(rare, []))
    assert len(shown) < len(everything) <= 48
    hidden = len(everything) - len(shown)
    wait_for_page(page, rf"selection from map: {len(everything)} images · page 1 of 1 · {len(shown)} of "
                        rf"{len(everything)} images shown; {hidden} hidden by: class '{rare}'")
    assert tiles_shown(page) == shown
    if not shown:
        expect(page.locator("#gallery .empty")).to_have_text(
            f"No image matches these filters: class '{rare}'. ✕ clear filters shows the {len(everything)} images "
            "they hide.")
    page.locator("#clear-filters").click()
    wait_for_page(page, rf"selection from map: {len(everything)} images · page 1 of 1 · {len(everything)} images$")
    assert tiles_shown(page) == everything
    expect(page.get_by_label("shows class", exact=True)).to_have_value("(all classes)")
    expect(page.locator("#clear-filters")).to_be_hidden()


def test_a_multi_label_map_colours_by_the_tag_chosen(multi_project, browser):  # noqa: F811
    """A multi-label project's map: a tag dropdown, points coloured by whether each image has the chosen tag, lacks
    it or is uncertain of it, or by its probability (the legend and the colour bar name the tag)."""
    with served(multi_project) as (url, workspace):
        workspace.map.umap = False
        store = workspace.project.store
        page = open_page(browser, url)
        page.get_by_role("tab", name="Map").click()
        page.wait_for_function(f"{PLOT} && {PLOT}.data && {PLOT}.data.length > 0")
        traces = drawn_points(page)
        names = {trace["name"] for trace in traces}
        assert names & {"has circle", "lacks circle"} and names <= {"has circle", "lacks circle", "not predicted",
                                                                    "uncertain of circle (under 75% sure)"}
        usable = store.embedded_ids(store.get_meta("model_id")).tolist()
        assert sorted(i for trace in traces for i in trace["ids"]) == sorted(usable)
        expect(page.get_by_role("radio", name="class", exact=True)).to_have_count(0)  # one class per image: not in tags

        choose(page, "tag", "square")
        page.get_by_role("radio", name="tag probability").check()
        page.wait_for_function(f"{PLOT}.data.some(t => t.name === 'probability of square')")
        figure = page.evaluate(f"""() => {PLOT}.data.filter(t => t.name === 'probability of square').map(t => ({{
            ids: {VALUES}(t.customdata), colours: {VALUES}(t.marker.color),
            title: t.marker.colorbar.title.text}}))[0]""")
        assert figure["title"] == "P(square)"
        rows = store.shown_tag_rows(figure["ids"], store.shown_round())
        square = next(c["id"] for c in store.classes() if c["name"] == "square")
        expected = [rows[i]["probs"][rows[i]["class_ids"].index(square)] for i in figure["ids"]]
        assert sorted(figure["ids"]) == sorted(usable)
        assert figure["colours"] == pytest.approx(expected, abs=1e-6)
        page.context.close()
