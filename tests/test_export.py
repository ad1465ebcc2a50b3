"""Export in every format and label import (issue 7), end to end through the CLI over the tiny model."""

import csv
import json
import os
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.dataset.export import MANIFEST_COLUMNS
from engine.labels.label_studio import labeling_config, task_path
from engine.dataset.split import parse_split, stratified_split
from engine.errors import LabelloopError
from storage import Store

CLASSES = ["circle", "square", "other"]
HUMAN = {"img_00001.png": "circle", "sub/img_00003.bmp": "square", "img_00002.webp": "", "img_00004.tiff": "other"}


def _csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("labelloop: error: "), err
    return lines[0]


def _labels_of(cli, project, out) -> dict[str, str]:
    """path -> label of a fresh CSV export of everything ("" = none of these)."""
    assert cli("export", project, "--format", "csv", "--out", out, "--force")[0] == 0
    return {row["path"]: row["label"] for row in _csv_rows(out)}


@pytest.fixture
def labeled(project, tmp_path, cli) -> Path:
    """The 12-image project with four human labels, one of them "none of these"."""
    labels = tmp_path / "labels-in.csv"
    labels.write_text("path,label\n" + "".join(f"{path},{label}\n" for path, label in HUMAN.items()))
    assert cli("label", project, "--csv", labels)[0] == 0
    return project


@pytest.fixture
def fresh(tmp_path, images, tiny_model, cli) -> Path:
    """A second project over the same images, with no human labels."""
    root = tmp_path / "fresh"
    assert cli("init", root, "--images", images, "--classes", ",".join(CLASSES), "--model", tiny_model)[0] == 0
    assert cli("ingest", root, "--workers", "0")[0] == 0
    return root


