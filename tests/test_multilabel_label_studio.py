"""Label Studio and multi-label projects (issue 27): a `<Choices choice="multiple">` export and its import back;
an export of the other kind of project, or an unknown tag, refused in one line with nothing written."""

from __future__ import annotations

import json

from tests.test_cli import _one_line
from tests.test_multilabel import _tag_labels, multi_project  # noqa: F401 (a fixture)

EVERYTHING = {"circle", "square", "star"}


def _task(task_id: int, image: str, control: str, *choices: str) -> dict:
    result = [{"from_name": control, "to_name": "image", "type": "choices", "value": {"choices": list(choices)}}] \
        if choices else []
    return {"id": task_id, "data": {"image": f"/data/local-files/?d=images/{image}"},
            "annotations": [{"result": result}]}


def _write(path, tasks: list[dict]):
    path.write_text(json.dumps(tasks))
    return path


def test_export_writes_multiple_choices_and_they_import_back(multi_project, tmp_path, cli, cli_json):  # noqa: F811
    labels = tmp_path / "tags.csv"
    labels.write_text("path,label\nimg_00001.png,star;circle\nimg_00002.webp,\n")
    assert cli("label", multi_project, "--csv", labels)[0] == 0
    out = tmp_path / "tasks.json"
    code, stdout, err = cli("export", multi_project, "--format", "label-studio", "--out", out)
    assert code == 0 and "wrote 12 tasks (2 annotations, 10 predictions)" in stdout, err
    assert ('<Choices name="tags" toName="image" choice="multiple"><Choice value="circle"/><Choice value="square"/>'
            '<Choice value="star"/></Choices>') in stdout
    tasks = {task["data"]["image"].split("?d=images/", 1)[1]: task for task in json.loads(out.read_text())}
    assert tasks["img_00001.png"]["annotations"] == [{"result": [
        {"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": ["circle", "star"]}}]}]
    assert tasks["img_00002.webp"]["annotations"] == [{"result": []}]  # no tag applies
    predicted = [region for task in tasks.values() for prediction in task.get("predictions", [])
                 for region in prediction["result"]]
    assert predicted and all(region["from_name"] == "tags" for region in predicted)

    edited = [_task(1, "img_00001.png", "tags", "square", "circle"), _task(2, "img_00002.webp", "tags"),
              _task(3, "img_00005.jpg", "tags", "star")]
    code, stdout, err = cli("label", multi_project, "--label-studio", _write(tmp_path / "back.json", edited))
    assert code == 0 and "imported 3 labels" in stdout and "(2 changed" in stdout, err
    assert _tag_labels(multi_project) == {"img_00001.png": ({"circle", "square"}, EVERYTHING),
                                          "img_00002.webp": (set(), EVERYTHING),
                                          "img_00005.jpg": ({"star"}, EVERYTHING)}


def test_an_export_of_the_other_kind_or_an_unknown_tag_is_refused_and_writes_nothing(
        multi_project, project, tmp_path, cli, cli_json):  # noqa: F811
    cases = [(multi_project, [_task(1, "img_00001.png", "choice", "circle")],
              'one class from a single-label config (<Choices name="choice">) and this project is multi-label'),
             (multi_project, [_task(1, "img_00001.png", "tags", "circle", "triangle")],
              "unknown tag 'triangle'"),
             (project, [_task(1, "img_00001.png", "tags", "circle")],
              'tags from a multi-label config (<Choices name="tags">) and this project is single-label'),
             (project, [_task(1, "img_00001.png", "other-control", "circle", "square")],
              "more than one choice (task 1)")]
    for root, tasks, fragment in cases:
        good = _task(9, "img_00004.tiff", "tags" if root == multi_project else "choice", "circle")
        code, _, err = cli("label", root, "--label-studio", _write(tmp_path / "bad.json", [good, *tasks]))
        assert code == 1 and fragment in _one_line(err) and "1 bad row(s), nothing was written" in err, err
    assert _tag_labels(multi_project) == {} and cli_json("status", project)["labels"]["human"] == 0
