"""A class's own key, set on the Classes tab, in Chromium: shown on its button and in the hotkeys line of every open
tab, and pressing it labels the image the detail panel shows with that class."""

import pytest
from playwright.sync_api import expect

from tests.browser import (choose, copy_project, human_label, open_page, select_tile, served, skip_without_chromium,
                           wait_for)

skip_without_chromium()


@pytest.fixture
def scratch(demo_template, tmp_path):
    with served(copy_project(demo_template, tmp_path / "project")) as running:
        yield running


def test_a_letter_key_set_on_the_classes_tab_labels_the_shown_image_in_every_tab(scratch, browser):
    url, workspace = scratch
    other_tab = open_page(browser, url)  # open before the key is set: the poll must bring it up to date
    page = open_page(browser, url)
    first = workspace.view.class_names()[0]
    page.get_by_role("tab", name="Classes").click()
    choose(page, "class", first)
    page.locator("#new-key textarea, #new-key input").first.fill("c")
    page.locator("#set-key").click()
    expect(page.locator("#classes-message")).to_contain_text(f"the key of {first} is now c")
    expect(page.locator("#classes-table")).to_contain_text(first)
    assert workspace.project.store.classes()[0]["key"] == "c"
    page.get_by_role("tab", name="Label").click()

    for tab, tile in ((page, 0), (other_tab, 1)):
        expect(tab.locator(".class-button").first).to_have_text(f"{first} [c]")
        expect(tab.locator("#hotkeys")).to_contain_text(f"c {first}")
        relpath = select_tile(tab, tile)
        assert human_label(workspace, relpath) != (first, "human")
        tab.keyboard.press("c")
        assert wait_for(lambda: human_label(workspace, relpath) == (first, "human"))
        expect(tab.locator("#last-action")).to_contain_text(relpath)
    for tab in (other_tab, page):
        tab.context.close()
