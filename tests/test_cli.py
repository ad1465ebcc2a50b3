"""The CLI contract of docs/ARCHITECTURE.md, end to end over a tiny randomly initialised open_clip model."""

import csv
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from tests.imagegen import write_bad_files, write_images

CONTRACT_COLUMNS = ["path", "label", "source", "confidence", "round"]


def _read_csv(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("labelloop: error: ")
    return lines[0]


def test_ingest_survives_bad_files_and_exports_every_good_image(tmp_path, tiny_model, cli, cli_json):
    images = tmp_path / "images"
    write_images(images, 200)
    bad = write_bad_files(images)
    root = tmp_path / "project"
    assert cli("init", root, "--images", images, "--classes", "circle,square", "--model", tiny_model)[0] == 0
    report = cli_json("ingest", root)
    assert (report["new"], report["embedded"], report["errors"], report["predicted"]) == (205, 200, 5, 200)

    status = cli_json("status", root)
    assert status["images"] == {"ok": 200, "error": 5, "missing": 0}
    assert {e["path"] for e in status["errors"]} == set(bad)
    assert all(e["reason"] for e in status["errors"])
    assert status["model"]["embedded"] == 200 and status["predictions"]["zeroshot"] == 200

    out = tmp_path / "labels.csv"
    code, stdout, _ = cli("export", root, "--format", "csv", "--out", out)
    assert code == 0 and "wrote 200 rows" in stdout
    columns, rows = _read_csv(out)
    assert columns[:5] == CONTRACT_COLUMNS and len(rows) == 200  # the contract's columns come first
    assert {row["source"] for row in rows} == {"zeroshot"}
    assert all(row["label"] in ("circle", "square") and 0 < float(row["confidence"]) <= 1 for row in rows)
    assert not any(row["path"] in bad for row in rows)


def test_ingest_only_processes_what_is_new_or_changed(tmp_path, tiny_model, cli, cli_json):
    images = tmp_path / "images"
    write_images(images, 30)
    root = tmp_path / "project"
    cli("init", root, "--images", images, "--classes", "circle,square", "--model", tiny_model)
    assert cli_json("ingest", root)["embedded"] == 30
    again = cli_json("ingest", root)
    assert (again["embedded"], again["new"], again["changed"], again["predicted"]) == (0, 0, 0, 0)

    write_images(images, 10, start=100, seed=7)
    assert cli_json("ingest", root)["embedded"] == 10

    # an edited file is embedded again; a copy of a known image reuses its vector; a deleted one is kept as missing
    cv2.imwrite(str(images / "img_00001.png"), np.zeros((40, 40, 3), np.uint8))
    shutil.copy(images / "img_00002.webp", images / "copy_of_2.webp")
    (images / "img_00004.tiff").unlink()
    report = cli_json("ingest", root)
    assert (report["changed"], report["new"], report["removed"]) == (1, 1, 1)
    assert (report["embedded"], report["reused"]) == (1, 1)
    status = cli_json("status", root)
    assert status["images"] == {"ok": 40, "error": 0, "missing": 1} and status["duplicates"] == 1
    assert status["model"]["embedded"] == 41  # the missing image keeps its vector for when it comes back


def test_label_csv_round_trips_and_bad_rows_write_nothing(project, tmp_path, cli, cli_json):
    labels = tmp_path / "in.csv"
    labels.write_text("path,label\nimg_00001.png,circle\n./sub/img_00003.bmp,square\nimg_00002.webp,\n")
    code, out, err = cli("label", project, "--csv", labels)
    assert code == 0, err
    out_csv = tmp_path / "human.csv"
    assert cli("export", project, "--format", "csv", "--out", out_csv, "--source", "human")[0] == 0
    _, rows = _read_csv(out_csv)
    assert {(r["path"], r["label"], r["source"]) for r in rows} == {
        ("img_00001.png", "circle", "human"), ("sub/img_00003.bmp", "square", "human"), ("img_00002.webp", "", "human")}

    for bad_row, fragment in (("img_00005.jpg,triangle", "unknown class 'triangle'"),
                              ("nowhere/else.png,circle", "is not an image of this project")):
        bad = tmp_path / "bad.csv"
        bad.write_text(f"path,label\nimg_00001.png,square\n{bad_row}\n")
        code, _, err = cli("label", project, "--csv", bad)
        assert code == 1 and fragment in _one_line(err) and "nothing was written" in err
    status = cli_json("status", project)
    assert status["labels"]["human"] == 3  # the good first row of each bad file was not written either
    _, rows = _read_csv(out_csv)
    assert ("img_00001.png", "circle") in {(r["path"], r["label"]) for r in rows}


def test_export_filters_and_refuses_to_overwrite(project, tmp_path, cli):
    out = tmp_path / "all.csv"
    assert cli("export", project, "--format", "csv", "--out", out, "--min-confidence", "1.0")[0] == 0
    _, rows = _read_csv(out)
    assert rows == []  # random model: no machine label is certain
    code, _, err = cli("export", project, "--format", "csv", "--out", out)
    assert code == 1 and "--force" in _one_line(err)
    code, _, err = cli("export", project, "--format", "xml", "--out", tmp_path / "x")
    assert code == 1 and "valid formats: csv, parquet" in _one_line(err)


def test_classes_key_sets_a_class_key_and_bad_keys_are_one_line(tmp_path, images, tiny_model, cli, cli_json):
    root = tmp_path / "keys"
    assert cli("init", root, "--images", images, "--classes", "circle,square,other", "--model", tiny_model)[0] == 0
    assert [(c["name"], c["key"]) for c in cli_json("classes", root)] == [("circle", "1"), ("square", "2"),
                                                                          ("other", "3")]
    code, out, err = cli("classes", root, "--key", "circle=c", "--key", "other=")
    assert code == 0, err
    assert out.split()[:2] == ["c", "circle"]
    for key, fragment in (("square=c", "key 'c' is already the key of class 'circle'"),
                          ("square=cc", "is not one letter or digit"), ("hexagon=h", "unknown class 'hexagon'"),
                          ("square=n", "the page's key for none of these")):
        code, _, err = cli("classes", root, "--key", key)
        assert code == 1 and fragment in _one_line(err)
    code, _, err = cli("classes", root, "--key", "square")
    assert code == 2 and "is not CLASS=KEY" in err and len(err.strip().splitlines()) == 1
    assert [(c["name"], c["key"]) for c in cli_json("classes", root)] == [("circle", "c"), ("square", "2"),
                                                                          ("other", None)]


@pytest.mark.parametrize("args, fragment", [
    (["init", "{tmp}/p", "--images", "{tmp}/nope", "--classes", "a,b"], "does not exist"),
    (["init", "{tmp}/p", "--images", "{images}", "--classes", "a,,b"], "empty name"),
    (["init", "{tmp}/p", "--images", "{images}", "--classes", "a,b", "--model", "nope"], "unknown model"),
    (["ingest", "{tmp}/not-a-project"], "not a labelloop project"),
    (["status"], "the following arguments are required"),
    (["serve", "{tmp}/p", "--home", "{tmp}"], "--home is for the start page, which serve shows without a PROJECT"),
    (["serve", "--home", "{tmp}/nope"], "--home {tmp}/nope is not a folder"),
])
def test_bad_input_exits_non_zero_with_one_line(tmp_path, images, cli, args, fragment):
    code, _, err = cli(*[a.format(tmp=tmp_path, images=images) for a in args])
    assert code != 0 and fragment.format(tmp=tmp_path) in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "p").exists()  # a refused init leaves nothing behind


def test_a_second_writer_fails_fast_in_one_line(project, tmp_path, hold):
    holder_pid = hold(project)
    labels = tmp_path / "in.csv"
    labels.write_text("path,label\nimg_00001.png,circle\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "app.cli", "label", str(project), "--csv", str(labels)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert f"in use by process {holder_pid}" in line
    assert time.monotonic() - started < 30  # it fails, it does not wait for the lock
