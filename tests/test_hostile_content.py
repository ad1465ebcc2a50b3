"""Hostile content (issue 13, issue 25): a folder of every odd kind of file is ingested by a fresh CLI process that
must finish with every good file embedded and every bad one reported; random bytes as image files and random CSV rows
and Label Studio documents never raise past the importers; a label belongs to the content it was given for; files
handed in must be regular files. Faults of the machine and bad command lines: tests/test_hostile_faults.py."""

import csv
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image, features

from engine.errors import LabelloopError
from engine.files.images import MAX_PIXELS, ImageReadError, decode_image, read_image
from engine.dataset.ingest import ingest
from engine.labels.label_import import import_labels
from engine.learning.models import load_model
from engine.project.folder import DB_FILE, create_project
from tests.hostile import CLASSES, REPO, in_thread, labels_by_path
from tests.imagegen import random_image, write_bad_files, write_images


def _cli(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    """The CLI as a fresh process, as a person runs it."""
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "app.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=environment, cwd=REPO)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose pixel data is cut off."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)))


def _save_with_pillow(path: Path, image: Image.Image, **options) -> None:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    path.write_bytes(buffer.getvalue())


def build_hostile_folder(folder: Path, outside: Path) -> tuple[set[str], set[str]]:
    """Good and bad files of every kind the red team tried; returns (relpaths that must be embedded, relpaths
    that must be reported as errors), names as the project stores them."""
    good = set(write_images(folder, 8))
    rng = np.random.default_rng(7)
    picture = Image.fromarray(random_image(rng)[..., ::-1])
    _save_with_pillow(folder / "cmyk.jpg", picture.convert("CMYK"), format="JPEG")
    cv2.imwrite(str(folder / "deep16.png"), (random_image(rng).astype(np.uint16) * 257))
    exif = Image.Exif()
    exif[0x0112] = 6
    _save_with_pillow(folder / "rotated.jpg", picture, format="JPEG", exif=exif.tobytes())
    frames = [Image.fromarray(random_image(rng)[..., ::-1]) for _ in range(3)]
    _save_with_pillow(folder / "animated.gif", frames[0], format="GIF", save_all=True, append_images=frames[1:])
    odd_names = [" leading space.png", "back\\slash.png", "new\nline.png", "tab\tname.png", "escape\x1b[31m.png",
                 "ünïcødé 猫.png", "UPPER.JPG", "folder.jpg/inside.png", "=HYPERLINK(0).png", "@cmd.png"]
    for index, name in enumerate(odd_names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), random_image(np.random.default_rng(100 + index)))
    good |= {"cmyk.jpg", "deep16.png", "rotated.jpg", "animated.gif", *odd_names}
    if features.check("avif"):
        _save_with_pillow(folder / "photo.avif", picture, format="AVIF")
        good.add("photo.avif")
    os.symlink(folder / "cmyk.jpg", folder / "link_in.jpg")  # a link to a file inside the folder is read
    good.add("link_in.jpg")
    nested = folder / "other_project"  # another labelloop project: its thumbnails are neither good nor bad files
    (nested / "thumbs" / "ab").mkdir(parents=True)
    (nested / DB_FILE).write_bytes(b"")
    (nested / "thumbs" / "ab" / "ab12.jpg").write_bytes((folder / "cmyk.jpg").read_bytes())

    bad = set(write_bad_files(folder))  # empty, truncated, text, bomb, dangling symlink
    (folder / b"not-utf8-\xff.jpg".decode("utf-8", "surrogateescape")).write_bytes((folder / "cmyk.jpg").read_bytes())
    os.mkfifo(folder / "fifo.jpg")
    outside.write_bytes((folder / "cmyk.jpg").read_bytes())
    os.symlink(outside, folder / "link_out.jpg")
    os.symlink(folder / "loop_b.jpg", folder / "loop_a.jpg")
    os.symlink(folder / "loop_a.jpg", folder / "loop_b.jpg")
    os.symlink(folder, folder / "dir_loop")  # a folder link is never followed: no error, no endless walk
    (folder / "fake.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    (folder / "noise.webp").write_bytes(np.random.default_rng(3).bytes(5000))
    (folder / "huge_header.png").write_bytes(_png_header_only(16000, 16000))
    bad |= {"not-utf8-\\xff.jpg", "fifo.jpg", "link_out.jpg", "loop_a.jpg", "loop_b.jpg", "fake.heic", "noise.webp",
            "huge_header.png"}
    return good, bad


@pytest.mark.slow
def test_a_hostile_folder_is_ingested_whole_and_every_bad_file_is_reported(tmp_path, tiny_model, cli, cli_json):
    images, root = tmp_path / "images", tmp_path / "project"
    good, bad = build_hostile_folder(images, tmp_path / "outside.jpg")
    assert cli("init", root, "--images", images, "--classes", CLASSES, "--model", tiny_model)[0] == 0
    # a fresh process with decode workers, where a FIFO used to hang: a hang fails here by the timeout
    done = _cli("ingest", root, "--workers", "1", "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["found"] == len(good) + len(bad) and report["errors"] == len(bad)
    assert report["projects_skipped"] == 1

    status = cli_json("status", root)
    errors = {error["path"]: error["reason"] for error in status["errors"]}
    assert set(errors) == bad and all(errors.values())
    assert "not valid UTF-8" in errors["not-utf8-\\xff.jpg"] and "FIFO" in errors["fifo.jpg"]
    assert "HEIC" in errors["fake.heic"] and "outside the images folder" in errors["link_out.jpg"]
    assert status["images"]["ok"] == len(good) and status["model"]["embedded"] == len(good)

    code, printed, _ = cli("status", root)
    assert code == 0 and "\x1b" not in printed  # escape codes in names are shown escaped
    again = cli_json("ingest", root, "--workers", "0")  # idempotent, and the in-process reader is safe too
    assert again["embedded"] == 0 and again["errors"] == 0


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    outcome = {}

    def read() -> None:
        try:
            read_image(tmp_path / "pipe.png")
        except ImageReadError as error:
            outcome["error"] = str(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive() and "not a regular file (a FIFO)" in outcome["error"]


def test_a_decode_that_takes_too_long_is_an_error_not_a_hang(tmp_path, tiny_model, monkeypatch):
    import engine.dataset.ingest as ingest_module

    write_images(tmp_path / "images", 4)
    project = create_project(tmp_path / "project", images=tmp_path / "images", classes=CLASSES, model=str(tiny_model))
    real_read = ingest_module.read_image

    def slow_for_one(path):
        if Path(path).name == "img_00001.png":
            time.sleep(30)
        return real_read(path)

    monkeypatch.setattr(ingest_module, "read_image", slow_for_one)
    monkeypatch.setattr(ingest_module, "DECODE_SECONDS", 0.5)
    started = time.monotonic()
    with project:
        report = ingest(project, load_model(project.model_spec), workers=0)
        assert time.monotonic() - started < 25
        assert report.errors == 1 and report.embedded == 3
        assert "longer than" in project.store.image_errors()[0]["reason"]


def test_the_pixel_limit_message_is_true():
    with pytest.raises(ImageReadError, match="truncated or corrupt"):  # 256 Mpx is under the limit: decoded
        decode_image(_png_header_only(16000, 16000))
    with pytest.raises(ImageReadError) as refused:
        decode_image(_png_header_only(16385, 16384))
    assert f"16385x16384 = {16385 * 16384:,} pixels, over the {MAX_PIXELS:,}-pixel limit" in str(refused.value)
    with pytest.raises(ImageReadError) as bomb:  # past Pillow's own error too
        decode_image(_png_header_only(50_000, 50_000))
    assert f"{50_000 * 50_000:,} pixels, over the {MAX_PIXELS:,}-pixel limit" in str(bomb.value)


# ---- random bytes and random rows ---------------------------------------------------------------------------

_MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 ", b"BM", b"II*\0",
          b"\0\0\0\x1cftypavif"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(magic=st.sampled_from(_MAGIC), tail=st.binary(max_size=600))
def test_random_bytes_as_an_image_only_ever_raise_image_read_error(tmp_path, magic, tail):
    path = tmp_path / "random.png"
    path.write_bytes(magic + tail)
    try:
        image = read_image(path)
    except ImageReadError as error:
        assert str(error)
    else:
        assert image.pixels.ndim == 3 and image.pixels.shape[2] == 3 and image.pixels.dtype == np.uint8


@pytest.fixture(scope="module")
def labelled_project(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("csv")
    write_images(tmp / "images", 6)
    project = create_project(tmp / "project", images=tmp / "images", classes=CLASSES, model=str(tiny_model))
    ingest(project, load_model(project.model_spec), workers=0)
    yield project
    project.close()


_CELL = st.one_of(st.sampled_from(["img_00001.png", "sub/img_00000.jpg", " img_00001.png", "circle", "Square", ""]),
                  st.text(alphabet=st.sampled_from(list("ab ,\"\n\r\\/.\t\x00é")), max_size=12))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_CELL, min_size=0, max_size=4), max_size=6), header=st.booleans())
def test_random_csv_rows_are_imported_or_refused_in_one_line(labelled_project, tmp_path, rows, header):
    path = tmp_path / "random.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(["path", "label"])
        writer.writerows(rows)
    store = labelled_project.store
    before = store.label_events()
    try:
        result = import_labels(labelled_project, path, fmt="csv", actor="hypothesis")
    except LabelloopError as error:
        assert "\n" not in str(error)
        assert store.label_events() == before  # a refused file writes nothing
    else:
        assert result.rows >= 1 and len(store.label_events()) == len(before) + result.changed


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8)
                     | st.sampled_from(["img_00001.png", "/data/local-files/?d=img_00001.png", "circle", "choices"]),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["data", "image", "annotations", "result", "value", "choices",
                                          "was_cancelled", "id", "updated_at"]), inner, max_size=4),
                     max_leaves=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_JSON)
