"""A multi-label project in Chromium (issue 27): number keys turn tags over on the image the detail view shows and
stay on it, the tile names its tags, Enter moves on, a round runs from the page and the export holds the tags."""


from playwright.sync_api import expect

from engine.views.gallery import GalleryQuery

from tests.browser import choose, export_csv_from_page, open_page, select_tile, served, skip_without_chromium
from tests.browser import wait_for, wait_for_job
from tests.test_multilabel import multi_project  # noqa: F401 (a fixture)

skip_without_chromium()


def _tags(store, image_id: int) -> tuple[set[str], set[str]] | None:
    """A person's (tags, looked at) of the image, by name, as the serving process reads them."""
    names = {c["id"]: c["name"] for c in store.classes()}
    for row in store.human_tag_labels().to_pylist():
        if row["image_id"] == image_id:
            return {names[t] for t in row["tags"]}, {names[t] for t in row["looked_at"]}
    return None


def test_keys_toggle_tags_then_a_round_and_an_export_hold_them(multi_project, browser):  # noqa: F811
    with served(multi_project) as (url, workspace):
        page = open_page(browser, url)
        badges = page.locator("#gallery .tile .badge").all_inner_texts()
        assert badges and all("%" in text or text == "no tag" for text in badges), badges
        relpath = select_tile(page, 0)
        store = workspace.project.store
        image_id = store.image_ids([relpath])[relpath][0]
        row = store.shown_tag_rows([image_id], store.shown_round())[image_id]
        names = {c["id"]: c["name"] for c in store.classes()}
        predicted = {names[c] for c, p in zip(row["class_ids"], row["probs"]) if p >= 0.5}
        page.keyboard.press("1")
        page.keyboard.press("2")
        toggled = (predicted ^ {"circle", "square"}) & {"circle", "square"}  # a person's tags: those looked at
        assert wait_for(lambda: _tags(store, image_id) == (toggled, {"circle", "square"})), _tags(store, image_id)
        expect(page.locator("#detail-view .detail-view:not(.pending) strong")).to_have_text(relpath)  # stayed
        tile = page.locator(f"#gallery .tile[data-path='{relpath}'] .badge")
        for tag in toggled:
            expect(tile).to_contain_text(f"{tag} (you)")
        page.keyboard.press("Enter")
        expect(page.locator("#detail-view .detail-view:not(.pending) strong")).not_to_have_text(relpath)

        choose(page, "shows class", "square")  # the tag filters: the images that lack square
        page.locator("#tag-filter").get_by_label("lacks", exact=True).check()
        query = GalleryQuery(class_name="square", tag_filter="lacks", page_size=100)
        lacking = sorted(item.relpath for item in workspace.view.gallery(query).items)
        assert lacking and (relpath in lacking) == ("square" not in toggled)
        page.wait_for_function("(paths) => JSON.stringify([...document.querySelectorAll('#gallery .tile')]"
                               ".map(t => t.dataset.path).sort()) === JSON.stringify(paths)", arg=lacking,
                               timeout=30_000)

        page.get_by_role("tab", name="Rounds").click()
        page.locator("#start-round").click()
        wait_for_job(page)
        assert store.shown_round() == 1  # the page shows the round's predictions

        _, rows = export_csv_from_page(page)
        assert (rows[relpath]["label"], rows[relpath]["source"]) == (";".join(sorted(toggled)), "human")
        assert len(rows) == 12
        page.context.close()
