"""Labels from folder names: matching rules (pure), and `init --labels-from-folders` then ingest on a small tree."""

import cv2
import numpy as np

from engine.labels.folder_labels import FOLDERS_ACTOR, classes_from_folders
from engine.project.folder import open_project
from tests.imagegen import random_image


def test_the_nearest_folder_naming_a_class_wins_ignoring_case_and_separators():
    classes = ["cat", "golden retriever", "dog"]
    paths = ["cat/a.jpg", "CAT/2023/b.jpg", "Golden_Retriever/c.png", "dog/cat/d.jpg", "unsorted/e.jpg", "f.jpg",
             "cats/g.jpg", "cat.jpg/h.jpg"]
    assert classes_from_folders(paths, classes) == ["cat", "cat", "golden retriever", "cat", None, None, None, None]


def test_classes_that_compare_equal_match_no_folder():
    assert classes_from_folders(["t-shirt/a.jpg", "shoe/b.jpg"], ["t-shirt", "T Shirt", "shoe"]) == [None, "shoe"]


def write_tree(root, relpaths):
    rng = np.random.default_rng(0)
    for relpath in relpaths:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / relpath), random_image(rng, (64, 64)))


def test_init_with_labels_from_folders_labels_at_ingest_and_keeps_a_persons_labels(tmp_path, tiny_model, cli):
    images = tmp_path / "images"
    write_tree(images, ["Circle/a.png", "circle/2023/b.png", "square/c.png", "unsorted/d.png", "e.png"])
    root = tmp_path / "project"
    code, out, err = cli("init", root, "--images", images, "--classes", "circle,square,other", "--model", tiny_model,
                         "--labels-from-folders")
    assert code == 0, err
    assert "labels from folders" in out
    code, out, err = cli("ingest", root, "--workers", "0")
    assert code == 0, err
    assert "3 labels from folder names; 2 images in folders naming no class" in out
    labels = {row["path"]: (row["label"], row["source"]) for row in open_labels(root)}
    assert labels["Circle/a.png"] == ("circle", "human")
    assert labels["circle/2023/b.png"] == ("circle", "human")
    assert labels["square/c.png"] == ("square", "human")
    assert labels["unsorted/d.png"][1] != "human" and labels["e.png"][1] != "human"
    with open_project(root) as project:
        assert {event["actor"] for event in project.store.label_events()} == {FOLDERS_ACTOR}

    # a person relabels one; a new image arrives in a class folder; the next ingest labels only the new one
    csv = tmp_path / "fix.csv"
    csv.write_text("path,label\nsquare/c.png,other\n")
    assert cli("label", root, "--csv", csv)[0] == 0
    write_tree(images, ["square/new.png"])
    code, out, err = cli("ingest", root, "--workers", "0")
    assert code == 0, err
    assert "1 labels from folder names; 2 images in folders naming no class; 1 kept as a person labeled them" in out
    labels = {row["path"]: (row["label"], row["source"]) for row in open_labels(root)}
    assert labels["square/c.png"] == ("other", "human")
    assert labels["square/new.png"] == ("square", "human")


def test_without_the_option_ingest_gives_no_folder_labels(project, cli):
    code, out, _ = cli("ingest", project, "--workers", "0")
    assert code == 0 and "folder names" not in out
    with open_project(project) as opened:
        assert opened.store.label_events() == []


def open_labels(root):
    with open_project(root) as project:
        return project.store.current_labels().to_pylist()