def test_random_label_studio_json_is_imported_or_refused_in_one_line(labelled_project, tmp_path, document):
    path = tmp_path / "random.json"
    path.write_text(json.dumps(document))
    before = labelled_project.store.label_events()
    try:
        import_labels(labelled_project, path, fmt="label-studio", actor="hypothesis")
    except LabelloopError as error:
        assert "\n" not in str(error) and labelled_project.store.label_events() == before


# ---- the defects, one test each ------------------------------------------------------------------------------

def test_a_row_missing_its_label_field_is_an_error_not_none_of_these(project, tmp_path, cli):
    first = tmp_path / "first.csv"
    first.write_text("path,label\nimg_00001.png,circle\n")
    assert cli("label", project, "--csv", first)[0] == 0
    short = tmp_path / "short.csv"
    short.write_text("path,label\nimg_00001.png\n")
    code, _, err = cli("label", project, "--csv", short)
    assert code == 1 and "line 2" in err and "fewer fields" in err
    other = tmp_path / "other.csv"
    other.write_text('path,label\nimg_00001.png,""\n')  # an explicit empty label: "none of these", by someone else
    code, out, _ = cli("label", project, "--csv", other)
    assert code == 0 and "1 of them replacing a label someone else set" in out


def test_the_exported_csv_imports_back_name_for_name(tmp_path, tiny_model, cli):
    images = tmp_path / "images"
    names = ["back\\slash.png", " leading.png", "trailing .png", "a  b.png", "./dot.png".lstrip("./")]
    for index, name in enumerate(names):
        images.mkdir(exist_ok=True)
        cv2.imwrite(str(images / name), random_image(np.random.default_rng(index)))
    root = tmp_path / "project"
    assert cli("init", root, "--images", images, "--classes", CLASSES, "--model", tiny_model)[0] == 0
    assert cli("ingest", root, "--workers", "0")[0] == 0
    out = tmp_path / "all.csv"
    assert cli("export", root, "--format", "csv", "--out", out)[0] == 0
    code, stdout, err = cli("label", root, "--csv", out)
    assert code == 0, err
    assert f"imported {len(names)} labels" in stdout


