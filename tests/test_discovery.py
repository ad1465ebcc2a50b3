"""Text search, "more like this" and near-duplicates: the pure functions on toys, the project layer on the tiny
model's project, the CLI's JSON and its one-line refusals, and export --drop-duplicates."""

import csv
import shutil

import numpy as np
import pyarrow as pa
import pytest

from engine.project.discovery import DUPLICATE_THRESHOLD, Discovery
from engine.errors import LabelloopError
from engine.dataset.export import keep_one_per_group
from engine.learning.neighbours import EXACT_LIMIT, best_matches, duplicate_groups, exact_copies, near_duplicate_graph
from engine.project.folder import open_project


def _unit(rows) -> np.ndarray:
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---- pure functions ------------------------------------------------------------------------------------------

def test_best_matches_ranks_by_cosine_best_first_and_agrees_with_a_full_sort():
    rng = np.random.default_rng(0)
    x = _unit(rng.standard_normal((500, 16)))
    query = x[7]
    rows, scores = best_matches(x, query, 10)
    full = np.argsort(-(x @ query), kind="stable")[:10]
    assert rows.tolist() == full.tolist() and rows[0] == 7
    assert np.all(np.diff(scores) <= 0) and scores[0] == pytest.approx(1.0)
    assert len(best_matches(x[:3], query, 10)[0]) == 3  # fewer rows than k: all of them
    with pytest.raises(ValueError):
        best_matches(x, query[:5], 3)
    with pytest.raises(ValueError):
        best_matches(x, query, 0)


def test_duplicate_groups_join_chains_of_close_pairs_and_equal_content():
    # rows 0-1-2 form a chain (0~1 and 1~2 close, 0~2 not directly), 3 is alone, 4 and 5 share content only
    neighbours = np.array([[1, 3], [2, 0], [1, 4], [0, 5], [5, 3], [4, 2]])
    similarities = np.array([[0.99, 0.2], [0.98, 0.99], [0.98, 0.1], [0.2, 0.1], [0.3, 0.1], [0.3, 0.1]])
    groups = duplicate_groups(neighbours, similarities, 0.97)
    assert [g.tolist() for g in groups] == [[0, 1, 2]]
    content = np.array(["a", "b", "c", "d", "e", "e"], object)
    groups = duplicate_groups(neighbours, similarities, 0.97, content=content)
    assert [g.tolist() for g in groups] == [[0, 1, 2], [4, 5]]  # largest first
    assert duplicate_groups(neighbours, similarities, 0.999) == []
    for bad in (1.5, float("nan")):
        with pytest.raises(ValueError):
            duplicate_groups(neighbours, similarities, bad)
    with pytest.raises(ValueError):
        duplicate_groups(neighbours, similarities, 0.9, content=content[:3])


@pytest.mark.parametrize("n", [300, EXACT_LIMIT + 5_000])  # exact, then faiss's IVF index
def test_near_duplicate_graph_finds_planted_copies_and_nothing_else(n):
    rng = np.random.default_rng(1)
    x = _unit(rng.standard_normal((n, 32)))
    copies = _unit(x[:20] + 0.01 * rng.standard_normal((20, 32)))  # 20 near-copies of the first 20 rows
    everything = np.concatenate([x, copies])
    groups = duplicate_groups(*near_duplicate_graph(everything, 0.99), 0.99)
    assert sorted(g.tolist() for g in groups) == [[i, n + i] for i in range(20)]


def test_exact_copies_marks_members_that_share_content():
    assert exact_copies(np.array(["a", "b", "a", "c"], object)).tolist() == [True, False, True, False]


def test_keep_one_per_group_prefers_a_human_label_then_confidence():
    rows = pa.table({"path": ["a", "b", "c", "d", "e"], "source": ["pseudo", "human", "zeroshot", "zeroshot", None],
                     "confidence": [0.9, None, 0.5, 0.8, None]})
    kept, dropped = keep_one_per_group(rows, [["a", "b", "c"], ["c", "d"], ["e", "x"]])
    assert kept["path"].to_pylist() == ["b", "d", "e"] and dropped == 2
    kept, dropped = keep_one_per_group(rows, [["c", "d", "a"]])  # no person: the most confident
    assert kept["path"].to_pylist() == ["a", "b", "e"] and dropped == 2


# ---- the project layer (tiny model, 12 images) ---------------------------------------------------------------

def test_more_like_this_lists_the_image_first_then_its_nearest_neighbours(project):
    with open_project(project) as opened:
        discovery = Discovery(opened)
        _, image_ids, vectors = discovery.vectors()
        target = int(image_ids[3])
        matches = discovery.search_like(target, 5)
        assert matches[0].image_id == target and matches[0].score == pytest.approx(1.0)
        expected = np.argsort(-(vectors @ vectors[3]), kind="stable")
        expected = [int(image_ids[i]) for i in expected if i != 3][:4]
        assert [m.image_id for m in matches[1:]] == expected
        assert all(a.score >= b.score for a, b in zip(matches[1:], matches[2:]))
        assert discovery.image_id(opened.images_root / matches[0].path) == target  # absolute paths work too
        with pytest.raises(LabelloopError, match="not an image of this project"):
            discovery.image_id("nope.png")
        with pytest.raises(LabelloopError, match="empty"):
            discovery.search_text("  ")
        with pytest.raises(LabelloopError, match="k must be"):
            discovery.search_like(target, 0)


