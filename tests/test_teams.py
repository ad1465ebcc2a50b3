"""Teams through the CLI (issue 29): people and roles, `label --as`, `agreement --json`, `export --per-person`, the
Label Studio export's one annotation per person, reviews, and the refusals that write nothing."""

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from engine.labels.team import review
from engine.project.folder import open_project

PATHS = ["img_00001.png", "img_00002.webp", "img_00004.tiff", "img_00005.jpg", "img_00007.webp", "img_00008.bmp"]
CLASSES = ["circle", "square", "other"]
ANN = ["circle", "square", "other", "circle", "square", "other"]
BOB = ["circle", "square", "circle", "circle", "other", "other"]
CAT = ["circle", "circle", "other", "circle", "square", "square"]


def _labels_file(tmp_path, name, labels, paths=PATHS):
    path = tmp_path / f"{name}.csv"
    path.write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in zip(paths, labels)))
    return path


def _one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("labelloop: error: "), err
    return lines[0]


def _human_labels(cli, project, tmp_path):
    out = tmp_path / "human.csv"
    assert cli("export", project, "--format", "csv", "--out", out, "--source", "human", "--force")[0] == 0
    with open(out, newline="") as handle:
        return {row["path"]: row["label"] for row in csv.DictReader(handle)}


@pytest.fixture
def team_project(project, tmp_path, cli):
    assert cli("team", project, "--add", "ann", "--add", "bob", "--add", "cat", "--add", "rev:reviewer")[0] == 0
    for name, labels in (("ann", ANN), ("bob", BOB), ("cat", CAT)):
        code, out, err = cli("label", project, "--csv", _labels_file(tmp_path, name, labels), "--as", name)
        assert code == 0 and f"as {name}" in out, err
    return project


def test_labels_as_people_are_kept_side_by_side_and_agreement_equals_the_references(team_project, tmp_path, cli,
                                                                                  cli_json):
    report = cli_json("agreement", team_project)
    assert set(report) == {"kappa", "per_class", "pairs", "people"}
    people = np.array([[CLASSES.index(label) for label in labels] for labels in (ANN, BOB, CAT)]).T
    table, _ = aggregate_raters(people, n_cat=3)
    assert report["kappa"] == pytest.approx(fleiss_kappa(table), abs=1e-4)
    assert set(report["per_class"]) == set(CLASSES)
    pairs = {(p["a"], p["b"]): p for p in report["pairs"]}
    assert set(pairs) == {("ann", "bob"), ("ann", "cat"), ("bob", "cat")}
    for (a, b), pair in pairs.items():
        first, second = (dict(ann=ANN, bob=BOB, cat=CAT)[name] for name in (a, b))
        assert pair["n"] == 6 and pair["kappa"] == pytest.approx(cohen_kappa_score(first, second), abs=1e-4)
    by_name = {p["name"]: p for p in report["people"]}
    assert set(by_name) == {"ann", "bob", "cat", "rev"} and by_name["ann"]["labels"] == 6
    assert by_name["rev"] == {"name": "rev", "labels": 0, "agreement_with_consensus": None}

    consensus = _human_labels(cli, team_project, tmp_path)
    assert set(consensus) == set(PATHS)  # one label per image: the consensus of three people
    for path, ann, bob, cat in zip(PATHS, ANN, BOB, CAT):
        if len({ann, bob, cat}) < 3:  # a majority exists: with no better evidence than chance, it wins
            assert consensus[path] in {ann, bob, cat}
    agreement = by_name["ann"]["agreement_with_consensus"]
    assert agreement == pytest.approx(np.mean([consensus[p] == label for p, label in zip(PATHS, ANN)]), abs=1e-4)

    out = tmp_path / "people.csv"
    assert cli("export", team_project, "--format", "csv", "--out", out, "--per-person")[0] == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 18 and set(rows[0]) == {"path", "person", "label", "labelled_at"}
    assert {(r["path"], r["person"], r["label"]) for r in rows} == {
        (p, name, label) for name, labels in (("ann", ANN), ("bob", BOB), ("cat", CAT)) for p, label in zip(PATHS, labels)}
    assert all(r["labelled_at"].startswith("20") for r in rows)

    studio = tmp_path / "tasks.json"
    assert cli("export", team_project, "--format", "label-studio", "--out", studio)[0] == 0
    tasks = json.loads(studio.read_text())
    labelled = [t for t in tasks if t.get("annotations")]
    assert len(labelled) == 6
    assert all(sorted(a["completed_by"] for a in t["annotations"]) == ["ann", "bob", "cat"] for t in labelled)


def test_a_second_import_replaces_only_that_persons_labels(team_project, tmp_path, cli, cli_json):
    again = ["square"] * 6
    assert cli("label", team_project, "--csv", _labels_file(tmp_path, "bob2", again), "--as", "bob")[0] == 0
    out = tmp_path / "people.csv"
    assert cli("export", team_project, "--format", "jsonl", "--out", out, "--per-person")[0] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["label"] for r in rows if r["person"] == "bob"} == {"square"}
    assert [r["label"] for r in sorted(rows, key=lambda r: r["path"]) if r["person"] == "ann"] == \
        [label for _, label in sorted(zip(PATHS, ANN))]


