"""Multi-label projects (issue 27): the kind chosen at init, tag sets with the tags looked at, per-tag zero-shot,
rounds, the queue and export, through the CLI and as pure functions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import _one_line


def _init(cli, root, images, model, *extra):
    code, out, err = cli("init", root, "--images", images, "--classes", "circle,square,star", "--model", model,
                         *extra)
    assert code == 0, err
    return out


def test_init_multi_label_records_the_kind_and_single_label_stays_the_default(tmp_path, images, tiny_model, cli,
                                                                              cli_json):
    assert "with tags: circle, square, star" in _init(cli, tmp_path / "multi", images, tiny_model, "--multi-label")
    assert cli_json("status", tmp_path / "multi")["multi_label"] is True
    _init(cli, tmp_path / "single", images, tiny_model)
    assert cli_json("status", tmp_path / "single")["multi_label"] is False
    code, _, err = cli("init", tmp_path / "both", "--images", images, "--classes", "a,b", "--model", tiny_model,
                       "--multi-label", "--labels-from-folders")
    assert code == 1 and "labels from folders" in _one_line(err) and not (tmp_path / "both").exists()


def _tag_labels(root) -> dict[str, tuple[set[str], set[str]]]:
    from engine.project.folder import open_project

    with open_project(root) as project:
        names = {c["id"]: c["name"] for c in project.store.classes()}
        relpaths = project.store.relpaths()
        table = project.store.human_tag_labels().to_pylist()
    return {relpaths[row["image_id"]]: ({names[t] for t in row["tags"]}, {names[t] for t in row["looked_at"]})
            for row in table}


@pytest.fixture
def multi_project(tmp_path, images, tiny_model, cli) -> Path:
    """An ingested multi-label project over 12 images and the tiny model, tags circle, square, star."""
    root = tmp_path / "multi"
    _init(cli, root, images, tiny_model, "--multi-label")
    assert cli("ingest", root, "--workers", "0")[0] == 0
    return root


def test_label_csv_takes_tag_sets_and_bad_rows_write_nothing(multi_project, project, tmp_path, cli, cli_json):
    labels = tmp_path / "tags.csv"
    labels.write_text("path,label\nimg_00001.png,circle;square\nimg_00002.webp,\nimg_00005.jpg, STAR \n")
    code, out, err = cli("label", multi_project, "--csv", labels)
    assert code == 0, err
    everything = {"circle", "square", "star"}
    assert _tag_labels(multi_project) == {"img_00001.png": ({"circle", "square"}, everything),
                                          "img_00002.webp": (set(), everything),
                                          "img_00005.jpg": ({"star"}, everything)}
    assert cli_json("status", multi_project)["labels"]["none_of_these"] == 0

    for bad_row, fragment in (("img_00010.jpg,circle;triangle", "unknown tag 'triangle'"),
                              ("img_00010.jpg,circle;;star", "an empty tag"),
                              ("img_00010.jpg", "fewer fields than the header")):
        bad = tmp_path / "bad.csv"
        bad.write_text(f"path,label\nimg_00001.png,star\n{bad_row}\n")
        code, _, err = cli("label", multi_project, "--csv", bad)
        assert code == 1 and fragment in _one_line(err) and "nothing was written" in err, err
    assert _tag_labels(multi_project)["img_00001.png"][0] == {"circle", "square"}

    several = tmp_path / "several.csv"  # a multi-label file into a single-label project
    several.write_text("path,label\nimg_00001.png,circle;square\n")
    code, _, err = cli("label", project, "--csv", several)
    assert code == 1 and "several classes 'circle;square' in a single-label project" in _one_line(err)
    assert cli_json("status", project)["labels"]["human"] == 0


def test_undo_gives_a_tag_set_back(multi_project, tmp_path, cli):
    from engine.project.folder import open_project

    for number, cell in enumerate(("circle", "square;star")):
        labels = tmp_path / f"tags{number}.csv"
        labels.write_text(f"path,label\nimg_00001.png,{cell}\n")
        assert cli("label", multi_project, "--csv", labels)[0] == 0
    with open_project(multi_project) as project:
        events = project.store.label_events()
        second = events[-1]
        project.store.revert_label_events(events[-2]["id"], second["id"], actor="csv:" + str(tmp_path / "tags1.csv"),
                                          by="undo")
    assert _tag_labels(multi_project)["img_00001.png"][0] == {"circle"}


def test_two_gaussian_posterior_splits_two_groups_and_keeps_their_order():
    from engine.learning.tags import two_gaussian_posterior

    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.0, 0.05, 300), rng.normal(0.5, 0.05, 100)])
    posterior = two_gaussian_posterior(scores)
    assert (posterior[:300] < 0.5).mean() > 0.99 and (posterior[300:] > 0.5).mean() > 0.99
    order = np.argsort(scores)
    assert np.all(np.diff(posterior[order]) >= -1e-12)  # a sigmoid of the score: the order is kept


def test_zero_shot_tag_probs_can_say_both_and_neither():
    from engine.learning.tags import zero_shot_tag_probs

    rng = np.random.default_rng(1)
    tags = np.eye(6, dtype=np.float32)  # six tags along six axes
    truth = np.zeros((600, 6), bool)
    for row in truth:  # 0-2 tags each
        row[rng.choice(6, size=rng.integers(0, 3), replace=False)] = True
    offset = rng.uniform(0.3, 0.8, (600, 1))  # how strongly a picture matches any prompt: the same for every tag
    vectors = (truth + offset + rng.normal(0, 0.05, (600, 6))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    probs = zero_shot_tag_probs(vectors, tags)
    both = truth[:, 0] & truth[:, 1]
    neither = ~truth.any(axis=1)
    assert both.any() and neither.any()
    assert ((probs[both, 0] > 0.5) & (probs[both, 1] > 0.5)).mean() > 0.9
    assert (probs[neither] < 0.5).all(axis=1).mean() > 0.9


def test_tag_stats_name_the_tag_least_sure():
    from engine.learning.tags import tag_stats

    stats = tag_stats(np.array([[0.9, 0.55, 0.02], [0.5, 0.99, 0.0]]))
    assert stats["label"].tolist() == [1, 0]
    assert np.allclose(stats["margin"], [0.1, 0.0]) and np.allclose(stats["confidence"], [0.55, 0.5])


def test_ingest_scores_each_tag_on_its_own_in_a_multi_label_project(multi_project, project):
    from engine.project.folder import open_project
    from engine.learning.tags import zero_shot_tag_probs

    with open_project(multi_project) as opened:
        store = opened.store
        model_id = store.get_meta("model_id")
        image_ids, class_ids, probs = store.prediction_matrix(0)
        _, weights, _ = store.class_weights(model_id)
        embedded_ids, vectors = store.embeddings(model_id)
        assert np.array_equal(image_ids, embedded_ids)
        assert np.allclose(probs, zero_shot_tag_probs(vectors, weights), atol=1e-5)
    with open_project(project) as opened:  # single-label: a softmax over the classes, as before
        assert np.allclose(opened.store.prediction_matrix(0)[2].sum(axis=1), 1, atol=1e-4)


def test_pseudo_tags_take_only_sure_tags_no_one_looked_at():
    from engine.learning.tags import pseudo_tags

    probs = np.array([[0.95, 0.5, 0.02], [0.97, 0.93, 0.6]])
    looked = np.array([[False, False, False], [True, False, False]])
    targets, taken = pseudo_tags(probs, looked, 0.9)
    assert taken.tolist() == [[True, False, True], [False, True, False]]
    assert targets[taken].tolist() == [1.0, 0.0, 1.0]


def test_least_sure_order_ranks_images_by_their_least_sure_tag():
    from engine.learning.tags import least_sure_order

    probs = np.array([[0.9, 0.1], [0.45, 0.99], [0.7, 0.2], [0.5, 0.5]])
    order, tag = least_sure_order(probs, np.array([True, True, True, False]))
    assert order.tolist() == [1, 2, 0] and tag.tolist() == [0, 0, 0]


def test_tag_head_masks_tags_no_one_looked_at():
    from engine.learning.selftrain.head import Head, fit_tag_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    truth = np.stack([x[:, 0] > 0, x[:, 1] > 0], axis=1)
    targets = truth.astype(np.float32)
    targets[:, 1] = 1 - targets[:, 1]  # tag 1's targets are all wrong, but no one looked at them
    weight = np.stack([np.ones(200), np.zeros(200)], axis=1)
    init = Head(weight=np.zeros((2, 4), np.float32), bias=np.zeros(2, np.float32), scale=1.0)
    head = fit_tag_head(init, x, targets, weight, l2_to_init=1e-3, iterations=50)
    logits = head.logits(x)
    assert ((logits[:, 0] > 0) == truth[:, 0]).mean() > 0.95
    assert np.allclose(head.weight[1], 0) and head.bias[1] == 0  # masked out: never trained


def test_multi_label_loop_through_the_cli(multi_project, tmp_path, cli, cli_json):
    labels = tmp_path / "tags.csv"
    labels.write_text("path,label\nimg_00001.png,circle;square\nimg_00002.webp,\nimg_00005.jpg,star\n"
                      "img_00007.webp,square\n")
    assert cli("label", multi_project, "--csv", labels)[0] == 0
    rounds = cli_json("round", multi_project)
    assert rounds[0]["round_id"] == 1 and rounds[0]["human_tags"] == 12
    queue = cli_json("queue", multi_project, "--k", "20")
    tagged = {"img_00001.png", "img_00002.webp", "img_00005.jpg", "img_00007.webp"}
    least_sure = [item for item in queue if item["reason"] == "least sure tag"]
    assert len(least_sure) == 8 and not tagged & {item["path"] for item in least_sure}
    assert {item["path"] for item in queue if item not in least_sure} <= tagged  # tags the round doubts
    assert all(item["tag"] in ("circle", "square", "star") for item in queue)
    sureness = [item["confidence"] for item in least_sure]
    assert sureness == sorted(sureness)  # the least sure tag first
    code, out, err = cli("queue", multi_project, "--k", "20")
    assert code == 0 and f"least sure tag: {least_sure[0]['tag']}" in out
    assert all(f"{item['reason']}: {item['tag']}" in out for item in queue)


def test_export_writes_tag_lists_and_they_import_back(multi_project, tmp_path, cli, cli_json):
    """The whole path through the CLI: init, ingest (the fixture), label --csv, round, queue, export, re-import."""
    import json

    import pyarrow.parquet as pq

    labels = tmp_path / "tags.csv"
    labels.write_text("path,label\nimg_00001.png,square;circle\nimg_00002.webp,\n")
    assert cli("label", multi_project, "--csv", labels)[0] == 0
    assert cli("round", multi_project)[0] == 0
    queued = [item for item in cli_json("queue", multi_project, "--k", "5") if item["reason"] == "least sure tag"]
    assert len(queued) >= 3 and {"img_00001.png", "img_00002.webp"}.isdisjoint(item["path"] for item in queued)
    out = tmp_path / "all.csv"
    code, _, err = cli("export", multi_project, "--format", "csv", "--out", out)
    assert code == 0, err
    with open(out, newline="") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 12
    assert (rows["img_00001.png"]["label"], rows["img_00001.png"]["source"]) == ("circle;square", "human")
    assert (rows["img_00002.webp"]["label"], rows["img_00002.webp"]["source"]) == ("", "human")
    assert all(row["source"] == "teacher" for path, row in rows.items() if path not in ("img_00001.png",
                                                                                        "img_00002.webp"))
    assert cli("export", multi_project, "--format", "jsonl", "--out", tmp_path / "all.jsonl")[0] == 0
    lines = {row["path"]: row for row in map(json.loads, (tmp_path / "all.jsonl").read_text().splitlines())}
    assert lines["img_00001.png"]["label"] == ["circle", "square"] and lines["img_00002.webp"]["label"] == []
    assert cli("export", multi_project, "--format", "parquet", "--out", tmp_path / "all.parquet")[0] == 0
    table = pq.read_table(tmp_path / "all.parquet")
    assert dict(zip(table["path"].to_pylist(), table["label"].to_pylist()))["img_00001.png"] == ["circle", "square"]

    code, _, err = cli("export", multi_project, "--format", "imagefolder", "--out", tmp_path / "x-imagefolder")
    assert code == 1 and "multi-label" in _one_line(err) and not (tmp_path / "x-imagefolder").exists()

    # the export imports back: every row's tags become a person's, as written
    code, out_text, err = cli("label", multi_project, "--csv", out)
    assert code == 0, err
    assert cli_json("status", multi_project)["labels"]["human"] == 12
    again = tmp_path / "again.csv"
    assert cli("export", multi_project, "--format", "csv", "--out", again)[0] == 0
    with open(again, newline="") as handle:
        assert {row["path"]: row["label"] for row in csv.DictReader(handle)} == \
            {path: row["label"] for path, row in rows.items()}


def test_hf_export_of_tags_loads_as_a_sequence_of_class_labels(multi_project, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import datasets  # after the environment above: it reads it on import

    labels = tmp_path / "tags.csv"
    labels.write_text("path,label\nimg_00001.png,star;circle\nimg_00002.webp,\n")
    assert cli("label", multi_project, "--csv", labels)[0] == 0
    out = tmp_path / "hf"
    code, stdout, err = cli("export", multi_project, "--format", "hf", "--out", out, "--split", "0.5,0.5")
    assert code == 0 and "wrote 12 rows" in stdout, err
    loaded = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "hf-cache"))
    feature = loaded["train"].features["label"]
    assert feature.feature.names == ["circle", "square", "star"]
    tags = {path: [feature.feature.int2str(i) for i in label] for split in loaded.values()
            for path, label in zip(split["path"], split["label"])}
    assert len(tags) == 12 and tags["img_00001.png"] == ["circle", "star"] and tags["img_00002.webp"] == []


def test_labels_from_folders_are_refused_in_a_multi_label_project(multi_project, tmp_path, cli):
    """Never mixed: labels from folders give one class per image (the page's keys toggle tags:
    tests/test_multilabel_page.py)."""
    from engine.errors import LabelloopError
    from engine.labels.folder_labels import set_folder_labels
    from engine.project.folder import open_project
    from engine.session.workspace import Workspace

    with open_project(multi_project) as project:
        space = Workspace(project, ingest_workers=0)
        try:
            with pytest.raises(LabelloopError, match="multi-label"):
                set_folder_labels(project, True)
            assert project.store.label_events() == [] and not project.store.get_meta("labels_from_folders")
        finally:
            space.close()
