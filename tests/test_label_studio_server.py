"""The README's Label Studio recipe against a real Label Studio server (issue 17).

label-studio pins packages the project needs newer (numpy, opencv-python-headless, pyarrow), so it lives in a venv
of its own: LABELLOOP_LABEL_STUDIO names its `label-studio` executable (.ci/run makes one), else the one on PATH is
used. Without one the test is skipped, unless LABELLOOP_REQUIRE_LABEL_STUDIO=1 (CI sets it).

The server runs on 127.0.0.1 at a free port over SQLite in a temporary data folder, its user and API token made
from environment variables at start-up. Label Studio's database migrations take about a minute, so the first run
keeps a migrated database in pytest's cache and later runs start from a copy of it (seconds).
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_multilabel import _tag_labels, multi_project  # noqa: F401 (a fixture)

CLASSES = "circle,square,other"
START_SECONDS = 600  # migrations on a loaded two-core machine take minutes
LABEL_STUDIO = os.environ.get("LABELLOOP_LABEL_STUDIO") or shutil.which("label-studio")

if not LABEL_STUDIO and not os.environ.get("LABELLOOP_REQUIRE_LABEL_STUDIO"):
    pytest.skip("label-studio is not installed (set LABELLOOP_LABEL_STUDIO to its executable; .ci/run makes one)",
                allow_module_level=True)

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A Label Studio server process; `api` calls its REST API with the token."""

    def __init__(self, data_dir: Path, document_root: Path):
        self.port, self.token = _free_port(), secrets.token_hex(20)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.with_suffix(".log")
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
               "LABEL_STUDIO_USERNAME": f"test-{secrets.token_hex(4)}@labelloop.test",
               "LABEL_STUDIO_PASSWORD": secrets.token_hex(16), "LABEL_STUDIO_USER_TOKEN": self.token,
               "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
               "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
               # nothing leaves the machine: no version check, analytics or error reports
               "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "",
               "FRONTEND_SENTRY_DSN": ""}
        with open(self.log, "wb") as log:
            # a session of its own, so stop() ends the server and anything it started
            self.process = subprocess.Popen(
                [LABEL_STUDIO, "start", "--no-browser", "--data-dir", str(data_dir), "--internal-host", "127.0.0.1",
                 "--port", str(self.port), "--enable-legacy-api-token"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"label-studio exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"label-studio did not answer in {START_SECONDS}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Token {self.token}"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.read()

    def api(self, method: str, path: str, body=None):
        request = urllib.request.Request(self.url + path, method=method, data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Token {self.token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: HTTP {error.code}: {error.read()[:2000]!r}") from None


def _migrated_database(cache_dir: Path, scratch: Path) -> Path:
    """A Label Studio SQLite database with every migration applied, made once and kept in `cache_dir`."""
    template = cache_dir / "label_studio.sqlite3"
    if not template.exists():
        server = Server(scratch, scratch)
        try:
            server.wait()
        finally:
            server.stop()
        partial = cache_dir / f".label_studio.sqlite3.{os.getpid()}"
        shutil.copyfile(scratch / "label_studio.sqlite3", partial)
        partial.replace(template)
    return template


@pytest.fixture
def label_studio(request, tmp_path):
    """A running Label Studio whose local-files document root is tmp_path, the images folder's parent."""
    assert LABEL_STUDIO and Path(LABEL_STUDIO).exists(), f"no label-studio executable at {LABEL_STUDIO!r}"
    scratch = tmp_path / "ls-template"
    scratch.mkdir()
    # a reinstalled label-studio rewrites its executable: a new mtime, a new template
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    key = f"label-studio-{Path(LABEL_STUDIO).stat().st_mtime_ns}"
    template = _migrated_database(Path(cache.mkdir(key)) if cache else scratch, scratch)
    data_dir = tmp_path / "ls-data"
    data_dir.mkdir()
    shutil.copyfile(template, data_dir / "label_studio.sqlite3")
    server = Server(data_dir, tmp_path)
    try:
        server.wait()
        yield server
    finally:
        server.stop()


def _choice(label: str) -> list[dict]:
    return [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]


def _all_labels(cli, project, out) -> dict[str, tuple[str, str]]:
    assert cli("export", project, "--format", "csv", "--out", out, "--force")[0] == 0
    rows = out.read_text().splitlines()[1:]
    return {path: (label, source) for path, label, source, *_ in (row.split(",") for row in rows)}


def test_the_readme_recipe_round_trips_through_a_real_label_studio(project, images, tmp_path, cli, label_studio):
    human = tmp_path / "human.csv"
    human.write_text("path,label\nimg_00001.png,circle\nimg_00002.webp,\nsub/img_00003.bmp,square\n"
                     "img_00004.tiff,other\n")
    assert cli("label", project, "--csv", human)[0] == 0
    tasks_file = tmp_path / "tasks.json"
    code, out, err = cli("export", project, "--format", "label-studio", "--out", tasks_file)
    assert code == 0 and "wrote 12 tasks (4 annotations, 8 predictions)" in out, err
    config = out.split("Label Studio labeling config: ", 1)[1].strip()

    server = label_studio
    ls_project = server.api("POST", "/api/projects", {"title": "labelloop", "label_config": config})["id"]
    server.api("POST", "/api/storages/localfiles",  # the README's storage: the images folder itself
               {"project": ls_project, "title": "images", "path": str(images), "use_blob_urls": False})
    server.api("POST", f"/api/projects/{ls_project}/import", json.loads(tasks_file.read_text()))
    counts = server.api("GET", f"/api/projects/{ls_project}")
    assert (counts["task_number"], counts["total_annotations_number"], counts["total_predictions_number"]) == \
        (12, 4, 8)
    tasks = json.loads(server.get(f"/api/projects/{ls_project}/export?exportType=JSON"))
    image_url = next(task["data"]["image"] for task in tasks if task["data"]["image"].endswith("sub/img_00003.bmp"))
    assert server.get(image_url) == (images / "sub" / "img_00003.bmp").read_bytes()

    edits = {"img_00001.png": "square", "img_00002.webp": "other"}  # a class, and "none of these" made a class
    for task in tasks:
        path = task["data"]["image"].split("?d=images/", 1)[1]
        if path in edits:
            server.api("PATCH", f"/api/annotations/{task['annotations'][0]['id']}", {"result": _choice(edits[path])})
    exported = tmp_path / "ls-export.json"
    exported.write_bytes(server.get(f"/api/projects/{ls_project}/export?exportType=JSON"))

    before = _all_labels(cli, project, tmp_path / "before.csv")
    code, out, err = cli("label", project, "--label-studio", exported)
    assert code == 0 and out.strip() == (f"imported 4 labels from {exported} (2 changed, 2 of them replacing a "
                                         "label someone else set)"), out + err  # the two Label Studio edits
    after = _all_labels(cli, project, tmp_path / "after.csv")
    assert {path: after[path] for path in after if after[path] != before[path]} == \
        {path: (label, "human") for path, label in edits.items()}


def test_a_multi_label_export_round_trips_through_a_real_label_studio(
        multi_project, images, tmp_path, cli, label_studio):  # noqa: F811 (multi_project: the fixture)
    """Issue 27: the tasks import into a `<Choices choice="multiple">` project; a set edited there comes back."""
    human = tmp_path / "human.csv"
    human.write_text("path,label\nimg_00001.png,circle;star\nimg_00002.webp,\n")
    assert cli("label", multi_project, "--csv", human)[0] == 0
    tasks_file = tmp_path / "tasks.json"
    code, out, err = cli("export", multi_project, "--format", "label-studio", "--out", tasks_file)
    assert code == 0 and "wrote 12 tasks (2 annotations, 10 predictions)" in out, err
    config = out.split("Label Studio labeling config: ", 1)[1].strip()
    assert 'choice="multiple"' in config

    server = label_studio
    ls_project = server.api("POST", "/api/projects", {"title": "labelloop tags", "label_config": config})["id"]
    server.api("POST", "/api/storages/localfiles",
               {"project": ls_project, "title": "images", "path": str(images), "use_blob_urls": False})
    server.api("POST", f"/api/projects/{ls_project}/import", json.loads(tasks_file.read_text()))
    counts = server.api("GET", f"/api/projects/{ls_project}")
    assert (counts["task_number"], counts["total_annotations_number"], counts["total_predictions_number"]) == \
        (12, 2, 10)
    tasks = json.loads(server.get(f"/api/projects/{ls_project}/export?exportType=JSON"))
    edited = {"img_00001.png": ["square", "circle", "star"], "img_00002.webp": ["square"]}
    for task in tasks:
        path = task["data"]["image"].split("?d=images/", 1)[1]
        if path in edited:
            result = [{"from_name": "tags", "to_name": "image", "type": "choices",
                       "value": {"choices": edited[path]}}]
            server.api("PATCH", f"/api/annotations/{task['annotations'][0]['id']}", {"result": result})
    exported = tmp_path / "ls-export.json"
    exported.write_bytes(server.get(f"/api/projects/{ls_project}/export?exportType=JSON"))

    code, out, err = cli("label", multi_project, "--label-studio", exported)
    assert code == 0 and "imported 2 labels" in out and "(2 changed" in out, out + err
    everything = {"circle", "square", "star"}
    assert _tag_labels(multi_project) == {"img_00001.png": (everything, everything),
                                          "img_00002.webp": ({"square"}, everything)}