def test_import_reads_the_images_root_once_not_per_row(labelled_project, tmp_path, monkeypatch):
    from storage import Store

    path = tmp_path / "many.csv"
    path.write_text("path,label\n" + "img_00001.png,circle\n" * 500)
    calls = []
    real = Store.get_meta
    monkeypatch.setattr(Store, "get_meta", lambda self, key, default=None: calls.append(key) or real(self, key,
                                                                                                    default))
    import_labels(labelled_project, path, fmt="csv", actor="many")
    assert len(calls) < 10


# ---- a label belongs to the content it was given for; nested projects (issue 25) ------------------------------

def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _exported_hashes(out: Path) -> dict[str, tuple[str, str]]:
    """path -> (sha256 the manifest gives, sha256 of the file the export holds) of a folder export."""
    with open(out / "manifest.csv", newline="") as handle:
        return {row["path"]: (row["sha256"], _sha256(out / row["file"])) for row in csv.DictReader(handle)}


def _replace_picture(path: Path, seed: int, *, keep_size_and_time: bool = False) -> None:
    """Another picture over `path`; with `keep_size_and_time`, as many bytes (a BMP of the same shape) and the old
    modification time restored, so only the content tells it apart."""
    before = path.stat()
    shape = cv2.imread(str(path)).shape[:2]
    cv2.imwrite(str(path), random_image(np.random.default_rng(seed), size=shape))
    if keep_size_and_time:
        assert path.stat().st_size == before.st_size
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_label_waits_for_a_person_after_its_picture_is_replaced(project, tmp_path, cli, cli_json):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nimg_00001.png,circle\nimg_00005.jpg,square\n")
    assert cli("label", project, "--csv", labels)[0] == 0
    images = Path(cli_json("status", project)["images_root"])
    _replace_picture(images / "img_00001.png", seed=99)
    code, out, _ = cli("ingest", project, "--workers", "0")
    assert code == 0 and "1 changed" in out and "1 images changed since labelled" in out

    status = cli_json("status", project)
    assert status["changed_since_labelled"] == 1 and status["labels"]["human"] == 2
    assert "1 images changed since labelled: relabel or confirm them" in cli("status", project)[1]
    first = cli_json("queue", project, "--k", "3")[0]
    assert (first["path"], first["reason"]) == ("img_00001.png", "changed since labelled")

    code, out, err = cli("export", project, "--format", "imagefolder", "--out", tmp_path / "folder")
    assert code == 0, err
    assert "1 images changed since labelled were left out: relabel or confirm them" in out
    exported = _exported_hashes(tmp_path / "folder")
    assert "img_00001.png" not in exported and not any((tmp_path / "folder" / "circle").iterdir())  # no new picture
    assert exported["img_00005.jpg"][0] == exported["img_00005.jpg"][1]
    code, out, _ = cli("export", project, "--format", "csv", "--out", tmp_path / "all.csv")
    assert code == 0 and "1 images changed since labelled were left out" in out
    assert "img_00001.png" not in (tmp_path / "all.csv").read_text()

    confirm = tmp_path / "confirm.csv"
    confirm.write_text("path,label\nimg_00001.png,circle\n")  # the same label, given again for the new picture
    code, out, _ = cli("label", project, "--csv", confirm)
    assert code == 0 and "1 changed" in out and cli_json("status", project)["changed_since_labelled"] == 0
    assert cli("export", project, "--format", "imagefolder", "--out", tmp_path / "again")[0] == 0
    hashes = _exported_hashes(tmp_path / "again")["img_00001.png"]
    assert hashes[0] == hashes[1] == _sha256(images / "img_00001.png")