def test_manifests_hold_the_same_rows_in_csv_parquet_and_jsonl(labeled, tmp_path, cli):
    for fmt in ("csv", "parquet", "jsonl"):
        code, out, err = cli("export", labeled, "--format", fmt, "--out", tmp_path / f"all.{fmt}")
        assert code == 0 and "wrote 12 rows" in out, err
    table = pq.read_table(tmp_path / "all.parquet")
    assert tuple(table.column_names) == MANIFEST_COLUMNS
    rows = table.to_pylist()
    assert rows == [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    text = [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]
    assert text == _csv_rows(tmp_path / "all.csv")

    by_path = {row["path"]: row for row in rows}
    assert {path: by_path[path]["label"] or "" for path in HUMAN} == HUMAN
    assert by_path["img_00002.webp"]["label"] is None  # "none of these": empty in CSV, null in parquet and JSON
    assert all(by_path[path]["source"] == "human" and by_path[path]["confidence"] is None for path in HUMAN)
    machine = [row for row in rows if row["path"] not in HUMAN]
    assert {row["source"] for row in machine} == {"zeroshot"} and {row["round"] for row in machine} == {0}
    assert all(row["label"] in CLASSES and 0 < row["confidence"] <= 1 for row in machine)
    assert all(len(row["sha256"]) == 64 and row["size_bytes"] > 0 and (row["width"], row["height"]) == (128, 96)
               for row in rows)


def test_filters_source_confidence_and_none_of_these(labeled, tmp_path, cli):
    out = tmp_path / "human.csv"
    assert cli("export", labeled, "--format", "csv", "--out", out, "--source", "human")[0] == 0
    assert {row["path"]: row["label"] for row in _csv_rows(out)} == HUMAN
    code, stdout, _ = cli("export", labeled, "--format", "csv", "--out", out, "--source", "human",
                          "--no-include-none", "--force")
    assert code == 0 and "1 none-of-these" in stdout
    assert {row["path"] for row in _csv_rows(out)} == set(HUMAN) - {"img_00002.webp"}
    code, stdout, _ = cli("export", labeled, "--format", "csv", "--out", out, "--min-confidence", "1", "--force")
    assert code == 0 and "8 below --min-confidence" in stdout  # random model: no machine label is certain
    assert {row["path"] for row in _csv_rows(out)} == set(HUMAN)  # human labels pass any threshold


@pytest.mark.parametrize("fmt, flag, suffix", [("csv", "--csv", "csv"), ("label-studio", "--label-studio", "json")])
def test_export_then_import_into_a_fresh_project_gives_the_same_labels(labeled, fresh, tmp_path, cli, fmt, flag,
                                                                       suffix):
    exported = tmp_path / f"export.{suffix}"
    assert cli("export", labeled, "--format", fmt, "--out", exported, "--source", "human")[0] == 0
    code, out, err = cli("label", fresh, flag, exported)
    assert code == 0 and "imported 4 labels" in out, err
    assert _labels_of(cli, fresh, tmp_path / "again.csv") == _labels_of(cli, labeled, tmp_path / "before.csv")


def _label_studio_errors(tasks: list[dict], config: str) -> list[str]:
    """What Label Studio checks when it imports tasks against a labeling config (label_studio_sdk's
    LabelInterface.validate_task and _validate_region_logic): each object tag's $variable is in `data`;
    annotations and predictions carry a `result` list, a score lies in [0, 1]; every region names an existing
    control (`from_name`) of its `type`, connected to `to_name`, with values that control offers."""
    view = ElementTree.fromstring(config)
    variables = [tag.get("value").lstrip("$") for tag in view.iter("Image")]
    controls = {tag.get("name"): (tag.tag.lower(), tag.get("toName"), {c.get("value") for c in tag.iter("Choice")})
                for tag in view.iter("Choices")}
    errors = []
    for number, task in enumerate(tasks):
        errors += [f"task {number}: no data.{v}" for v in variables if not task.get("data", {}).get(v)]
        for item in task.get("annotations", []) + task.get("predictions", []):
            if not isinstance(item.get("result"), list) or not 0 <= item.get("score", 0) <= 1:
                errors.append(f"task {number}: bad result or score {item}")
                continue
            for region in item["result"]:
                kind, to_name, values = controls.get(region.get("from_name"), (None, None, set()))
                if (region.get("type"), region.get("to_name")) != (kind, to_name) or \
                        not set(region["value"]["choices"]) <= values or not 0 <= region.get("score", 0) <= 1:
                    errors.append(f"task {number}: bad region {region}")
    return errors


def test_label_studio_tasks_carry_what_its_import_reads(labeled, tmp_path, cli):
    out = tmp_path / "tasks.json"
    code, stdout, _ = cli("export", labeled, "--format", "label-studio", "--out", out)
    assert code == 0 and "<Choices name=\"choice\" toName=\"image\"" in stdout
    tasks = json.loads(out.read_text())
    assert len(tasks) == 12 and _label_studio_errors(tasks, labeling_config(CLASSES)) == []
    by_path = {task_path(task["data"]["image"], root_url="/data/local-files/?d=images/"): task for task in tasks}
    # the images folder is named "images": Label Studio's document root is its parent
    assert by_path["sub/img_00003.bmp"]["data"]["image"] == "/data/local-files/?d=images/sub/img_00003.bmp"
    assert by_path["img_00001.png"]["annotations"][0]["result"][0]["value"] == {"choices": ["circle"]}
    assert by_path["img_00002.webp"]["annotations"] == [{"result": []}]  # none of these
    prediction = by_path["img_00005.jpg"]["predictions"][0]
    assert prediction["model_version"] == "labelloop-zeroshot-round-0" and 0 < prediction["score"] <= 1
    assert prediction["result"][0]["value"]["choices"][0] in CLASSES

    custom = tmp_path / "custom.json"
    cli("export", labeled, "--format", "label-studio", "--out", custom, "--ls-root-url", "http://files.test/im/")
    assert {t["data"]["image"] for t in json.loads(custom.read_text())} >= {"http://files.test/im/sub/img_00003.bmp"}


def test_label_studio_import_accepts_every_path_form_and_skips_what_is_not_a_label(project, images, tmp_path, cli):
    def task(image, *choices, cancelled=False):
        result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": list(choices)}}]
        return {"data": {"image": image}, "annotations": [{"result": result, "was_cancelled": cancelled}]}

    tasks = [task("/data/local-files/?d=sub/img_00003.bmp", "square"),
             task("/data/local-files?d=img%20x/../img_00001.png", "circle"),  # another local-files spelling
             task(str(images / "img_00002.webp"), "other"),  # absolute, under the images folder
             task("img_00004.tiff", "Other"),  # relative; class names match case-insensitively
             task("http://files.test/im/img_00005.jpg", "circle"),  # the --ls-root-url given below
             task("sub/img_00006.png", "square", cancelled=True),  # skipped, not labeled
             {"data": {"image": "img_00008.bmp"}, "annotations": [  # the newest annotation counts
                 {**task("", "circle")["annotations"][0], "updated_at": "2024-05-02T10:00:00Z"},
                 {**task("", "square")["annotations"][0], "updated_at": "2024-05-01T10:00:00Z"}]},
             {"data": {"image": "img_00007.webp"}, "predictions": []}]  # never annotated
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    code, out, err = cli("label", project, "--label-studio", path, "--ls-root-url", "http://files.test/im/")
    assert code == 0 and "imported 6 labels" in out, err
    assert "1 tasks without an annotation skipped" in out and "1 cancelled tasks skipped" in out
    assert _labels_of(cli, project, tmp_path / "o.csv").items() >= {
        "sub/img_00003.bmp": "square", "img_00001.png": "circle", "img_00002.webp": "other",
        "img_00004.tiff": "other", "img_00005.jpg": "circle", "img_00008.bmp": "circle"}.items()


def test_label_studio_import_reports_every_problem_and_writes_nothing(project, tmp_path, cli, cli_json):
    def task(image, *choices):
        result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": list(choices)}}]
        return {"id": len(tasks) + 1, "data": {"image": image}, "annotations": [{"result": result}]}

    tasks = []
    for image, choices in (("img_00001.png", ["circle"]), ("img_00002.webp", ["triangle"]),
                           ("img_00004.tiff", ["triangle"]), ("nowhere.png", ["circle"]),
                           ("/etc/passwd", ["circle"]), ("img_00005.jpg", ["circle", "square"])):
        tasks.append(task(image, *choices))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(tasks))
    code, _, err = cli("label", project, "--label-studio", path)
    line = _one_line(err)
    assert code == 1 and "5 bad row(s), nothing was written" in line
    for fragment in ("unknown class 'triangle' (task 2, task 3)", "'nowhere.png' is not an image of this project",
                     "'/etc/passwd' is not an image", "more than one choice (task 6)", "classes are circle, square"):
        assert fragment in line
    assert cli_json("status", project)["labels"]["human"] == 0  # not even the good first task


