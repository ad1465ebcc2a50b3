"""The start page's open and create (app.start_page.ProjectChoice over engine.project.folder): a project created there
is what `labelloop init` makes, paths are read from the home folder, and each bad input is refused in one line
with nothing written."""

from pathlib import Path

import pytest

from app.start_page import ProjectChoice
from engine.errors import LabelloopError
from engine.project.folder import DB_FILE, open_project, projects_in
from tests.imagegen import write_images


@pytest.fixture
def home(tmp_path) -> Path:
    write_images(tmp_path / "images", 4)
    (tmp_path / "empty").mkdir()
    return tmp_path


def _folders(home: Path) -> set[str]:
    return {path.relative_to(home).as_posix() for path in home.rglob("*")}


def test_create_reads_paths_from_home_and_takes_classes_one_a_line(home):
    choice = ProjectChoice(home)
    with choice.create("birds", "images", "circle\nsquare\nother\n", "demo", labels_from_folders=True) as project:
        assert project.root == home / "birds" and project.images_root == home / "images"
        assert [c["name"] for c in project.store.classes()] == ["circle", "square", "other"]
        assert project.store.get_meta("model") == "demo"
        assert choice.wait(0) and choice.created and choice.project is project
    assert projects_in(home) == [home / "birds"]


def test_create_makes_a_multi_label_project_and_refuses_it_with_labels_from_folders(home):
    with ProjectChoice(home).create("tags", "images", "circle,square", "demo", multi_label=True) as project:
        assert project.multi_label
    with pytest.raises(LabelloopError, match="labels from folders give each image one class"):
        ProjectChoice(home).create("both", "images", "circle,square", "demo", labels_from_folders=True,
                                   multi_label=True)
    assert not (home / "both").exists()


@pytest.mark.parametrize("folder, images, classes, refusal", [
    ("new", "no-such-folder", "a,b", "images folder {home}/no-such-folder does not exist or is not a folder"),
    ("new", "empty", "a,b", "images folder {home}/empty holds no image files"),
    ("new", "images", "cat", "only one class ('cat')"),
    ("new", "images", "cat\ncat", "class 'cat' appears twice"),
    ("new", "images", "", "no classes given"),
    ("", "images", "a,b", "give the project folder to create"),
    ("images/new", "images", "a,b", "must not be inside the images folder"),
    ("taken", "images", "a,b", "{home}/taken is already a labelloop project; open it"),
])
def test_a_refused_create_says_why_in_one_line_and_writes_nothing(home, folder, images, classes, refusal):
    with ProjectChoice(home).create("taken", "images", "a,b", "demo"):
        pass
    before = _folders(home)
    choice = ProjectChoice(home)
    with pytest.raises(LabelloopError) as refused:
        choice.create(folder, images, classes, "demo")
    assert refusal.format(home=home) in str(refused.value) and "\n" not in str(refused.value)
    assert _folders(home) == before and not choice.wait(0)


@pytest.mark.parametrize("path, refusal", [
    ("", "give the project folder to open"),
    ("images", "{home}/images is not a labelloop project"),
])
def test_opening_what_is_not_a_project_is_refused_in_one_line(home, path, refusal):
    with pytest.raises(LabelloopError, match=refusal.format(home=home)) as refused:
        ProjectChoice(home).open(path)
    assert "\n" not in str(refused.value) and not (home / path / DB_FILE).exists()


def test_a_project_held_by_another_process_is_refused_in_one_line(held_project):
    root, holder = held_project
    choice = ProjectChoice(root.parent)
    with pytest.raises(LabelloopError, match=f"in use by process {holder}") as refused:
        choice.open("project")
    assert "\n" not in str(refused.value) and not choice.wait(0)


def test_the_first_project_chosen_wins_and_a_second_writes_nothing(home):
    choice = ProjectChoice(home)
    with choice.create("first", "images", "a,b", "demo"):
        with pytest.raises(LabelloopError, match="being opened from this server already"):
            choice.create("second", "images", "a,b", "demo")
        assert not (home / "second").exists() and choice.project.root == home / "first"


def test_projects_in_home_list_the_one_used_last_first(home):
    for name in ("used last", "made last"):
        with ProjectChoice(home).create(name, "images", "a,b", "demo"):
            pass
    with open_project(home / "used last") as project:
        project.store.set_meta(touched="now")
    assert projects_in(home) == [home / "used last", home / "made last"]
    assert projects_in(home / "no-such-folder") == []