def test_team_refusals_are_one_line_and_write_nothing(team_project, project, tmp_path, cli, cli_json):
    before = cli_json("team", team_project)
    for args, fragment in (
            (("--add", "Ann"), "differ only in case"),
            (("--add", "zoe", "--remove", "ann"), "has labelled 6 images"),
            (("--add", "zoe", "--overlap", "0"), "out of range"),
            (("--overlap", "1.5"), "out of range"),
            (("--remove", "nobody"), "not a person of this project"),
            (("--add", "zoe", "--add", "ZOE"), "differ only in case")):
        code, _, err = cli("team", team_project, *args)
        assert code == 1 and fragment in _one_line(err), (args, err)
    assert cli_json("team", team_project) == before

    labels = _labels_file(tmp_path, "x", ANN)
    code, _, err = cli("label", team_project, "--csv", labels, "--as", "ANN")
    assert code == 1 and "did you mean 'ann'" in _one_line(err)
    code, _, err = cli("label", team_project, "--csv", labels, "--as", "dave")
    assert code == 1 and "not a person of this project" in _one_line(err)
    code, _, err = cli("export", team_project, "--format", "imagefolder", "--out", tmp_path / "f", "--per-person")
    assert code == 1 and "--per-person" in _one_line(err)


def test_labelling_as_someone_in_a_project_without_people_is_refused(project, tmp_path, cli, cli_json):
    code, _, err = cli("label", project, "--csv", _labels_file(tmp_path, "ann", ANN), "--as", "ann")
    assert code == 1 and "has no people" in _one_line(err)
    assert cli_json("status", project)["labels"]["human"] == 0
    assert cli_json("agreement", project) == {"kappa": None, "per_class": {name: None for name in CLASSES},
                                              "pairs": [], "people": []}


def test_auth_entries_carry_roles_and_refuse_names_differing_in_case():
    from app.server import auth_entries, parse_auth
    from engine.errors import LabelloopError

    assert auth_entries("ann:pw rita:s3:cret:reviewer") == [("ann", "pw", "labeler"), ("rita", "s3:cret", "reviewer")]
    assert parse_auth(["rita:pw:reviewer"]) == [("rita", "pw")]
    with pytest.raises(LabelloopError, match="differing only in case"):
        auth_entries(["ann:a", "ANN:b"])
    with pytest.raises(LabelloopError, match="entry 1"):
        auth_entries(["ann::reviewer"])


def test_overlap_draw_is_seeded_and_recorded(project, cli_json, cli):
    first = cli_json("team", project, "--overlap", "0.5", "--seed", "3")["overlap"]
    assert first == {"share": 0.5, "seed": 3, "images": 6}
    with open_project(project) as opened:
        drawn = opened.store.overlap_image_ids().tolist()
    cli_json("team", project, "--overlap", "0.5", "--seed", "3")
    with open_project(project) as opened:
        assert opened.store.overlap_image_ids().tolist() == drawn


def test_a_reviewer_approves_or_corrects_and_never_reviews_their_own(team_project, tmp_path, cli, cli_json):
    from engine.errors import LabelloopError

    with open_project(team_project) as opened:
        ids = opened.store.image_ids(PATHS)
        square = next(c["id"] for c in opened.store.classes() if c["name"] == "square")
        review(opened, ids[PATHS[2]][0], reviewer="rev", labeler="bob", approve=True)  # bob: circle
        review(opened, ids[PATHS[4]][0], reviewer="rev", labeler="bob", class_id=square)  # bob: other -> square
        with pytest.raises(LabelloopError, match="is a labeler"):
            review(opened, ids[PATHS[0]][0], reviewer="ann", labeler="bob", approve=True)
        opened.store.set_person_labels([ids[PATHS[0]][0]], [square], person="rev")
        with pytest.raises(LabelloopError, match="own label"):
            review(opened, ids[PATHS[0]][0], reviewer="rev", labeler="rev", approve=True)
    labels = _human_labels(cli, team_project, tmp_path)
    assert labels[PATHS[2]] == "circle" and labels[PATHS[4]] == "square"
    # a later import does not undo a reviewer's decision; both labels stay
    assert cli("label", team_project, "--csv", _labels_file(tmp_path, "cat2", ["other"] * 6), "--as", "cat")[0] == 0
    labels = _human_labels(cli, team_project, tmp_path)
    assert labels[PATHS[2]] == "circle" and labels[PATHS[4]] == "square"
    bob = next(p for p in cli_json("team", team_project)["people"] if p["name"] == "bob")
    assert (bob["reviewed"], bob["approved"], bob["corrected"]) == (2, 1, 1)
