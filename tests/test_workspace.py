"""The page's engine (Workspace) without a browser: gallery filters and order, overlays, labels, undo, bulk
accept, rounds in the background, classes."""

import itertools
import re
from dataclasses import replace

import cv2
import numpy as np
import pytest

from app.header import header_markdown
from app.rounds_tab import TABLE, rounds_table
from engine.errors import LabelloopError
from engine.views.overlays import confidence_colour, gallery_tile
from engine.project.folder import open_project
from engine.views.gallery import NONE_OF_THESE, GalleryQuery, Subset, empty_text, page_text
from engine.labels.labeling_session import page_actor
from engine.session.workspace import Workspace
from engine.learning.selftrain.config import RoundConfig
from engine.session.round_runner import GRAPH_JOB, run_round
from engine.jobs.runner import Cancelled
from tests.synthetic import planted_embeddings, synthetic_project


@pytest.fixture
def workspace(tmp_path, tiny_model):
    x, _, text = planted_embeddings(300, 32, 3, seed=3)
    project = synthetic_project(tmp_path / "p", tmp_path / "images", tiny_model, x, text)
    space = Workspace(project, ingest_workers=0)
    yield space
    space.close()
    project.close()


def test_confidence_colour_runs_from_red_to_green():
    low, mid, high = confidence_colour([0.2, 0.75, 1.0])
    assert low[2] > 200 and low[1] < 60  # BGR: red
    assert high[1] > high[2] and high[1] > 150  # green
    assert mid[2] > 200 and mid[1] > 100  # amber
    assert (confidence_colour(0.1) == confidence_colour(0.4)).all()  # under even odds reads the same


def test_tile_is_a_cached_file_with_a_border_in_the_confidence_colour(tmp_path):
    first = gallery_tile(tmp_path, None, text="cat 93%", confidence=0.93, human=False)
    again = gallery_tile(tmp_path, None, text="cat 93%", confidence=0.93, human=False)
    assert first == again and first.is_file()
    pixels = cv2.imread(str(first))
    assert np.abs(pixels[100, 2].astype(int) - confidence_colour(0.93).astype(int)).max() < 30
    human = gallery_tile(tmp_path, None, text="cat (you)", confidence=None, human=True)
    assert human != first


def test_gallery_pages_filters_and_sorts(workspace):
    first = workspace.view.gallery(GalleryQuery(sort="confidence_up"))
    assert first.total == 300 and first.pages == 7 and len(first.items) == 48
    confidences = [item.confidence for item in first.items]
    assert confidences == sorted(confidences)
    assert all(item.thumbnail is not None for item in first.items)
    down = workspace.view.gallery(GalleryQuery(sort="confidence_down", offset=6 * 48))
    assert len(down.items) == 300 - 6 * 48
    assert workspace.view.gallery(GalleryQuery(sort="confidence_down", offset=99 * 48)).page == 6  # past the end: the last
    sure = workspace.view.gallery(GalleryQuery(min_confidence=0.9, page_size=500))
    assert all(item.confidence >= 0.9 for item in sure.items) and 0 < sure.total < 300
    one_class = workspace.view.gallery(GalleryQuery(class_name="class01", page_size=500))
    assert {item.shown for item in one_class.items} == {"class01"}
    queue = workspace.view.gallery(GalleryQuery(sort="queue"))
    assert queue.total == 300 and len({item.image_id for item in queue.items}) == 48
    with pytest.raises(LabelloopError, match="unknown class"):
        workspace.view.gallery(GalleryQuery(class_name="nope"))


