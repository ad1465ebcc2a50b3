"""Browser test of the Team tab (issue 29): on a project without people it says so in one line; after two people's
labels of the same images (imported through engine.labels.team, as `label --as` does), opening the tab again shows
Fleiss' kappa, the pair's Cohen's kappa and each person's row as engine.learning.agreement computes them on the same
labels."""

import numpy as np
from playwright.sync_api import expect

from engine.demo.dataset import read_ground_truth
from engine.labels.team import TeamLabels, change_team, record_person_labels
from engine.learning.agreement import cohen_kappa, crowdlab, fleiss_kappa, person_accuracy
from tests.browser import copy_project, open_page, served, skip_without_chromium

skip_without_chromium()

SHARED = 24  # images both people label
EVERY = 4  # bob gives every 4th of them the next class instead of the true one


def _row_cells(page, table: str, name: str) -> list[str]:
    """The cells of the first row naming `name` in the table `table` (Gradio draws its rows as .virtual-row)."""
    row = page.locator(f"#{table} .virtual-row").filter(has_text=name).first
    return [cell.strip() for cell in row.locator("[role=gridcell]").all_inner_texts()]


def test_the_team_tab_shows_the_agreement_the_engine_computes(demo_template, tmp_path, browser, screenshots):
    truth = read_ground_truth(demo_template.parent / "ground_truth.csv")
    with served(copy_project(demo_template, tmp_path / "project")) as (url, workspace):
        project = workspace.project
        page = open_page(browser, url)
        page.get_by_role("tab", name="Team").click()
        expect(page.locator("#team-summary")).to_contain_text("This project has no people yet")

        classes = workspace.view.class_names()
        class_ids = [c["id"] for c in project.store.classes()]
        paths = sorted(truth)[:SHARED]
        ann = np.array([classes.index(truth[path]) for path in paths])
        bob = np.where(np.arange(SHARED) % EVERY == 0, (ann + 1) % len(classes), ann)
        ids = project.store.image_ids(paths)
        image_ids = [ids[path][0] for path in paths]
        change_team(project, add=[("ann", "labeler"), ("bob", "labeler"), ("rev", "reviewer")])
        for name, labels in (("ann", ann), ("bob", bob)):
            record_person_labels(project, name, image_ids, [class_ids[k] for k in labels])

        page.get_by_role("tab", name="Quality").click()
        page.get_by_role("tab", name="Team").click()  # opening the tab again draws the project as it is now
        both = np.stack([ann, bob], axis=1)
        n_classes = len(classes) + 1  # and "none of these"
        expect(page.locator("#team-summary")).to_contain_text(f"Fleiss' kappa {fleiss_kappa(both, n_classes):.3f}")
        assert _row_cells(page, "team-pairs", "ann") == ["ann", "bob", f"{cohen_kappa(ann, bob, n_classes):.3f}",
                                                         str(SHARED)]

        team = TeamLabels(project.store)
        assert team.people == ["ann", "bob"] and np.array_equal(team.labels, both[np.argsort(image_ids)])
        consensus = crowdlab(team.labels, team.probs).labels
        accuracy = person_accuracy(team.labels, team.probs)
        expect(page.locator("#team-people")).to_contain_text("rev")
        cells = _row_cells(page, "team-people", "ann")
        assert cells[:5] == ["ann", "labeler", str(SHARED), f"{np.mean(team.labels[:, 0] == consensus):.0%}",
                             f"{accuracy[0]:.0%}"], cells
        assert _row_cells(page, "team-people", "rev")[:3] == ["rev", "reviewer", "0"]
        page.screenshot(path=str(screenshots / "team.png"), full_page=True)