def test_a_replacement_with_the_same_size_and_time_is_found_by_verify_and_export(project, tmp_path, cli, cli_json):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nsub/img_00003.bmp,circle\nimg_00008.bmp,square\n")
    assert cli("label", project, "--csv", labels)[0] == 0
    images = Path(cli_json("status", project)["images_root"])
    _replace_picture(images / "sub" / "img_00003.bmp", seed=98, keep_size_and_time=True)
    assert "0 changed" in cli("ingest", project, "--workers", "0")[1]  # size and time alone cannot tell

    code, _, err = cli("export", project, "--format", "imagefolder", "--out", tmp_path / "folder")
    assert code == 1 and "'sub/img_00003.bmp' is not the content that was ingested" in err and "--verify" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "folder").exists()
    assert not list(tmp_path.glob(".folder.*"))

    code, out, _ = cli("ingest", project, "--workers", "0", "--verify")
    assert code == 0 and "1 changed" in out
    assert cli_json("status", project)["changed_since_labelled"] == 1
    code, out, err = cli("export", project, "--format", "imagefolder", "--out", tmp_path / "folder")
    assert code == 0 and "1 images changed since labelled were left out" in out, err
    exported = _exported_hashes(tmp_path / "folder")
    assert "sub/img_00003.bmp" not in exported and exported
    assert all(manifest == copied for manifest, copied in exported.values())