def test_a_subset_narrows_the_gallery_and_keeps_its_order_under_the_other_filters(workspace):
    everything = workspace.view.gallery(GalleryQuery(sort="name", page_size=500)).items
    picked = [everything[i].image_id for i in (250, 3, 120, 77, 9)]
    subset = Subset("search: 'a test'", tuple(picked), scores=(0.9, 0.8, 0.7, 0.6, 0.5))
    shown = workspace.view.gallery(GalleryQuery(subset=subset, sort="match"))
    assert [item.image_id for item in shown.items] == picked and shown.total == 5
    assert [item.score for item in shown.items] == [0.9, 0.8, 0.7, 0.6, 0.5]
    by_name = workspace.view.gallery(GalleryQuery(subset=subset, sort="name"))
    assert sorted(item.relpath for item in by_name.items) == [item.relpath for item in by_name.items]
    one_class = everything[250].shown
    narrowed = workspace.view.gallery(GalleryQuery(subset=subset, sort="match", class_name=one_class))
    assert {item.image_id for item in narrowed.items} == {i for i in picked
                                                           if workspace.view.items([i])[0].shown == one_class}
    second = workspace.view.gallery(GalleryQuery(subset=subset, sort="match", page_size=2, offset=2))
    assert [item.image_id for item in second.items] == picked[2:4] and second.pages == 3
    assert workspace.view.gallery(GalleryQuery(sort="match")).total == 300  # no subset: the queue's order
    with pytest.raises(ValueError, match="scores"):
        Subset("bad", (1, 2), scores=(0.5,))


def test_filters_are_named_as_the_page_shows_them_and_cleared_together():
    assert GalleryQuery().named_filters() == []
    query = GalleryQuery(class_name="circle", status="unlabeled", min_confidence=0.8, disagree=True, mistakes=True,
                         sort="name", offset=96, subset=Subset("like a.jpg", (3, 1)))
    assert query.named_filters() == ["class 'circle'", "status 'unlabeled'", "confidence ≥ 0.80",
                                     "zero-shot and teacher disagree", "possible label mistake"]
    assert GalleryQuery(max_confidence=0.5).named_filters() == ["confidence ≤ 0.50"]
    assert GalleryQuery(min_confidence=0.2, max_confidence=0.6).named_filters() == ["confidence 0.20-0.60"]
    assert query.without_filters() == GalleryQuery(sort="name", subset=query.subset)


def test_a_subset_partly_or_wholly_hidden_by_filters_says_how_many_and_by_which(workspace):
    everything = workspace.view.gallery(GalleryQuery(sort="name", page_size=500)).items
    shows = {item.image_id: item.shown for item in everything}
    picked = [item.image_id for item in everything[:60]]
    subset = Subset("selection from map: 60 images", tuple(picked))
    common = max(set(shows[i] for i in picked), key=[shows[i] for i in picked].count)
    kept = [i for i in picked if shows[i] == common]
    query = GalleryQuery(subset=subset, sort="match", class_name=common)
    partial = workspace.view.gallery(query)
    assert [item.image_id for item in partial.items] == kept and partial.unfiltered == 60
    assert page_text(query, partial, 0) == (f"selection from map: 60 images · page 1 of 1 · {len(kept)} of 60 images "
                                            f"shown; {60 - len(kept)} hidden by: class '{common}' (✕ clear filters "
                                            "shows them)")
    cleared = workspace.view.gallery(query.without_filters())
    assert page_text(query.without_filters(), cleared, 0) == "selection from map: 60 images · page 1 of 2 · 60 images"

    nothing = replace(query, status="human", min_confidence=0.5)  # no image is labelled yet
    empty = workspace.view.gallery(nothing)
    assert empty.items == [] and (empty.total, empty.unfiltered) == (0, 60)
    assert page_text(nothing, empty, 0).endswith(f"0 of 60 images shown; 60 hidden by: class '{common}', status "
                                                 "'human', confidence ≥ 0.50 (✕ clear filters shows them)")
    assert empty_text(nothing, empty) == (f"No image matches these filters: class '{common}', status 'human', "
                                          "confidence ≥ 0.50. ✕ clear filters shows the 60 images they hide.")
    vanished = GalleryQuery(subset=Subset("like x.jpg", (picked[0], 10_000)))  # 10,000: no such image
    assert page_text(vanished, workspace.view.gallery(vanished), 0) == ("like x.jpg · page 1 of 1 · 1 images; 1 no "
                                                                         "longer in the project")
    gone = GalleryQuery(status="human", subset=Subset("like x.jpg", (10_000,)))
    assert empty_text(gone, workspace.view.gallery(gone)) == "None of these images is in the project any more."
    unnarrowed = GalleryQuery(status="human")
    assert empty_text(unnarrowed, workspace.view.gallery(unnarrowed)) == (
        "No image matches these filters: status 'human'. ✕ clear filters shows every image.")


