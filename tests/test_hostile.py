"""Hostile folders and hostile input (issue 13): a folder of every odd kind of file is ingested by a fresh CLI
process that must finish with every good file embedded and every bad one reported; random bytes as image files
and random CSV rows never raise past the importers; each bad command line is one line, never a traceback."""

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
from tests.imagegen import random_image, write_bad_files, write_images

REPO = Path(__file__).resolve().parent.parent
CLASSES = "circle,square,other"


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


def test_init_refuses_a_project_inside_its_images_folder(tmp_path, images, cli):
    code, _, err = cli("init", images / "project", "--images", images, "--classes", CLASSES, "--model", "demo")
    assert code == 1 and "inside the images folder" in err and not (images / "project").exists()


def test_two_exports_racing_to_one_path_never_both_succeed(project, tmp_path, monkeypatch):
    import engine.dataset.export as export_module
    from engine.project.folder import open_project

    out = tmp_path / "labels.csv"
    real_write = export_module.write_file

    def write_while_another_export_lands(temporary, fmt, rows, ls_root_url, people=None):
        real_write(temporary, fmt, rows, ls_root_url, people)
        out.write_text("the other export\n")

    monkeypatch.setattr(export_module, "write_file", write_while_another_export_lands)
    with open_project(project) as opened, pytest.raises(LabelloopError, match="created while exporting"):
        export_module.export(opened, fmt="csv", out=out)
    assert out.read_text() == "the other export\n" and not list(tmp_path.glob(".labels.csv.*"))


def test_exports_say_how_many_labelled_images_are_missing(project, tmp_path, cli):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nimg_00001.png,circle\nimg_00002.webp,square\n")
    assert cli("label", project, "--csv", labels)[0] == 0
    images = Path(json.loads(cli("status", project, "--json")[1])["images_root"])
    (images / "img_00001.png").unlink()
    assert cli("ingest", project, "--workers", "0")[0] == 0
    code, out, _ = cli("export", project, "--format", "csv", "--out", tmp_path / "out.csv")
    assert code == 0 and "1 human-labelled images missing or unreadable" in out


def test_a_killed_rounds_leftovers_are_removed_by_the_next_round(project, cli):
    models = project / "models"
    (models / "round_0042").mkdir(parents=True)
    (models / "round_0042" / "open_clip_config.json").write_text("{}")
    (models / "round_0042.npz").write_bytes(b"half")
    code, out, err = cli("round", project)
    assert code == 0, err
    assert not (models / "round_0042").exists() and not (models / "round_0042.npz").exists()
    assert (models / "round_0001.npz").is_file()


def test_the_cli_names_rounds_by_their_number_in_the_project(project, cli):
    with duckdb.connect(str(project / DB_FILE)) as con:  # two rounds that did not finish, as a crash leaves them
        con.execute("INSERT INTO rounds (id, started_at, status, config) VALUES (1, now(), 'failed', '{}'), "
                    "(2, now(), 'cancelled', '{}')")
    code, out, err = cli("round", project)
    assert code == 0 and out.startswith("round 3:"), out + err


def test_a_job_kind_starting_with_a_vowel_reads_right():
    from engine.jobs.runner import JobRunner
    from storage import Store

    runner = JobRunner(Store.memory())
    release = threading.Event()
    runner.submit("ingest", {}, lambda context: release.wait(10) and {})
    with pytest.raises(LabelloopError, match="^an ingest job is already"):
        runner.submit("ingest", {}, lambda context: {})
    release.set()
    runner.close()


def test_closing_the_runner_cancels_the_running_job_within_seconds():
    from engine.jobs.runner import JobRunner
    from storage import Store

    store = Store.memory()
    runner = JobRunner(store)

    def endless(context):
        while True:
            context.progress(0.5, "working")
            time.sleep(0.05)

    runner.submit("round", {}, endless)
    queued = runner.submit("ingest", {}, lambda context: {})
    time.sleep(0.3)
    started = time.monotonic()
    assert runner.close(timeout=10) and time.monotonic() - started < 5
    statuses = {job["id"]: job["status"] for job in store.jobs()}
    assert statuses[queued] == "cancelled" and set(statuses.values()) == {"cancelled"}


# ---- bad command lines: one line, never a traceback -------------------------------------------------------

