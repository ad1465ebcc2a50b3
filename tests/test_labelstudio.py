"""Label Studio round trip through the CLI (issue 17): root URL hint, stale exports, what export and import report."""

import csv
import datetime as dt
import json

from engine.labels.label_studio import suggest_root_url


def _task(task_id: int, image: str, *choices: str, updated_at: str | None = None, cancelled: bool = False) -> dict:
    result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": list(choices)}}]
    annotation = {"result": result, "was_cancelled": cancelled}
    if updated_at:
        annotation["updated_at"] = annotation["created_at"] = updated_at
    return {"id": task_id, "data": {"image": image}, "annotations": [annotation]}


def _write(path, tasks: list[dict]):
    path.write_text(json.dumps(tasks))
    return path


def _labels(cli, project, out) -> dict[str, str]:
    assert cli("export", project, "--format", "csv", "--out", out, "--force")[0] == 0
    with open(out, newline="") as handle:
        return {row["path"]: row["label"] for row in csv.DictReader(handle) if row["source"] == "human"}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")  # as Label Studio writes it


def test_export_says_tasks_annotations_and_predictions_and_points_into_the_images_folder(project, tmp_path, cli):
    labels = tmp_path / "in.csv"
    labels.write_text("path,label\nimg_00001.png,circle\nimg_00002.webp,\n")
    assert cli("label", project, "--csv", labels)[0] == 0
    out = tmp_path / "tasks.json"
    code, stdout, err = cli("export", project, "--format", "label-studio", "--out", out)
    assert code == 0 and f"wrote 12 tasks (2 annotations, 10 predictions) to {out}" in stdout, err
    tasks = json.loads(out.read_text())
    assert sum("annotations" in task for task in tasks) == 2 and sum("predictions" in task for task in tasks) == 10
    # the fixture's images folder is tmp_path/images: Label Studio's document root is tmp_path
    assert {task["data"]["image"] for task in tasks} >= {"/data/local-files/?d=images/sub/img_00003.bmp"}


def test_import_with_the_wrong_root_url_names_the_one_to_pass(project, tmp_path, cli, cli_json):
    tasks = [_task(1, "/data/local-files/?d=pics/img_00001.png", "circle"),
             _task(2, "/data/local-files/?d=pics/sub/img_00003.bmp", "square"),
             _task(3, "/data/local-files/?d=pics/gone.png", "square")]  # not an image of the project whatever the root
    path = _write(tmp_path / "ls.json", tasks)
    code, _, err = cli("label", project, "--label-studio", path)
    assert code == 1 and "'pics/img_00001.png' is not an image of this project" in err
    assert "with --ls-root-url '/data/local-files/?d=pics/' 2 of the 3 unknown paths name images" in err
    assert len(err.strip().splitlines()) == 1 and cli_json("status", project)["labels"]["human"] == 0

    tasks.pop()
    code, out, err = cli("label", project, "--label-studio", _write(path, tasks),
                         "--ls-root-url", "/data/local-files/?d=pics/")
    assert code == 0 and "imported 2 labels" in out, err

    unrelated = _write(tmp_path / "other.json", [_task(1, "/data/local-files/?d=pics/x.png", "circle"),
                                                 _task(2, "http://elsewhere.test/y.png", "circle")])
    code, _, err = cli("label", project, "--label-studio", unrelated)
    assert code == 1 and "is not an image of this project" in err and "--ls-root-url '" not in err


def test_suggest_root_url_takes_the_prefix_that_names_the_most_images():
    images = {"a.png", "sub/b.png"}
    count = lambda paths: sum(path in images for path in paths)  # noqa: E731
    assert suggest_root_url(["http://h/d/a.png", "http://h/d/sub/b.png"], count) == ("http://h/d/", 2)
    assert suggest_root_url(["/x/a.png", "/y/a.png"], count) is None  # no shared prefix maps them
    assert suggest_root_url([], count) is None


def test_an_older_label_studio_export_never_undoes_a_newer_labelloop_label(project, tmp_path, cli):
    old = "2020-01-01T00:00:00.000000Z"
    stale = _write(tmp_path / "stale.json", [_task(1, "/data/local-files/?d=images/img_00001.png", "square",
                                                   updated_at=old)])
    assert "1 changed" in cli("label", project, "--label-studio", stale)[1]  # no labelloop label yet: it applies
    newer = tmp_path / "newer.csv"
    newer.write_text("path,label\nimg_00001.png,circle\nimg_00004.tiff,circle\n")
    assert cli("label", project, "--csv", newer)[0] == 0  # changed in labelloop after the annotation

    tasks = [_task(1, "/data/local-files/?d=images/img_00001.png", "square", updated_at=old),  # older: kept
             _task(2, "/data/local-files/?d=images/img_00004.tiff", "other", updated_at=_now()),  # newer: applies
             _task(3, "/data/local-files/?d=images/img_00005.jpg", "other", updated_at=old),  # no label yet: applies
             _task(4, "/data/local-files/?d=images/sub/img_00006.png", "other"),  # no time: applies, as a CSV row does
             _task(5, "/data/local-files/?d=images/img_00007.webp", "", cancelled=True)]
    path = _write(tmp_path / "ls.json", tasks)
    code, out, err = cli("label", project, "--label-studio", path)
    assert code == 0, err
    assert out.strip() == (f"imported 4 labels from {path} (3 changed, 1 of them replacing a label someone else "
                           "set; 1 kept: changed in labelloop after the Label Studio annotation (--force replaces "
                           "them); 1 cancelled tasks skipped)")
    assert _labels(cli, project, tmp_path / "a.csv") == {"img_00001.png": "circle", "img_00004.tiff": "other",
                                                         "img_00005.jpg": "other", "sub/img_00006.png": "other"}

    code, out, _ = cli("label", project, "--label-studio", path, "--force")
    assert code == 0 and "(1 changed, 1 of them replacing a label someone else set; 1 cancelled tasks skipped)" in out
    assert _labels(cli, project, tmp_path / "b.csv")["img_00001.png"] == "square"


def test_a_repeated_task_id_is_refused_and_never_reverts_a_newer_label(project, tmp_path, cli):
    newer = tmp_path / "newer.csv"
    newer.write_text("path,label\nimg_00001.png,circle\n")
    assert cli("label", project, "--csv", newer)[0] == 0  # set after the stale annotation below
    tasks = [_task(7, "/data/local-files/?d=images/img_00001.png", "square", updated_at="2020-01-01T00:00:00Z"),
             _task(7, "/data/local-files/?d=images/img_00004.tiff", "other", updated_at="2099-01-01T00:00:00Z")]
    path = _write(tmp_path / "ls.json", tasks)
    code, _, err = cli("label", project, "--label-studio", path)
    assert code == 1 and "task id 7 is used by 2 tasks; ids must be unique (task #1, task #2)" in err, err
    assert len(err.strip().splitlines()) == 1
    assert _labels(cli, project, tmp_path / "a.csv") == {"img_00001.png": "circle"}