def test_labels_undo_and_status_filters(workspace):
    ids = [item.image_id for item in workspace.view.gallery(GalleryQuery(sort="name")).items]
    assert workspace.labeling.label([ids[0]], "class02").changed == 1
    assert workspace.labeling.label([ids[1]], NONE_OF_THESE).changed == 1
    human = workspace.view.gallery(GalleryQuery(status="human"))
    assert {item.image_id for item in human.items} == {ids[0], ids[1]}
    assert workspace.view.detail(ids[1]).label == "none of these (human)"
    shown = {item.image_id: item for item in human.items}
    assert shown[ids[0]].shown == "class02" and shown[ids[0]].caption == "class02 (you)"

    assert workspace.labeling.undo().changed == 1  # the none-of-these
    assert workspace.view.detail(ids[1]).label is None
    assert workspace.view.detail(ids[0]).label == "class02 (human)"
    history = workspace.view.detail(ids[1]).history
    assert [h.who for h in history] == ["page", "page:undo"]


def test_two_people_on_one_server_each_undo_only_their_own_labels(workspace):
    ids = [item.image_id for item in workspace.view.gallery(GalleryQuery(sort="name")).items]
    ann, bob = page_actor("ann"), page_actor("bob")
    assert (ann, bob, page_actor(None)) == ("page:ann", "page:bob", "page")
    workspace.labeling.label([ids[0]], "class01", actor=ann)
    workspace.labeling.label([ids[1]], "class02", actor=bob)
    workspace.labeling.label([ids[0]], "class00", actor=bob)  # bob relabels ann's image after her
    assert workspace.labeling.undo(actor=ann).changed == 0  # ann's only change was overwritten since: bob's newer label stays
    assert workspace.view.detail(ids[0]).label == "class00 (human)"
    assert workspace.labeling.undo(actor=bob).changed == 1 and workspace.view.detail(ids[0]).label == "class01 (human)"
    assert workspace.view.detail(ids[1]).label == "class02 (human)"
    assert workspace.labeling.undo(actor=page_actor(None)).changed == 0  # nobody else's steps
    assert [h.who for h in workspace.view.detail(ids[0]).history] == ["page:ann", "page:bob", "page:bob:undo"]


def test_bulk_accept_takes_only_confident_unlabeled_images_and_is_one_undo_step(workspace):
    page = workspace.view.gallery(GalleryQuery(sort="name"))
    ids = [item.image_id for item in page.items]
    workspace.labeling.label([ids[0]], "class00")
    expected = sum(1 for item in page.items[1:] if item.confidence >= 0.8)
    assert workspace.labeling.accept(ids, min_confidence=0.8).changed == expected > 0
    assert workspace.view.detail(ids[0]).label == "class00 (human)"  # a person's label is not replaced
    assert workspace.view.gallery(GalleryQuery(status="human")).total == expected + 1
    assert workspace.labeling.undo().changed == expected
    assert workspace.view.gallery(GalleryQuery(status="human")).total == 1


def test_accept_writes_the_class_the_page_showed_and_undo_names_another_tabs_action(workspace):
    ids = [item.image_id for item in workspace.view.gallery(GalleryQuery(sort="name")).items]
    predicted = workspace.view.detail(ids[0]).predicted
    seen = next(name for name in workspace.view.class_names() if name != predicted)  # a round changed it since
    change = workspace.labeling.accept([ids[0]], expected=seen, session="tab-a")
    assert workspace.view.detail(ids[0]).label == f"{seen} (human)"
    assert f"now predicts {predicted}" in change.message
    assert workspace.labeling.accept([ids[1]], expected=workspace.view.detail(ids[1]).predicted).changed == 1
    before = workspace.labeling.version()
    assert "another tab" in workspace.labeling.undo(session="tab-a").message  # tab a did not make ids[1]'s label
    assert "another tab" not in workspace.labeling.undo(session="tab-a").message
    assert workspace.labeling.version() != before


