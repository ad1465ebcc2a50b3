"""The Label tab's finding tools in Chromium on the demo project: a text search puts the class it names first, "more
like this" lists the engine's nearest neighbours, and planted copies show up as one duplicate group."""

import shutil

import cv2
import pytest
from playwright.sync_api import expect

from engine.demo.dataset import GROUND_TRUTH, read_ground_truth
from engine.views.gallery import PAGE_SIZE
from engine.learning.class_prompts import prompts_for
from engine.project.folder import open_project
from tests.browser import copy_project, open_page, select_tile, served, skip_without_chromium, wait_for_page

skip_without_chromium()


@pytest.fixture(scope="module")
def server(demo_template, tmp_path_factory):
    with served(copy_project(demo_template, tmp_path_factory.mktemp("find") / "project")) as running:
        yield running


def tile_paths(page) -> list[str]:
    return page.locator("#gallery .tile").evaluate_all("tiles => tiles.map(t => t.dataset.path)")


def test_a_text_search_for_a_class_prompt_puts_that_class_first(server, page, demo_template):
    _, workspace = server
    truth = read_ground_truth(demo_template.parent / GROUND_TRUTH)
    first = workspace.view.classes()[0]  # the project's first class, with its first prompt
    prompt = prompts_for(first["name"], workspace.project.store.get_meta("templates"), first["prompts"])[0]
    page.locator("#search-text textarea, #search-text input").first.fill(prompt)
    page.keyboard.press("Enter")
    wait_for_page(page, "search: ")
    expect(page.get_by_label("sort", exact=True)).to_have_value("best match")
    shown = tile_paths(page)[:20]
    precision = sum(truth[path] == first["name"] for path in shown) / 20
    assert precision >= 0.8, (prompt, precision)
    engine = [m.path for m in workspace.discovery.search_text(prompt, 20)]
    assert shown == engine  # best first, as the engine ranks them
    assert page.locator("#gallery .tile .score").first.inner_text().startswith("0.")  # the similarity shows

    page.locator("#show-all").click()  # the filters still apply on top of a search, and show-all leaves it
    wait_for_page(page, r"^page 1 of")
    expect(page.locator("#show-all")).to_be_hidden()


def test_more_like_this_lists_the_nearest_neighbours_itself_first(server, page):
    _, workspace = server
    relpath = select_tile(page, 5)
    page.keyboard.press("s")
    wait_for_page(page, f"like {relpath}")
    image_id = workspace.discovery.image_id(relpath)
    expected = [m.path for m in workspace.discovery.search_like(image_id, PAGE_SIZE)]
    assert tile_paths(page) == expected and expected[0] == relpath
    other = select_tile(page, 3)  # the button does the same for the image now shown
    page.locator("#similar").click()
    wait_for_page(page, f"like {other}")
    assert tile_paths(page)[0] == other


@pytest.fixture
def planted(demo_template, tmp_path):
    """A demo project over its own images folder, with an exact copy and an enlarged copy of one drawing."""
    images = tmp_path / "images"
    shutil.copytree(demo_template.parent / "images", images)
    root = copy_project(demo_template, tmp_path / "project")
    with open_project(root) as project:
        project.store.set_meta(images_root=str(images))
    original = "sketch_0003.jpg"
    shutil.copy(images / original, images / "copy_of_0003.jpg")
    picture = cv2.imread(str(images / original))
    cv2.imwrite(str(images / "enlarged_0003.jpg"), cv2.resize(picture, (256, 256), interpolation=cv2.INTER_CUBIC),
                [cv2.IMWRITE_JPEG_QUALITY, 80])
    return root, original


def test_a_planted_exact_copy_and_resized_copy_are_one_duplicate_group(planted, browser):
    root, original = planted
    with served(root) as (url, workspace):
        workspace.start_ingest()
        workspace.runner.wait(timeout=300)
        page = open_page(browser, url)
        page.locator("#duplicates").click()
        wait_for_page(page, "duplicates: group 1 of 1")
        assert sorted(tile_paths(page)) == sorted([original, "copy_of_0003.jpg", "enlarged_0003.jpg"])
        expect(page.locator("#gallery .page-text")).to_contain_text(f"exact copies: {original}, copy_of_0003.jpg")
        page.locator("#duplicate-threshold input").fill("0.9999")  # stricter: only the exact copies remain
        page.locator("#next-group").click()
        wait_for_page(page, "duplicates: group 1 of 1 \\(cosine ≥ 0.9999\\)")
        assert sorted(tile_paths(page)) == sorted([original, "copy_of_0003.jpg"])
        page.context.close()