def test_hf_export_loads_with_datasets_with_the_class_names_and_counts(labeled, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import datasets  # after the environment above: it reads it on import
    out = tmp_path / "hf"
    code, stdout, err = cli("export", labeled, "--format", "hf", "--out", out, "--split", "0.5,0.25,0.25")
    assert code == 0 and "wrote 11 rows" in stdout and "1 none-of-these" in stdout, err  # left out by default
    record = _csv_rows(out / "manifest.csv")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "hf-cache"))
    names = {"train": "train", "validation": "val", "test": "test"}
    assert set(loaded) == set(names)
    for split, folder in names.items():
        features = loaded[split].features
        assert features["label"].names == CLASSES  # project order, classes without images included
        counts = Counter(features["label"].int2str(i) for i in loaded[split]["label"])
        assert counts == Counter(row["label"] for row in record if row["split"] == folder)
        paths = {row["path"] for row in record if row["split"] == folder}
        assert set(loaded[split]["path"]) == paths and len(paths) == len(loaded[split])


@pytest.mark.parametrize("link", ["copy", "symlink", "hardlink"])
def test_imagefolder_has_one_folder_per_class_and_a_manifest(labeled, images, tmp_path, cli, link):
    out = tmp_path / "folder"
    assert cli("export", labeled, "--format", "imagefolder", "--out", out, "--link", link, "--include-none")[0] == 0
    manifest = _csv_rows(out / "manifest.csv")
    assert len(manifest) == 12
    assert {p.name for p in out.iterdir()} == {*CLASSES, "none_of_these", "manifest.csv", "quality.json",
                                              "classes.json"}
    assert json.loads((out / "classes.json").read_text()) == [*CLASSES, "none_of_these"]
    for row in manifest:
        file, source = out / row["file"], images / row["path"]
        assert row["file"] == f"{row['label'] or 'none_of_these'}/{row['path'].replace('/', '__')}"
        assert file.read_bytes() == source.read_bytes()
        assert file.is_symlink() == (link == "symlink")
        assert os.path.samefile(file, source) == (link != "copy")
    assert manifest[[r["path"] for r in manifest].index("img_00002.webp")]["file"] == "none_of_these/img_00002.webp"