def test_rounds_run_in_the_background_and_feed_the_plots(workspace):
    workspace.labeling.label([1, 2, 3], "class00")
    # no audit here, so no class prior: the even split's pseudo-labels asked for, to feed the coverage plot
    job = workspace.start_rounds(2, RoundConfig(share_step_without_prior=0.2))
    with pytest.raises(LabelloopError, match="already queued or running"):
        workspace.start_rounds(1, RoundConfig())
    workspace.runner.wait(timeout=60)
    assert workspace.project.store.jobs(limit=1)[0]["status"] == "done" and workspace.project.store.jobs(limit=1)[0]["id"] == job
    history = workspace.view.round_history()
    assert [row["round"] for row in history] == [1, 2] and history[0]["coverage"] > 0
    assert workspace.project.store.shown_round() == 2
    edges, counts = workspace.view.confidence_histogram()
    assert counts.sum() == 300 and len(edges) == 20
    assert workspace.view.gallery(GalleryQuery(status="pseudo")).total > 0


def test_class_changes_keep_human_labels_and_refuse_what_would_lose_them(workspace):
    workspace.labeling.label([5], "class01")
    with pytest.raises(LabelloopError, match="has 1 human labels"):
        workspace.classes.remove("class01")
    with pytest.raises(LabelloopError, match="appears twice"):
        workspace.classes.rename("class00", "class02")
    with pytest.raises(LabelloopError, match="comma"):
        workspace.classes.rename("class00", "a,b")
    workspace.project.store.rename_class(workspace.view.class_id("class01"), "renamed")  # what rename does before zero-shot
    assert workspace.view.detail(5).label == "renamed (human)"


def test_ingest_refuses_a_folder_outside_the_images_root(workspace, tmp_path):
    with pytest.raises(LabelloopError, match="outside the images folder"):
        workspace.start_ingest(str(tmp_path))
    with pytest.raises(LabelloopError, match="no image files"):
        workspace.add_uploads([tmp_path / "notes.txt"])


def test_a_label_written_by_the_page_survives_reopening(workspace):
    workspace.labeling.label([7], "class02")
    root = workspace.project.root
    workspace.close()
    workspace.project.close()
    with open_project(root) as project:
        assert project.store.label_events(7)[-1]["to_class"] == 2


@pytest.fixture
def real_workspace(project):
    """A workspace over the 12-image project ingested with the tiny open_clip model."""
    opened = open_project(project)
    space = Workspace(opened, ingest_workers=0)
    yield space
    space.close()
    opened.close()


def test_class_edits_rerun_zero_shot_in_the_background_and_keep_labels(real_workspace):
    space = real_workspace
    space.labeling.label([1], "square")
    space.start_rounds(1, RoundConfig())
    space.runner.wait(timeout=60)
    assert space.project.store.shown_round() == 1
    space.classes.add("triangle")
    space.runner.wait(timeout=60)
    assert space.project.store.jobs(limit=1)[0]["status"] == "done"
    assert space.view.class_names() == ["circle", "square", "other", "triangle"]
    assert len(space.project.store.class_weights(space.model().model_id)[0]) == 4
    assert space.project.store.shown_round() == 0  # round 1 predicted over three classes: the page shows zero-shot again
    assert len(space.view.detail(1).zero_shot) == 4 and space.view.detail(1).label == "square (human)"
    space.classes.rename("square", "box")
    space.classes.set_prompts("box", "a drawing of a box\n{} outline")
    space.runner.wait(timeout=60)
    assert space.view.detail(1).label == "box (human)"
    assert space.project.store.classes()[1]["prompts"] == ["a drawing of a box", "{} outline"]
    space.classes.remove("triangle")
    space.runner.wait(timeout=60)
    assert space.view.class_names() == ["circle", "box", "other"]
    assert space.view.gallery(GalleryQuery(page_size=100)).total == 12
    space.start_rounds(1, RoundConfig())  # a round over the new class set works
    space.runner.wait(timeout=60)
    assert space.project.store.jobs(limit=1)[0]["status"] == "done" and space.project.store.shown_round() == 2


