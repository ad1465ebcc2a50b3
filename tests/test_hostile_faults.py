"""Faults (issue 13, issue 25): each bad command line is one line, never a traceback; races, killed commands, full
disks, read-only projects and damaged caches lose nothing stored and say what happened in one line. Hostile content:
tests/test_hostile_content.py."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest

from engine.errors import LabelloopError
from engine.project.folder import DB_FILE, create_project
from tests.hostile import CLASSES, REPO, in_thread, labels_by_path
from tests.imagegen import random_image, write_images


# ---- the defects, one test each ---------------------------------------------------------------------------------

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


# ---- issue 25: hostile targets and faults of the machine --------------------------------------------------------

def _disk_full(path: str = "/x/labelloop.duckdb.wal") -> duckdb.Error:
    """What DuckDB raises when the disk fills during a commit (as measured on a full tmpfs)."""
    return duckdb.TransactionException(f'TransactionContext Error: Failed to commit: Could not write file "{path}": '
                                       "No space left on device")


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
    code, _, err = in_thread(lambda: cli("export", project, "--format", "csv", "--out", tmp_path / "labels.csv"))
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
    before = labels_by_path(project)
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
    assert labels_by_path(project) == before and not list(tmp_path.glob(".out.csv.*"))


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
