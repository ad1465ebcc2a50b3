"""Browser test of the random audit: a person audits 30 images blind (no prediction anywhere on the page while they
wait for a label), the header gives the estimate with its interval, the Quality tab its confusion matrix, and after
a round the Quality tab shows both rounds with their intervals."""

import pytest
from playwright.sync_api import expect

from engine.demo.dataset import read_ground_truth
from tests.browser import copy_project, detail_path, human_label, open_page, served, skip_without_chromium
from tests.browser import wait_for, wait_for_job, wait_for_page

skip_without_chromium()


@pytest.fixture(scope="module")
def server(demo_template, tmp_path_factory):
    with served(copy_project(demo_template, tmp_path_factory.mktemp("audit") / "project")) as running:
        yield running


def test_a_blind_audit_gives_the_estimate_and_the_quality_view(server, browser, demo_template, screenshots):
    url, workspace = server
    truth = read_ground_truth(demo_template.parent / "ground_truth.csv")
    classes = workspace.view.class_names()
    page = open_page(browser, url)
    expect(page.locator("#quality-line")).to_contain_text("accuracy unknown")

    page.locator("#audit").click()
    wait_for_page(page, r"random audit · 30 drawn")
    badges = page.locator("#gallery .tile .badge").all_inner_texts()
    assert len(badges) == 30 and set(badges) == {"audit: your label?"}  # no class, no confidence
    assert page.locator("#gallery .tile[data-shown='']").count() == 30
    expect(page.locator("#detail-text")).to_contain_text("random audit")
    page.screenshot(path=str(screenshots / "audit.png"))

    first = detail_path(page)
    page.keyboard.press("a")  # accepting the hidden guess is refused: the audit must not agree with the machine
    expect(page.get_by_text("this image is in the random audit").first).to_be_visible()
    assert human_label(workspace, first)[1] != "human"

    for number in range(30):
        expect(page.locator("#detail-text")).to_contain_text("random audit")  # blind, image after image
        relpath = detail_path(page)
        assert "zero-shot" not in page.locator("#detail-text").inner_text()
        page.keyboard.press(str(classes.index(truth[relpath]) + 1))
        assert wait_for(lambda: human_label(workspace, relpath) == (truth[relpath], "human")), relpath
        if number < 29:
            expect(page.locator("#detail-view strong").first).not_to_have_text(relpath)

    expect(page.locator("#quality-line")).to_contain_text("30 audited", timeout=10_000)
    expect(page.locator("#quality-line")).to_contain_text("right (")
    quality = workspace.view.quality(wait=True)
    assert quality["audited"] == 30 and quality["low"] <= quality["accuracy"] <= quality["high"]

    page.get_by_role("tab", name="Quality").click()
    expect(page.locator("#quality-confusion")).to_contain_text("confusion matrix of the audit")
    expect(page.locator("#quality-summary")).to_contain_text("30 labelled blind")
    page.screenshot(path=str(screenshots / "quality.png"), full_page=True)

    page.get_by_role("tab", name="Rounds").click()
    page.locator("#start-round").click()
    wait_for_job(page, "done")  # a demo round takes seconds: the header may never show it running
    page.get_by_role("tab", name="Quality").click()
    rounds = workspace.view.quality(wait=True)["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and all(r["low"] <= r["accuracy"] <= r["high"] for r in rounds)
    expect(page.locator("#quality-rounds")).to_contain_text("estimated accuracy per round")
    # two points on the line (zero-shot and round 1), and the interval band around them
    expect(page.locator("#quality-rounds .scatterlayer .trace").nth(1).locator(".point")).to_have_count(2)
    page.screenshot(path=str(screenshots / "quality_rounds.png"), full_page=True)
    page.context.close()