def test_labels_of_a_database_from_before_content_hashes_belong_to_the_content_now(tmp_path, images, tiny_model,
                                                                                    cli, cli_json):
    root = tmp_path / "project"
    assert cli("init", root, "--images", images, "--classes", CLASSES, "--model", tiny_model)[0] == 0
    assert cli("ingest", root, "--workers", "0")[0] == 0
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nimg_00001.png,circle\n")
    assert cli("label", root, "--csv", labels)[0] == 0
    with duckdb.connect(str(root / DB_FILE)) as con:  # as schema version 9 left it: labels without a hash
        con.execute("ALTER TABLE labels DROP COLUMN sha256")
        con.execute("ALTER TABLE label_events DROP COLUMN from_sha256")
        for table, column in (("labels", "tags"), ("labels", "looked_at"), ("label_events", "from_tags"),
                              ("label_events", "from_looked_at"), ("label_events", "to_tags"),
                              ("label_events", "to_looked_at")):  # and none of the later migrations' columns
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        for table in ("people", "person_labels", "reviews", "overlap_images"):  # nor their tables
            con.execute(f"DROP TABLE {table}")
        con.execute("DROP SEQUENCE review_ids")
        con.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    status = cli_json("status", root)
    assert status["schema_version"] >= 10 and status["changed_since_labelled"] == 0
    _replace_picture(images / "img_00001.png", seed=97)
    assert cli("ingest", root, "--workers", "0")[0] == 0
    assert cli_json("status", root)["changed_since_labelled"] == 1


def test_the_page_shows_a_changed_image_first_and_undo_gives_a_label_back_its_content(project, tmp_path, cli):
    from engine.views.gallery import GalleryView
    from engine.labels.labeling_session import LabelingSession
    from engine.project.folder import open_project

    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nimg_00001.png,circle\n")
    assert cli("label", project, "--csv", labels)[0] == 0
    with open_project(project) as opened:
        store = opened.store
        image_id = store.image_ids(["img_00001.png"])["img_00001.png"][0]
        view = GalleryView(opened, lambda: None)
        assert view.review_queue().rank(image_id) is None  # read by the page before the picture changes
        _replace_picture(opened.images_root / "img_00001.png", seed=96)
        ingest(opened, load_model(opened.model_spec), workers=0)  # the page's Ingest tab, in the server process
        assert view.review_queue().rank(image_id) == (0, "changed since labelled")
        assert view.detail(image_id).changed is True
        session = LabelingSession(store, view)
        assert session.label([image_id], "circle").changed == 1  # its own class again: confirmed for the new picture
        assert not len(store.changed_since_labelled()) and view.detail(image_id).changed is False
        session.undo()
        assert store.changed_since_labelled().tolist() == [image_id] and view.detail(image_id).changed is True
        page = store.gallery_page(round_id=store.shown_round(), status="changed")
        assert [row["id"] for row in page.rows] == [image_id]


# ---- issue 25: hostile files handed in --------------------------------------------------------------------------