def test_split_is_stratified_and_the_same_for_the_same_seed():
    labels = np.repeat(np.array(["a", "b", "c", "d"], object), [50, 30, 7, 1])
    np.random.default_rng(1).shuffle(labels)
    split = stratified_split(labels, (0.8, 0.1, 0.1), seed=3)
    for name, size in (("a", 50), ("b", 30), ("c", 7), ("d", 1)):
        counts = np.bincount(split[labels == name], minlength=3)
        assert counts.sum() == size and np.all(np.abs(counts - size * np.array([0.8, 0.1, 0.1])) < 1)
    assert np.array_equal(split, stratified_split(labels, (0.8, 0.1, 0.1), seed=3))
    assert not np.array_equal(split, stratified_split(labels, (0.8, 0.1, 0.1), seed=4))
    assert parse_split("0.7, 0.3") == (0.7, 0.3)
    for bad in ("0.8,0.3", "1", "a,b", "0,1", "0.5,0.2,0.2,0.1", "nan,1"):
        with pytest.raises(LabelloopError, match="--split"):
            parse_split(bad)


def test_split_export_is_reproducible_and_recorded(labeled, tmp_path, cli):
    manifests = []
    for name, seed in (("a", "7"), ("b", "7")):
        code, stdout, _ = cli("export", labeled, "--format", "imagefolder", "--out", tmp_path / name,
                              "--split", "0.6,0.4", "--seed", seed)
        assert code == 0 and "splits: train" in stdout
        manifests.append(_csv_rows(tmp_path / name / "manifest.csv"))
    assert manifests[0] == manifests[1] and {row["split"] for row in manifests[0]} == {"train", "val"}
    with Store.open(labeled / "labelloop.duckdb") as store:
        newest = store.exports()[0]
    assert newest["format"] == "imagefolder" and newest["path"] == str(tmp_path / "b")
    assert newest["filters"] == {"source": "all", "min_confidence": None, "include_none": False, "link": "copy",
                                 "split": [0.6, 0.4], "seed": 7}
    assert newest["counts"]["rows"] == 11 and sum(newest["counts"]["splits"].values()) == 11
    assert newest["counts"]["left_out"] == {"unpredicted": 0, "below_confidence": 0, "changed": 0,
                                            "none_of_these": 1, "unavailable": 0}


@pytest.mark.parametrize("args, fragment", [
    (["--format", "xml", "--out", "{tmp}/x"], "unknown export format 'xml'; valid formats: csv, parquet, jsonl"),
    (["--format", "csv", "--out", "{tmp}/x", "--source", "robot"], "unknown --source 'robot'"),
    (["--format", "csv", "--out", "{tmp}/x", "--min-confidence", "1.5"], "between 0 and 1"),
    (["--format", "imagefolder", "--out", "{tmp}/x", "--link", "move"], "unknown --link 'move'"),
    (["--format", "imagefolder", "--out", "{tmp}/x", "--split", "0.9,0.2"], "--split must be"),
    (["--format", "csv", "--out", "{tmp}/x", "--split", "0.8,0.2"], "apply to the folder formats"),
    (["--format", "csv", "--out", "{images}/labels.csv"], "inside the images folder"),
    (["--format", "imagefolder", "--out", "{images}/sub/out"], "inside the images folder"),
    (["--format", "imagefolder", "--out", "{tmp}", "--force"], "contains the images folder or the project"),
    (["--format", "csv", "--out", "{project}/labelloop.duckdb", "--force"], "one of the project's own files"),
    (["--format", "csv", "--out", "{existing}"], "already exists; pass --force"),
    (["--format", "imagefolder", "--out", "{full}"], "is not empty; pass --force"),
    (["--format", "imagefolder", "--out", "{full}", "--force"], "is not an earlier export"),
    (["--format", "hf", "--out", "{existing}", "--force"], "is a file"),
    (["--format", "jsonl", "--out", "{full}", "--force"], "is a folder"),
    (["--format", "csv", "--out", "{tmp}/no/such/folder.csv"], "does not exist; create it first"),
])
def test_each_refusal_is_one_line_and_leaves_everything_as_it_was(project, images, tmp_path, cli, args, fragment):
    (tmp_path / "existing.csv").write_text("mine\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    values = {"tmp": tmp_path, "images": images, "project": project, "existing": tmp_path / "existing.csv",
              "full": tmp_path / "full"}
    code, _, err = cli("export", project, *[a.format(**values) for a in args])
    assert code == 1 and fragment in _one_line(err)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "existing.csv").read_text() == "mine\n"