def _bad_databases(project: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies of the project's database: empty, cut short, random bytes, from a newer labelloop, and intact (for a
    second command that must not wait on the first one's lock)."""
    copies = {}
    for kind in ("zero", "truncated", "garbage", "newer", "copy"):
        copy = tmp_path / f"project_{kind}"
        copy.mkdir()
        data = (project / DB_FILE).read_bytes()
        contents = {"zero": b"", "truncated": data[:5000], "garbage": np.random.default_rng(1).bytes(70_000),
                    "newer": data, "copy": data}[kind]
        (copy / DB_FILE).write_bytes(contents)
        copies[kind] = copy
    with duckdb.connect(str(copies["newer"] / DB_FILE)) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    return copies


@pytest.mark.slow
def test_each_bad_input_is_one_line_in_a_fresh_process(project, images, tmp_path):
    databases = _bad_databases(project, tmp_path)
    short_csv = tmp_path / "short.csv"
    short_csv.write_text("path,label\nimg_00001.png\n")
    def own_copy(name: str) -> Path:  # the commands run four at a time: each needs a database of its own
        folder = tmp_path / name
        folder.mkdir()
        (folder / DB_FILE).write_bytes((project / DB_FILE).read_bytes())
        return folder

    os.mkfifo(tmp_path / "fifo.csv")  # opened for reading, it would wait for a writer forever
    os.mkfifo(tmp_path / "fifo_target")
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (tmp_path / "spaces.csv").write_text("path,label\nimg_00001.png,\u00a0\n", encoding="utf-8")
    cases = {
        "zero-byte database": (["status", databases["zero"]], "not a readable labelloop database"),
        "truncated database": (["status", databases["truncated"]], "not a readable labelloop database"),
        "corrupt database": (["status", databases["garbage"]], "not a readable labelloop database"),
        "newer schema": (["status", databases["newer"]], "made by a newer labelloop"),
        "label --csv DIR": (["label", project, "--csv", tmp_path], "is a folder"),
        "label row without a label": (["label", databases["copy"], "--csv", short_csv], "line 2"),
        "label --csv FIFO": (["label", own_copy("p1"), "--csv", tmp_path / "fifo.csv"],
                             "is a FIFO, not a regular file"),
        "label a 200,000-deep JSON": (["label", own_copy("p2"), "--label-studio", tmp_path / "deep.json"], "nested"),
        "label of a no-break space": (["label", own_copy("p3"), "--csv", tmp_path / "spaces.csv"], "only spaces"),
        "export --force onto a FIFO": (["export", own_copy("p4"), "--format", "csv", "--out",
                                        tmp_path / "fifo_target", "--force"], "is a FIFO"),
        "export --seed -1": (["export", own_copy("p5"), "--format", "imagefolder", "--out", tmp_path / "split",
                              "--split", "0.5,0.5", "--seed", "-1"], "--seed must be 0 or more"),
        "ingest --batch-size 0": (["ingest", project, "--batch-size", "0"], "at least 1"),
        "ingest --batch-size -1": (["ingest", project, "--batch-size", "-1"], "at least 1"),
        "ingest --workers -1": (["ingest", project, "--workers", "-1"], "at least 0"),
        "serve --port 99999": (["serve", project, "--port", "99999"], "between 1 and 65535"),
        "serve --port -1": (["serve", project, "--port", "-1"], "between 1 and 65535"),
        "serve --host unresolvable": (["serve", project, "--host", "no-such-host.invalid"], "cannot be resolved"),
        "init inside the images": (["init", images / "p", "--images", images, "--classes", "a,b", "--model", "demo"],
                                   "inside the images folder"),
    }
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    failures, names = [], list(cases)
    for start in range(0, len(names), 4):  # four processes at a time: each imports torch
        running = {name: subprocess.Popen([sys.executable, "-m", "app.cli", *map(str, cases[name][0])], cwd=REPO,
                                          env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for name in names[start:start + 4]}
        for name, process in running.items():
            _, err = process.communicate(timeout=240)
            lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loading model")]
            fragment = cases[name][1]
            if process.returncode not in (1, 2) or len(lines) != 1 or "Traceback" in err or fragment not in lines[0]:
                failures.append((name, process.returncode, err[-400:]))
    assert not failures, failures


def test_stopping_the_server_cancels_an_ingest_and_leaves_no_decode_worker(tmp_path, tiny_model, capsys):
    import multiprocessing

    from app.server import STOP_SECONDS, stop_jobs
    from engine.session.workspace import Workspace

    write_images(tmp_path / "images", 300, size=(48, 64))
    project = create_project(tmp_path / "project", images=tmp_path / "images", classes=CLASSES, model=str(tiny_model))
    workspace = Workspace(project, ingest_workers=1)
    job = workspace.start_ingest()
    deadline = time.monotonic() + 120
    while project.store.jobs()[0]["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    stop_jobs(workspace)
    assert time.monotonic() - started < STOP_SECONDS + 2
    assert f"cancelling ingest job {job}" in capsys.readouterr().err
    deadline = time.monotonic() + 15
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()
    assert project.store.jobs()[0]["status"] in ("cancelled", "done")
    project.close()


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


# ---- issue 25: hostile files, targets and faults of the machine --------------------------------------------------

def _in_thread(work, seconds: float = 20):
    """Run `work()` in a thread: (its result or the exception it raised), or fail when it is still waiting after
    `seconds` (a FIFO opened for reading waits for a writer forever)."""
    outcome = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the test, which says what it expected
            outcome["result"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "still waiting: the file was opened as if it were a regular file"
    return outcome["result"]


def _disk_full(path: str = "/x/labelloop.duckdb.wal") -> duckdb.Error:
    """What DuckDB raises when the disk fills during a commit (as measured on a full tmpfs)."""
    return duckdb.TransactionException(f'TransactionContext Error: Failed to commit: Could not write file "{path}": '
                                       "No space left on device")


def test_files_given_to_read_must_be_regular_files(project, tmp_path):
    from engine.learning.class_prompts import read_prompts_file
    from engine.project.folder import open_project

    os.mkfifo(tmp_path / "labels.csv")
    os.mkfifo(tmp_path / "prompts.txt")
    with open_project(project) as opened:
        for fmt in ("csv", "label-studio"):
            refused = _in_thread(lambda: import_labels(opened, tmp_path / "labels.csv", fmt=fmt, actor="t"))
            assert isinstance(refused, LabelloopError) and "is a FIFO, not a regular file" in str(refused)
    refused = _in_thread(lambda: read_prompts_file(tmp_path / "prompts.txt", ["circle", "square"]))
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
    exported = {path: label for path, label in _labels_by_path(root).items()}
    assert set(exported) == set(names) and set(exported.values()) <= {"=cmd", "@home"}


def _labels_by_path(root: Path) -> dict[str, str]:
    from engine.project.folder import open_project

    with open_project(root) as project:
        return {row["path"]: row["label"] for row in project.store.current_labels().to_pylist()
                if row["source"] == "human"}


@pytest.mark.parametrize("fmt", ["csv", "imagefolder"])
def test_export_force_never_replaces_a_device_fifo_or_a_link_to_one(project, tmp_path, cli, fmt):
    targets = {"fifo": tmp_path / "fifo", "link": tmp_path / "link"}
    os.mkfifo(targets["fifo"])
    os.symlink(targets["fifo"], targets["link"])
    if os.geteuid() == 0:  # a device node like /dev/null, in the test's own folder
        import stat

        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets["device"] = tmp_path / "null"
    for name, target in targets.items():
        code, _, err = cli("export", project, "--format", fmt, "--out", target, "--force")
        assert code == 1 and err.count("\n") == 1 and "is a" in err, (name, err)
        assert "FIFO" in err or "character device" in err, (name, err)
        assert target.is_fifo() or target.is_char_device(), name
    os.mkfifo(tmp_path / "labels.csv.quality.json")  # the summary written beside a one-file export
    code, _, err = _in_thread(lambda: cli("export", project, "--format", "csv", "--out", tmp_path / "labels.csv"))
    assert code == 1 and "labels.csv.quality.json is a FIFO" in err and not (tmp_path / "labels.csv").exists()


def test_export_refuses_a_negative_seed(project, tmp_path, cli):
    code, _, err = cli("export", project, "--format", "imagefolder", "--out", tmp_path / "out", "--split", "0.5,0.5",
                       "--seed", "-1")
    assert code == 1 and "--seed must be 0 or more, got -1" in err and not (tmp_path / "out").exists()


def test_a_killed_folder_exports_partial_folder_is_removed_by_the_next_export(project, tmp_path, cli):
    ended = subprocess.Popen(["true"])
    ended.wait()  # a process that is gone, as a killed export is
    left = tmp_path / f".out.{ended.pid}-0123abcd.partial"
    (left / "circle").mkdir(parents=True)
    working = tmp_path / f".out.{os.getpid()}-0123abcd.partial"  # an export still running, here: left alone
    working.mkdir()
    code, _, err = cli("export", project, "--format", "imagefolder", "--out", tmp_path / "out")
    assert code == 0, err
    assert not left.exists() and working.exists() and (tmp_path / "out" / "manifest.csv").is_file()


def test_an_image_path_too_long_for_the_export_is_named(tmp_path, tiny_model, cli):
    images = tmp_path / "images"
    relpath = "/".join(["d" * 200] * 17) + "/" + "n" * 200 + ".png"  # 3,617 characters: one folder per 200
    (images / relpath).parent.mkdir(parents=True)
    cv2.imwrite(str(images / relpath), random_image(np.random.default_rng(0)))
    root = tmp_path / "project"
    assert cli("init", root, "--images", images, "--classes", CLASSES, "--model", tiny_model)[0] == 0
    assert cli("ingest", root, "--workers", "0")[0] == 0
    code, _, err = cli("export", root, "--format", "imagefolder", "--out", tmp_path / "out")
    assert code == 1 and err.count("\n") == 1 and f"cannot export image {relpath!r}: File name too long" in err
    assert not list(tmp_path.glob(".out.*"))


@pytest.mark.parametrize("command", ["round", "label", "ingest", "export"])
def test_a_full_disk_is_one_line_naming_it_and_loses_nothing(project, tmp_path, cli, monkeypatch, command):
    import engine.dataset.export as export_module
    import engine.dataset.ingest as ingest_module
    from storage import Store

    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nimg_00001.png,circle\n")
    assert cli("label", project, "--csv", labels)[0] == 0
    before = _labels_by_path(project)
    args = {"round": ["round", project], "label": ["label", project, "--csv", labels],
            "ingest": ["ingest", project, "--workers", "0"],
            "export": ["export", project, "--format", "csv", "--out", tmp_path / "out.csv"]}[command]
    if command == "label":
        labels.write_text("path,label\nimg_00001.png,square\n")
    if command == "ingest":
        write_images(Path(_status(project)["images_root"]), 2, seed=50, start=50)

    def full(*args, **kwargs):
        raise _disk_full(str(project / DB_FILE) + ".wal")

    def full_disk_file(data, path, *args):
        raise OSError(28, "No space left on device", str(path))

    if command == "round":
        monkeypatch.setattr(Store, "finish_round", full)
    elif command == "label":
        monkeypatch.setattr(Store, "set_labels", full)
    elif command == "ingest":
        monkeypatch.setattr(ingest_module, "save_thumbnail", full_disk_file)
    else:
        monkeypatch.setattr(export_module, "write_csv", lambda table, path: full_disk_file(None, path))
    code, _, err = cli(*args)
    lines = [line for line in err.splitlines() if not line.startswith("loading model")]
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("labelloop: error: disk full at ") and "free space and run again" in lines[0]
    assert (str(tmp_path / "out.csv") if command == "export" else str(project)) in lines[0]
    monkeypatch.undo()
    assert _labels_by_path(project) == before and not list(tmp_path.glob(".out.csv.*"))


def _status(project: Path) -> dict:
    from engine.project.folder import open_project, project_status

    with open_project(project) as opened:
        return project_status(opened)


def test_a_full_disk_on_the_page_is_one_line_and_its_job_record_too(monkeypatch):
    import app.feedback as feedback
    from engine.jobs.runner import run_job
    from storage import Store

    shown = []
    monkeypatch.setattr(feedback.gr, "Warning", lambda message, duration=None: shown.append(message))

    def label_on_a_full_disk():
        raise _disk_full("/p/labelloop.duckdb.wal")

    feedback.refusable(label_on_a_full_disk, 1)()
    assert shown == ["disk full at /p/labelloop.duckdb.wal: free space and run again; nothing stored was lost"]
    store = Store.memory()
    with pytest.raises(duckdb.Error):
        run_job(store, "round", {}, lambda context: label_on_a_full_disk())
    assert store.jobs()[0]["error"] == shown[0]


def test_a_job_the_server_runs_on_a_full_disk_logs_one_line(caplog):
    from engine.jobs.runner import JobRunner
    from storage import Store

    def full(context):
        raise _disk_full("/p/labelloop.duckdb.wal")

    runner = JobRunner(Store.memory())
    runner.submit("round", {}, full)
    runner.wait(30)
    runner.close()
    (record,) = [record for record in caplog.records if record.name == "engine.jobs.runner"]
    assert record.exc_info is None and "failed: disk full at /p/labelloop.duckdb.wal" in record.getMessage()


def test_a_command_the_server_answers_for_the_cli_tells_a_full_disk_in_one_line(project, monkeypatch):
    from types import SimpleNamespace

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    import engine.session.read_only_commands
    from app.local_api import ROUTE, TOKEN_HEADER, cli_route
    from engine.project.folder import open_project

    def export_on_a_full_disk(project, **options):
        raise _disk_full(str(project.root / DB_FILE) + ".wal")  # recording the export, say

    monkeypatch.setitem(engine.session.read_only_commands.READ_ONLY_COMMANDS, "export", export_on_a_full_disk)
    with open_project(project) as opened:
        app = Starlette(routes=[cli_route(SimpleNamespace(project=opened), "token", "127.0.0.1")])
        with TestClient(app, client=("127.0.0.1", 50000)) as client:
            answer = client.post(ROUTE, json={"command": "export", "options": {}}, headers={TOKEN_HEADER: "token"})
    assert answer.status_code == 400  # a refusal the CLI prints as its own, not the server failing
    assert answer.json()["error"].startswith(f"disk full at {project / DB_FILE}.wal: free space and run again")


def test_a_read_only_project_is_said_to_be_read_only(project, monkeypatch, cli):
    import storage.store as store_module

    def read_only(path, *args, **kwargs):
        raise duckdb.IOException(f'IO Error: Cannot open file "{path}": Read-only file system')

    monkeypatch.setattr(store_module.duckdb, "connect", read_only)
    code, _, err = cli("status", project)
    assert code == 1 and err.count("\n") == 1
    assert f"cannot write {project / DB_FILE}: it is read-only" in err and "corrupt" not in err


def test_a_project_on_a_read_only_mount_is_said_to_be_read_only(tmp_path, images, tiny_model, cli):
    folder = tmp_path / "mount"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not allowed here (needs root); the monkeypatched test above covers the rule")
    try:
        assert cli("init", folder / "p", "--images", images, "--classes", CLASSES, "--model", tiny_model)[0] == 0
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        code, _, err = cli("status", folder / "p")
        assert code == 1 and f"cannot write {folder / 'p' / DB_FILE}: it is read-only" in err, err
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_damaged_caches_are_rebuilt_and_the_next_rounds_work(project, cli):
    labels = project.parent / "labels.csv"
    labels.write_text("path,label\nimg_00001.png,circle\nimg_00002.webp,square\n")
    assert cli("label", project, "--csv", labels)[0] == 0
    assert cli("round", project)[0] == 0
    models = project / "models"
    (graph,) = models.glob("knn_*.npz")
    graph.write_bytes(b"PK\x03\x04 not a zip any more")
    checkpoint = models / "round_0001.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])  # cut short, as a full disk leaves it
    (models / "knn_0123.partial.npz").write_bytes(b"half")  # a graph a full disk stopped half-way
    code, out, err = cli("round", project)
    assert code == 0, err
    assert "note: round_0001.npz is damaged" in out and "starts from zero-shot" in out
    assert np.load(graph)["neighbours"].shape[0] == 12 and not (models / "knn_0123.partial.npz").exists()
    assert cli("round", project)[0] == 0


def test_a_neighbour_graph_the_disk_cannot_hold_leaves_no_partial_file(tmp_path, monkeypatch):
    import engine.learning.neighbours as neighbours

    def half_then_full(path, **arrays):
        Path(path).write_bytes(b"PK half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(neighbours.np, "savez", half_then_full)
    vectors = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with pytest.raises(OSError):
        neighbours.cached_knn_graph(tmp_path / "knn_m.npz", np.arange(20), vectors, 3)
    assert not list(tmp_path.iterdir())
