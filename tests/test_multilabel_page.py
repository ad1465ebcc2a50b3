"""The page's half of a multi-label project (issue 27): a tag key toggles the tag on the image, A accepts the
predicted set, undo gives the set back, and the tiles name up to three tags with their confidences (+N)."""

from __future__ import annotations

import pytest

from tests.test_multilabel import _tag_labels, multi_project  # noqa: F401 (a fixture)

EVERYTHING = {"circle", "square", "star"}


@pytest.fixture
def space(multi_project):  # noqa: F811
    from engine.project.folder import open_project
    from engine.session.workspace import Workspace

    with open_project(multi_project) as project:
        workspace = Workspace(project, ingest_workers=0)
        try:
            yield workspace
        finally:
            workspace.close()


def _predicted(space, image_id: int) -> set[str]:
    row = space.project.store.shown_tag_rows([image_id], space.project.store.shown_round())[image_id]
    names = {c["id"]: c["name"] for c in space.project.store.classes()}
    return {names[c] for c, p in zip(row["class_ids"], row["probs"]) if p >= 0.5}


def _image(space, relpath: str) -> int:
    return space.project.store.image_ids([relpath])[relpath][0]


def test_a_tag_key_turns_the_tag_over_and_marks_it_looked_at(space, multi_project):  # noqa: F811
    image = _image(space, "img_00001.png")
    predicted = _predicted(space, image)
    first = space.labeling.label([image], "circle")
    circle = "circle" not in predicted  # turned over from what the tile showed
    assert first.changed == 1 and first.message == f"img_00001.png → circle {'on' if circle else 'off'}"
    assert _tag_labels(multi_project)["img_00001.png"] == ({"circle"} if circle else set(), {"circle"})
    space.labeling.label([image], "star")
    star = "star" not in predicted
    both = {tag for tag, on in (("circle", circle), ("star", star)) if on}
    assert _tag_labels(multi_project)["img_00001.png"] == (both, {"circle", "star"})
    space.labeling.label([image], "circle")  # and back to what was predicted
    assert _tag_labels(multi_project)["img_00001.png"][0] == both ^ {"circle"}
    undone = space.labeling.undo()
    assert undone.changed == 1 and "its tags before" in undone.message
    assert _tag_labels(multi_project)["img_00001.png"][0] == both
    space.labeling.label([image], "none of these")
    assert _tag_labels(multi_project)["img_00001.png"] == (set(), EVERYTHING)


def test_a_accepts_the_predicted_set_and_leaves_a_person_s_tags_alone(space, multi_project):  # noqa: F811
    first, second = _image(space, "img_00001.png"), _image(space, "img_00002.webp")
    space.labeling.label([second], "square")
    change = space.labeling.accept([first, second])
    assert change.image_ids == [first] and change.changed == 1
    tags = _tag_labels(multi_project)
    assert tags["img_00001.png"] == (_predicted(space, first), EVERYTHING)
    assert tags["img_00002.webp"][1] == {"square"}  # not replaced by its predicted set
    assert space.labeling.accept([first]).changed == 0


def test_tiles_name_up_to_three_tags_with_their_confidences():
    from engine.views.gallery import tag_caption

    names = {1: "car", 2: "person", 3: "bike", 4: "tree", 5: "dog"}
    row = {"class_ids": [1, 2, 3, 4, 5], "probs": [0.92, 0.4, 0.61, 0.75, 0.55], "tags": None, "looked_at": None}
    assert tag_caption(names, row) == "car 92%, tree 75%, bike 61% +1"
    answered = dict(row, tags=[2], looked_at=[1, 2])  # said: person yes, car no
    assert tag_caption(names, answered) == "person (you), tree 75%, bike 61% +1"
    assert tag_caption(names, dict(row, probs=[0.1] * 5)) == "no tag"
    assert tag_caption(names, {"class_ids": None, "probs": None, "tags": None, "looked_at": None}) == \
        "not predicted"


def test_the_gallery_shows_tag_captions(space):
    from engine.views.gallery import GalleryQuery

    page = space.view.gallery(GalleryQuery(sort="name"))
    assert page.items and all("%" in item.caption or item.caption == "no tag" for item in page.items)
    image = page.items[0].image_id
    space.labeling.label([image], "none of these")
    assert space.view.items([image])[0].caption == "no tag"
    space.labeling.label([image], "star")
    assert space.view.items([image])[0].caption == "star (you)"


def test_the_gallery_filters_by_has_lacks_and_uncertain_tag(space):
    from engine.views.gallery import GalleryQuery

    store = space.project.store
    everything = space.view.gallery(GalleryQuery(sort="name", page_size=100)).items
    rows = store.shown_tag_rows([item.image_id for item in everything], store.shown_round())
    star = space.view.class_id("star")

    def star_probability(image_id: int) -> float:
        row = rows[image_id]
        return row["probs"][row["class_ids"].index(star)]

    def shown(tag_filter: str) -> set[int]:
        query = GalleryQuery(class_name="star", tag_filter=tag_filter, sort="name", page_size=100)
        return {item.image_id for item in space.view.gallery(query).items}

    has, lacks, uncertain = shown("has"), shown("lacks"), shown("uncertain")
    by_queue = space.view.gallery(GalleryQuery(class_name="star", tag_filter="has", page_size=100)).items
    assert has and lacks and {item.image_id for item in by_queue} == has
    assert has | lacks == {item.image_id for item in everything} and not has & lacks
    assert has == {i for i in rows if star_probability(i) >= 0.5}
    assert uncertain == {i for i in rows if max(star_probability(i), 1 - star_probability(i)) < 0.75}
    image = min(lacks)
    space.labeling.label([image], "star")  # a person gives the tag: has it, and no longer uncertain of it
    assert image in shown("has") and image not in shown("uncertain")
    assert GalleryQuery(class_name="star", tag_filter="lacks").named_filters() == ["lacks tag 'star'"]