def test_a_symlink_out_of_the_images_folder_is_never_exported(project, images, tmp_path, cli):
    secret = tmp_path / "secret.png"
    secret.write_bytes((images / "img_00001.png").read_bytes())
    (images / "img_00001.png").unlink()
    (images / "img_00001.png").symlink_to(secret)
    code, _, err = cli("export", project, "--format", "imagefolder", "--out", tmp_path / "out")
    line = _one_line(err)
    assert code == 1 and "1 image points outside the images folder (first: 'img_00001.png')" in line
    assert "labelloop ingest" in line and not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no partial folder left


def test_force_replaces_an_earlier_folder_export_whole(labeled, tmp_path, cli):
    out = tmp_path / "folder"
    assert cli("export", labeled, "--format", "imagefolder", "--out", out)[0] == 0
    assert cli("export", labeled, "--format", "imagefolder", "--out", out, "--source", "human", "--force")[0] == 0
    assert len(_csv_rows(out / "manifest.csv")) == 3
    assert len(list(out.rglob("*.*"))) == 6  # 3 images, manifest, quality, classes
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_task_path_reads_what_tasks_write():
    assert task_path("/data/local-files/?d=a%20b/c%23.png") == "a b/c#.png"
    assert task_path("http://ls.test/data/local-files/?d=x/y.png&d=z.png") == "z.png"
    assert task_path("s3://bucket/z.png") == "s3://bucket/z.png"
    assert task_path("https://h/im/p%2Bq.png", root_url="https://h/im/") == "p+q.png"


def test_folder_exports_with_different_filters_number_the_classes_alike_in_torchvision(fresh, tmp_path, cli):
    from torchvision.datasets import ImageFolder

    labels = tmp_path / "one-label.csv"
    labels.write_text("path,label\nimg_00001.png,square\n")
    assert cli("label", fresh, "--csv", labels)[0] == 0
    exports = {}
    for name, filters in (("human", ["--source", "human"]), ("all", ["--min-confidence", "0"])):
        out = tmp_path / name
        assert cli("export", fresh, "--format", "imagefolder", "--out", out, *filters)[0] == 0
        exports[out] = ImageFolder(out, allow_empty=True)  # classes without images are empty folders
    human, everything = (_csv_rows(out / "manifest.csv") for out in exports)
    assert {row["label"] for row in human} == {"square"} and len({row["label"] for row in everything}) > 1
    numbering = [dataset.class_to_idx for dataset in exports.values()]
    assert numbering[0] == numbering[1] == {name: i for i, name in enumerate(sorted(CLASSES))}
    for out, dataset in exports.items():
        # docs/export.md's mapping from torchvision's alphabetical numbering to the project's order
        order = json.loads((out / "classes.json").read_text())
        to_project = [order.index(name) for name in dataset.classes]
        dataset.target_transform = to_project.__getitem__
        files = {row["file"]: row["label"] for row in _csv_rows(out / "manifest.csv")}
        assert order == CLASSES and len(dataset) == len(files)
        for (path, _), (_, target) in zip(dataset.samples, dataset):
            assert CLASSES[target] == files[Path(path).relative_to(out).as_posix()]


@pytest.mark.parametrize("name", ["CON", "lpt1.txt", "a:b", "why?", "end."])
def test_a_class_that_cannot_be_a_folder_on_windows_or_macos_is_refused_before_anything_is_written(
        tmp_path, images, tiny_model, cli, name):
    project = tmp_path / "project"
    assert cli("init", project, "--images", images, "--classes", f"circle,{name}", "--model", tiny_model)[0] == 0
    assert cli("ingest", project, "--workers", "0")[0] == 0
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for fmt in ("imagefolder", "hf"):
        code, _, err = cli("export", project, "--format", fmt, "--out", tmp_path / "out")
        assert code == 1 and f"class {name!r} cannot be a folder name" in _one_line(err)
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert cli("export", project, "--format", "csv", "--out", tmp_path / "labels.csv")[0] == 0


