"""The map of a project: a layout keyed by model and embeddings, PCA at once and UMAP as a background job, and
what a box selection picks."""

import numpy as np
import pytest

from engine.errors import LabelloopError
from engine.jobs.runner import JobRunner
from engine.learning.tags import TAG_PRESENT, tag_stats
from engine.views.gallery import UNCERTAIN_TAG
from engine.views.map import HAS_TAG, LACKS_TAG, TAG_NOT_PREDICTED, UNSURE_OF_TAG, MapView, tag_states
from engine.project.folder import create_project, open_project
from engine.project.review_queue import FITS_NO_CLASS, fits_no_class
from engine.learning.probabilities import prediction_stats
from tests.synthetic import MODEL_ID, planted_embeddings, synthetic_project
from tests.test_multilabel import multi_project  # noqa: F401 (a fixture)


@pytest.fixture
def planted(tmp_path, tiny_model):
    x, y, text = planted_embeddings(300, 16, 3, seed=1)
    project = synthetic_project(tmp_path / "project", tmp_path / "images", tiny_model, x, text)
    runner = JobRunner(project.store)
    yield project, runner, y
    runner.close()
    project.close()


def test_the_map_shows_every_image_at_once_with_what_it_is_coloured_by(planted):
    project, runner, _ = planted
    maps = MapView(project, runner, umap=False)
    state = maps.current()
    assert state.method == "pca" and "PCA of 300 images" in state.note and "UMAP is off" in state.note
    points = state.points
    assert len(points["image_id"]) == 300 and np.isfinite(points["x"]).all()
    assert set(points["shown"].tolist()) <= {c["id"] for c in project.store.classes()}
    assert (points["source"] == "").all() and np.isnan(points["outlier"]).all()
    assert (points["confidence"] > 0).all()
    first = int(points["image_id"][0])
    project.store.set_labels([first], [None], source="human", actor="test")  # none of these
    again = maps.current()
    assert again.version == state.version  # stored: the same layout, colours read fresh
    assert again.points["source"][0] == "human" and again.points["shown"][0] == -1
    assert np.isnan(again.points["confidence"][0])


def test_a_box_selects_the_images_inside_it_among_the_rows_allowed(planted):
    project, runner, _ = planted
    maps = MapView(project, runner, umap=False)
    state = maps.current()
    x, y = state.points["x"], state.points["y"]
    box = ((float(np.median(x)), float(x.max())), (float(y.min()), float(np.median(y))))
    inside = (x >= box[0][0]) & (x <= box[0][1]) & (y >= box[1][0]) & (y <= box[1][1])
    assert maps.selected(state, box=box) == state.points["image_id"][inside].tolist()
    rows = np.flatnonzero(state.points["shown"] == state.points["shown"][0])
    allowed = np.zeros(300, bool)
    allowed[rows] = True
    assert maps.selected(state, box=box, rows=rows) == state.points["image_id"][inside & allowed].tolist()
    with pytest.raises(LabelloopError, match="box or lasso"):
        maps.selected(state)


def test_new_images_or_a_new_model_give_a_new_layout(planted):
    project, runner, _ = planted
    maps = MapView(project, runner, umap=False)
    before = maps.current().version
    more, _, _ = planted_embeddings(10, 16, 3, seed=9)
    project.store.register_model("synthetic1", "adapted", 16)  # as a finetune round's model would be
    all_ids, vectors = project.store.embeddings(MODEL_ID)
    project.store.write_embeddings("synthetic1", all_ids, vectors[:, ::-1].copy())
    project.store.set_meta(model_id="synthetic1")
    after = maps.current()
    assert after.version[0] == "synthetic1" and after.version != before
    assert len(after.points["image_id"]) == 300


def test_an_empty_project_has_no_map(tmp_path, tiny_model):
    (tmp_path / "images").mkdir()
    with create_project(tmp_path / "p", images=tmp_path / "images", classes="a,b", model=str(tiny_model)) as project:
        runner = JobRunner(project.store)
        with pytest.raises(LabelloopError, match="ingest images first"):
            MapView(project, runner).current()
        runner.close()


@pytest.mark.slow
def test_umap_runs_as_a_background_job_and_then_replaces_pca(planted):
    project, runner, y = planted
    maps = MapView(project, runner, landmarks=200)
    first = maps.current()
    assert first.method == "pca" and "UMAP is being computed (job" in first.note
    assert "being computed" in maps.current().note  # the running job is not started twice
    runner.wait(timeout=600)
    assert project.store.jobs(limit=1)[0]["status"] == "done"
    assert maps.version() != first.version
    state = maps.current()
    assert state.method == "umap" and state.note.startswith("UMAP of 300 images")
    assert np.isfinite(state.points["x"]).all()
    assert len([job for job in project.store.jobs(limit=10) if job["kind"] == "map"]) == 1