def test_files_given_to_read_must_be_regular_files(project, tmp_path):
    from engine.learning.class_prompts import read_prompts_file
    from engine.project.folder import open_project

    os.mkfifo(tmp_path / "labels.csv")
    os.mkfifo(tmp_path / "prompts.txt")
    with open_project(project) as opened:
        for fmt in ("csv", "label-studio"):
            refused = in_thread(lambda: import_labels(opened, tmp_path / "labels.csv", fmt=fmt, actor="t"))
            assert isinstance(refused, LabelloopError) and "is a FIFO, not a regular file" in str(refused)
    refused = in_thread(lambda: read_prompts_file(tmp_path / "prompts.txt", ["circle", "square"]))
    assert isinstance(refused, LabelloopError) and "prompts file" in str(refused) and "FIFO" in str(refused)


def test_label_csv_dev_zero_is_refused_at_once_in_bounded_memory(project):
    import resource

    def two_gib() -> None:  # were /dev/zero read, this process would fail here rather than fill the machine
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    done = subprocess.run([sys.executable, "-m", "app.cli", "label", str(project), "--csv", "/dev/zero"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
                          preexec_fn=two_gib)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-600:]
    assert "/dev/zero is a character device, not a regular file" in done.stderr


def test_a_line_longer_than_the_cap_is_refused_naming_its_line(labelled_project, tmp_path):
    from engine.files.input_files import MAX_LINE_CHARS

    path = tmp_path / "long.csv"
    path.write_text("path,label\nimg_00001.png,circle\n" + "a" * (MAX_LINE_CHARS + 10) + "\n")
    with pytest.raises(LabelloopError, match=r"long.csv line 3 is longer than 1,048,576 characters"):
        import_labels(labelled_project, path, fmt="csv", actor="t")


def test_a_label_studio_file_nested_200000_deep_is_one_line(labelled_project, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(LabelloopError, match="nested thousands of levels deep"):
        import_labels(labelled_project, path, fmt="label-studio", actor="t")


@pytest.mark.parametrize("label", [" ", "\u00a0", " \u00a0 "])
def test_a_label_of_only_spaces_is_refused_not_none_of_these(labelled_project, tmp_path, label):
    path = tmp_path / "spaces.csv"
    path.write_text(f"path,label\nimg_00001.png,circle\nimg_00002.webp,{label}\n", encoding="utf-8")
    before = labelled_project.store.label_events()
    with pytest.raises(LabelloopError, match=r"a label of only spaces .*\(line 3\)"):
        import_labels(labelled_project, path, fmt="csv", actor="t")
    assert labelled_project.store.label_events() == before


def test_csv_exports_quote_formula_cells_and_import_them_back(tmp_path, tiny_model, cli):
    images = tmp_path / "images"
    images.mkdir()
    names = ["=HYPERLINK(1).png", "+plus.png", "-minus.png", "@at.png", "'quote.png", "plain.png"]
    for index, name in enumerate(names):
        cv2.imwrite(str(images / name), random_image(np.random.default_rng(index)))
    root = tmp_path / "project"
    assert cli("init", root, "--images", images, "--classes", "=cmd,@home", "--model", tiny_model)[0] == 0
    assert cli("ingest", root, "--workers", "0")[0] == 0
    out = tmp_path / "all.csv"
    assert cli("export", root, "--format", "csv", "--out", out)[0] == 0
    rows = list(csv.reader(out.open(newline="", encoding="utf-8")))[1:]
    paths = {row[0] for row in rows}
    assert paths == {"'=HYPERLINK(1).png", "'+plus.png", "'-minus.png", "'@at.png", "''quote.png", "plain.png"}
    assert {row[1] for row in rows} <= {"'=cmd", "'@home"}
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    code, stdout, err = cli("label", root, "--csv", out)
    assert code == 0 and f"imported {len(names)} labels" in stdout, err
    exported = {path: label for path, label in labels_by_path(root).items()}
    assert set(exported) == set(names) and set(exported.values()) <= {"=cmd", "@home"}