def test_text_search_embeds_the_query_with_the_project_model(project):
    from engine.learning.models import load_model

    with open_project(project) as opened:
        model = load_model(opened.model_spec)
        discovery = Discovery(opened, lambda: model)
        _, image_ids, vectors = discovery.vectors()
        matches = discovery.search_text("a photo of a circle", 4)
        query = model.encode_texts(["a photo of a circle"])[0]
        assert [m.image_id for m in matches] == [int(image_ids[i]) for i in np.argsort(-(vectors @ query))[:4]]


def test_no_embeddings_yet_is_one_line_that_says_to_ingest(tmp_path, images, tiny_model, cli):
    root = tmp_path / "fresh"
    assert cli("init", root, "--images", images, "--classes", "a,b", "--model", tiny_model)[0] == 0
    for args in (("search", root, "--like", "x.png"), ("duplicates", root)):
        code, _, err = cli(*args)
        assert code == 1 and "run `labelloop ingest" in err and len(err.strip().splitlines()) == 1


# ---- the CLI -------------------------------------------------------------------------------------------------

@pytest.fixture
def copied(project, images, cli):
    """The tiny project with an exact copy and a re-saved copy of one image, ingested."""
    from PIL import Image

    first = sorted(p for p in images.rglob("*.png"))[0]
    shutil.copy(first, images / "exact_copy.png")
    Image.open(first).convert("RGB").save(images / "resaved_copy.png")
    assert cli("ingest", project, "--workers", "0")[0] == 0
    return project, first.relative_to(images).as_posix()


def test_cli_search_like_and_duplicates_print_json(copied, cli_json):
    project, original = copied
    found = cli_json("search", project, "--like", original, "--k", "3")
    assert found[0] == {"path": original, "score": 1.0, "image_id": found[0]["image_id"]}
    assert found[1]["path"] in ("exact_copy.png", "resaved_copy.png") and len(found) == 3
    groups = cli_json("duplicates", project)
    group = next(g for g in groups if original in [m["path"] for m in g])
    exact = {m["path"]: m["exact"] for m in group}
    assert exact[original] and exact["exact_copy.png"] and not exact.get("resaved_copy.png", False)
    assert all({"path", "score", "exact"} <= set(m) for g in groups for m in g)


def test_cli_refuses_bad_input_in_one_line(copied, cli):
    project, _ = copied
    for args, exit_code, fragment in [
        (("search", project, ""), 2, "search text is empty"),
        (("search", project), 1, "give either a search text or --like PATH"),
        (("search", project, "--like", "nope.png"), 1, "not an image of this project"),
        (("search", project, "--like", "x.png", "--k", "0"), 2, "must be at least 1"),
        (("duplicates", project, "--threshold", "1.5"), 2, "(0, 1]"),
        (("duplicates", project, "--threshold", "nan"), 2, "(0, 1]"),
        (("search", project.parent / "nowhere", "--like", "x.png"), 1, "not a labelloop project"),
    ]:
        code, _, err = cli(*args)
        assert code == exit_code and fragment in err and len(err.strip().splitlines()) == 1, (args, err)


def test_export_drop_duplicates_keeps_the_labelled_copy(copied, cli, tmp_path):
    project, original = copied
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nexact_copy.png,square\n")
    assert cli("label", project, "--csv", labels)[0] == 0
    out = tmp_path / "out.csv"
    code, stdout, err = cli("export", project, "--format", "csv", "--out", out, "--drop-duplicates")
    assert code == 0, err
    paths = [row["path"] for row in csv.DictReader(out.open())]
    assert "exact_copy.png" in paths and original not in paths and "near-duplicates" in stdout
    code, _, _ = cli("export", project, "--format", "csv", "--out", tmp_path / "all.csv")
    assert len(list(csv.DictReader((tmp_path / "all.csv").open()))) > len(paths)
    with open_project(project) as opened:
        newest, earlier = opened.store.exports(2)
        assert earlier["filters"]["drop_duplicates"] == DUPLICATE_THRESHOLD
        assert "drop_duplicates" not in newest["filters"]


def test_the_vectors_in_memory_follow_ingest(project, images):
    from engine.dataset.ingest import ingest
    from engine.learning.models import load_model

    with open_project(project) as opened:
        discovery = Discovery(opened)
        before = len(discovery.vectors()[1])
        first = sorted(images.rglob("*.png"))[0]
        shutil.copy(first, images / "another_copy.png")
        ingest(opened, load_model(opened.model_spec), workers=0)
        assert len(discovery.vectors()[1]) == before + 1