def test_the_map_and_the_filter_find_the_same_images_that_fit_no_class(planted):
    from app.map_tab import colour_groups  # the page's map: gradio only for this test

    project, runner, _ = planted
    store = project.store
    image_ids, class_ids, probs = store.prediction_matrix(0)
    outlier = np.linspace(0.0, 1.0, len(image_ids))
    round_id = store.start_round({})
    store.finish_round(round_id, model_id=MODEL_ID, image_ids=image_ids, class_ids=class_ids, probs=probs,
                       stats=prediction_stats(probs), pseudo_ids=np.zeros(0, np.int64),
                       pseudo_classes=np.zeros(0, np.int32), metrics={}, outlier=outlier)
    state = MapView(project, runner, umap=False).current()
    groups = {group.name: group.rows for group in colour_groups(state, "outlier")}
    shown = state.points["image_id"][groups[f"fits no class (outlier score ≥ {FITS_NO_CLASS})"]]
    assert 0 < len(shown) < len(image_ids)
    assert set(shown.tolist()) == set(fits_no_class(store)[0].tolist())


def test_ingest_stores_the_pca_layout_the_first_map_reads(project):
    from engine.project.folder import open_project

    with open_project(project) as opened:
        store = opened.store
        model_id = store.get_meta("model_id")
        assert store.layout_key(model_id, "pca") == store.embeddings_key(model_id)  # written by the ingest
        runner = JobRunner(store)
        try:
            state = MapView(opened, runner, umap=False).current()
        finally:
            runner.close()
        assert state.method == "pca" and len(state.points["image_id"]) == 12


def test_tag_states_read_one_tag_as_the_gallery_filters_do():
    probability = np.array([0.95, 0.05, 0.6, 0.3, np.nan, 1.0, 0.0, 0.75], np.float32)
    looked = np.array([False, False, False, False, False, True, True, False])
    assert tag_states(probability, looked).tolist() == [HAS_TAG, LACKS_TAG, UNSURE_OF_TAG, UNSURE_OF_TAG,
                                                        TAG_NOT_PREDICTED, HAS_TAG, LACKS_TAG, HAS_TAG]


def test_a_multi_label_map_colours_by_one_tag_as_the_gallery_filters_it(multi_project):  # noqa: F811
    from app.map_tab import colour_groups  # the page's map: gradio only for this test

    with open_project(multi_project) as project:
        store = project.store
        tag_ids = {c["name"]: c["id"] for c in store.classes()}
        runner = JobRunner(store)
        try:
            maps = MapView(project, runner, umap=False)
            first = int(maps.current().points["image_id"][0])
            image_ids, class_ids, probs = store.prediction_matrix(0)  # a round sure and unsure of square
            probs = probs.copy()
            probs[:, class_ids.index(tag_ids["square"])] = np.linspace(0.02, 0.98, len(image_ids))
            round_id = store.start_round({})
            store.finish_round(round_id, model_id=store.get_meta("model_id"), image_ids=image_ids,
                               class_ids=class_ids, probs=probs, stats=tag_stats(probs),
                               pseudo_ids=np.zeros(0, np.int64), pseudo_classes=np.zeros(0, np.int32), metrics={})
            store.set_labels([first], [None], source="human", actor="test",
                             tag_sets=[([tag_ids["circle"]], [tag_ids["circle"], tag_ids["square"]])])
            state = maps.current("square")
            with pytest.raises(LabelloopError, match="no such tag"):
                maps.current("triangle")
        finally:
            runner.close()
        points = state.points
        assert store.shown_round() == round_id
        assert state.tag == "square" and points["tag_looked"].tolist() == [i == first for i in points["image_id"]]
        assert points["tag_probability"][0] == 0.0  # the person said it lacks square
        shown = store.shown_tag_rows(points["image_id"][1:].tolist(), round_id)
        predicted = [shown[i]["probs"][shown[i]["class_ids"].index(tag_ids["square"])] for i in points["image_id"][1:]]
        assert np.allclose(points["tag_probability"][1:], predicted)

        def filtered(tag_filter: str) -> set[int]:
            rows = store.gallery_page(round_id=round_id, sort="name", limit=100,
                                      tag=(tag_filter, tag_ids["square"], TAG_PRESENT, UNCERTAIN_TAG)).rows
            return {row["id"] for row in rows}

        groups = {group.name: set(points["image_id"][group.rows].tolist()) for group in colour_groups(state, "tag")}
        unsure = groups["uncertain of square (under 75% sure)"]
        assert unsure and groups["has square"] and len(groups["lacks square"]) > 1
        assert unsure == filtered("uncertain")
        has_unsure = {i for i in unsure if points["tag_probability"][points["image_id"] == i][0] >= TAG_PRESENT}
        assert groups.get("has square", set()) | has_unsure == filtered("has")
        assert groups.get("lacks square", set()) | (unsure - has_unsure) == filtered("lacks")
        assert first in groups["lacks square"]

        by_probability = {group.name: group for group in colour_groups(state, "tag_probability")}
        assert set(by_probability) <= {"probability of square", "you: lacks square", "you: has square",
                                       "not predicted"}
        assert by_probability["you: lacks square"].rows.tolist() == [0]
        scale = by_probability["probability of square"]
        assert scale.scale_title == "P(square)" and np.allclose(scale.values[scale.rows], predicted)