def test_fiftyone_export_holds_each_label_with_its_confidence_source_round_and_logits(labeled, tmp_path, cli):
    out = tmp_path / "fiftyone"
    code, stdout, err = cli("export", labeled, "--format", "fiftyone", "--out", out)
    assert code == 0 and "wrote 12 rows" in stdout, err  # "none of these" is kept: it is a null label
    assert {p.name for p in out.iterdir()} == {"data", "labels.json", "manifest.csv", "quality.json", "classes.json"}
    document = json.loads((out / "labels.json").read_text())
    assert document["classes"] == CLASSES == json.loads((out / "classes.json").read_text())
    manifest = _csv_rows(out / "manifest.csv")
    assert {row["file"] for row in manifest} == {f"data/{p.name}" for p in (out / "data").iterdir()}
    for row in manifest:
        entry = document["labels"][Path(row["file"]).stem]
        if not row["label"]:
            assert entry is None
            continue
        assert document["classes"][entry["label"]] == row["label"]
        assert entry["attributes"]["source"] == row["source"]
        if row["source"] == "human":
            assert entry["confidence"] is None and entry["attributes"] == {"source": "human", "round": None}
            continue
        assert entry["confidence"] == float(row["confidence"]) and entry["attributes"]["round"] == int(row["round"])
        probabilities = np.exp(entry["attributes"]["logits"])
        assert abs(probabilities.sum() - 1) < 1e-3 and np.argmax(probabilities) == entry["label"]
        assert abs(probabilities.max() - entry["confidence"]) < 1e-3
    assert sum(entry is None for entry in document["labels"].values()) == 1


def test_fiftyone_split_export_has_a_dataset_per_split_folder(labeled, tmp_path, cli):
    out = tmp_path / "fiftyone"
    assert cli("export", labeled, "--format", "fiftyone", "--out", out, "--split", "0.5,0.5")[0] == 0
    manifest = _csv_rows(out / "manifest.csv")
    for split in ("train", "val"):
        rows = [row for row in manifest if row["split"] == split]
        labels = json.loads((out / split / "labels.json").read_text())["labels"]
        assert sorted(labels) == sorted(Path(row["file"]).stem for row in rows)
        assert {row["file"] for row in rows} == {f"{split}/data/{p.name}" for p in (out / split / "data").iterdir()}


def test_fiftyone_logits_follow_the_project_class_order_and_skip_predictions_over_other_classes():
    import pyarrow as pa

    from engine.dataset.fiftyone_labels import class_logits

    predictions = pa.table({"path": ["a.png", "b.png", "c.png"],
                            "class_ids": [[3, 1, 2], [1, 2], [1, 2, 3]],  # b: made before class 3 was added
                            "probs": [[0.7, 0.2, 0.1], [0.5, 0.5], [1.0, 0.0, 0.0]]})
    logits = class_logits(predictions, [1, 2, 3])
    assert set(logits) == {"a.png", "c.png"}
    assert np.allclose(np.exp(logits["a.png"]), [0.2, 0.1, 0.7], atol=1e-4)
    assert logits["c.png"][0] == 0 and all(np.isfinite(logits["c.png"]))  # a probability of 0 has no log
    assert json.loads(json.dumps(logits)) == logits  # plain JSON: no NaN or Infinity


def test_fiftyone_export_refuses_two_images_that_differ_only_in_their_extension(tmp_path, images, tiny_model, cli):
    (images / "img_00002.png").write_bytes((images / "img_00001.png").read_bytes())  # beside img_00002.webp
    project = tmp_path / "project"
    assert cli("init", project, "--images", images, "--classes", ",".join(CLASSES), "--model", tiny_model)[0] == 0
    assert cli("ingest", project, "--workers", "0")[0] == 0
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code, _, err = cli("export", project, "--format", "fiftyone", "--out", tmp_path / "out")
    assert code == 1 and "images 'img_00002.png' and 'img_00002.webp' differ only in their extension" in _one_line(err)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
