"""The Team tab's tables and lines without a browser (tests/test_page_team.py drives the page): one person's labels
give no agreement yet and say so; a multi-label project gets the engine's refusal as the tab's line."""

from types import SimpleNamespace

from app.team_tab import PEOPLE_COLUMNS, TeamTab
from engine.labels.team import change_team, record_person_labels
from engine.project.folder import open_project


def test_one_persons_labels_give_no_agreement_yet_and_the_tab_says_what_to_do(project):
    with open_project(project) as opened:
        change_team(opened, add=[("ann", "labeler"), ("bob", "labeler")])
        ids = opened.store.usable_image_ids()[:3].tolist()
        circle = opened.store.classes()[0]["id"]
        record_person_labels(opened, "ann", ids, [circle] * 3)
        summary, people, pairs, classes = TeamTab(SimpleNamespace(project=opened)).shown()
    assert "No image has labels from two people yet" in summary and "--overlap" in summary
    assert list(people.columns) == PEOPLE_COLUMNS
    assert people.values.tolist() == [["ann", "labeler", 3, "", "", 0, 0, 0], ["bob", "labeler", 0, "", "", 0, 0, 0]]
    assert pairs.empty and set(classes["Fleiss' kappa"]) == {"n/a"}


def test_a_multi_label_project_gets_one_line_and_empty_tables(tmp_path, images, tiny_model, cli):
    root = tmp_path / "multi"
    assert cli("init", root, "--images", images, "--classes", "circle,square", "--model", tiny_model,
               "--multi-label")[0] == 0
    with open_project(root) as opened:
        summary, people, pairs, classes = TeamTab(SimpleNamespace(project=opened)).shown()
    assert "reviews and agreement are for single" in summary and "\n" not in summary
    assert people.empty and pairs.empty and classes.empty