def test_uploads_are_copied_into_the_images_folder_and_ingested(real_workspace, tmp_path):
    from tests.imagegen import write_images

    write_images(tmp_path / "new", 2)
    uploads = sorted(path for path in (tmp_path / "new").rglob("*") if path.is_file())
    space = real_workspace
    space.add_uploads(uploads + [tmp_path / "notes.txt"])
    space.runner.wait(timeout=120)
    graph, ingest = space.project.store.jobs(limit=2)
    assert (ingest["kind"], ingest["status"]) == ("ingest", "done")
    assert (graph["kind"], graph["status"]) == (GRAPH_JOB, "done")  # queued by the ingest at its end
    assert space.view.header()["images"]["ok"] == 14
    assert len(list((space.project.images_root / "uploads").rglob("*.*"))) == 2
    space.start_rounds(1, RoundConfig())
    space.runner.wait(timeout=60)
    assert space.project.store.rounds()[-1]["metrics"]["graph_cached"] is True  # the first round after the ingest


def test_serving_on_a_port_in_use_is_one_line(workspace):
    import socket

    from app.server import launch

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LabelloopError, match=f"port {port} on 127.0.0.1 is in use"):
            launch(workspace, port=port, block=False)


def test_auth_must_be_user_colon_password():
    from app.server import parse_auth

    assert parse_auth(["ann:s3:cret"]) == [("ann", "s3:cret")]
    assert parse_auth("ann:pw1 bob:pw2") == [("ann", "pw1"), ("bob", "pw2")]  # $LABELLOOP_AUTH
    assert parse_auth(None) is None and parse_auth("") is None and parse_auth([]) is None
    for bad in ("ann", "ann:", ":pw"):
        with pytest.raises(LabelloopError, match="USER:PASSWORD"):
            parse_auth([bad])
    with pytest.raises(LabelloopError, match="'ann' twice"):
        parse_auth(["ann:a", "ann:b"])


def test_the_rounds_table_shows_every_round_by_number_with_its_mode_in_words(workspace):
    project = workspace.project
    workspace.labeling.label([1, 2, 3], "class00")
    config = RoundConfig(share_step_without_prior=0.2)
    run_round(project, config)
    calls = itertools.count()
    with pytest.raises(Cancelled):  # cancelled once it has its number (its first report comes before)
        run_round(project, config, cancel=lambda: next(calls) >= 1)
    run_round(project, config)
    table = rounds_table(workspace.view.round_history())
    assert list(table.columns) == [name for _, name in TABLE]
    assert not {"flip_share", "ece", "human_accuracy", "audit_estimate"} & set(table.columns)
    assert {"mode", "pseudo-labels trained on", "share of predictions that flipped"} <= set(table.columns)
    assert table["round"].tolist() == [1, 2, 3]  # no number skipped: the cancelled round says so
    assert table["status"].tolist() == ["done", "cancelled", "done"]
    assert table["mode"].tolist() == ["head"] * 3
    assert table["pseudo-labels trained on"].tolist()[1] == "" and int(table["pseudo-labels trained on"][2]) > 0
    assert table["pseudo-label coverage"][0].endswith("%")


def test_the_header_counts_the_pseudo_labels_a_round_trained_on_as_it_recorded_them(workspace):
    workspace.labeling.label([1, 2, 3], "class00")
    metrics = run_round(workspace.project, RoundConfig(share_step_without_prior=0.2))
    trained_on = re.compile(r"([\d,]+)[^·\d]*pseudo-labels that round trained on")
    before = trained_on.search(header_markdown(workspace.view.header())).group(1)
    assert int(before.replace(",", "")) == metrics.pseudo_labels > 5
    pseudo = workspace.view.gallery(GalleryQuery(status="pseudo")).items[:5]
    workspace.labeling.label([item.image_id for item in pseudo], "class01")
    after = trained_on.search(header_markdown(workspace.view.header())).group(1)
    assert after == before  # what that round trained on does not change as the person labels
