"""The read-only commands (status, queue, export, search --like) while `labelloop serve` holds the project: the
server answers them with the same output they give without it; write commands still refuse in one line naming the
page; the server's CLI route refuses browsers, strangers and wrong tokens; a stale server file is ignored."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.local_api import ROUTE, TOKEN_HEADER
from engine.project.server_record import SERVER_FILE, read_server_record, write_server_record
from tests.imagegen import write_images

pytestmark = pytest.mark.slow  # starts `labelloop serve` and the CLI as processes

LIKE = "sub/img_00003.bmp"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _labelloop(*args, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "app.cli", *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _read_only_commands(project: Path, out: Path) -> dict[str, tuple[str, str]]:
    """(stdout, stderr) of each read-only command, the export's target written as OUT."""
    commands = {"status": ["status", project, "--json"], "status text": ["status", project],
                "queue": ["queue", project, "--json", "--k", "5"],
                "export": ["export", project, "--format", "csv", "--out", out],
                "search": ["search", project, "--like", LIKE, "--json", "--k", "4"]}
    answers = {}
    for name, args in commands.items():
        result = _labelloop(*args)
        answers[name] = (result.stdout.replace(str(out), "OUT"), result.stderr)
    return answers


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model) -> Path:
    tmp = tmp_path_factory.mktemp("beside")
    write_images(tmp / "images", 12)
    root = tmp / "project"
    assert main(["init", str(root), "--images", str(tmp / "images"), "--classes", "circle,square,other",
                 "--model", str(tiny_model)]) == 0
    assert main(["ingest", str(root), "--workers", "0"]) == 0
    labels = tmp / "labels.csv"
    labels.write_text("path,label\nimg_00001.png,circle\nimg_00002.webp,square\n")
    assert main(["label", str(root), "--csv", str(labels)]) == 0
    return root


@pytest.fixture(scope="module")
def without_server(project, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("alone") / "labels.csv"
    return _read_only_commands(project, out), out


@pytest.fixture(scope="module")
def serving(project, without_server):
    """`labelloop serve` on the project as a subprocess, once its server file is written: yields the process."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", str(project), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while (record := read_server_record(project)) is None or record.pid != process.pid:
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.2)
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def server(serving, project):
    """The running server's record."""
    record = read_server_record(project)
    assert record is not None and record.pid == serving.pid
    return record


def test_read_only_commands_answer_as_without_the_server(server, project, without_server, tmp_path):
    expected, alone = without_server
    out = tmp_path / "labels.csv"
    assert _read_only_commands(project, out) == expected
    assert out.read_text() == alone.read_text()
    assert json.loads((tmp_path / "labels.csv.quality.json").read_text()) == \
        json.loads(alone.with_name("labels.csv.quality.json").read_text())


def test_a_write_command_names_the_page_in_one_line(server, project, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nimg_00004.tiff,circle\n")
    result = _labelloop("label", project, "--csv", labels, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert f"the page at http://127.0.0.1:{server.port} (process {server.pid}) holds {project}" in lines[0]
    assert "stop it" in lines[0]


def test_the_server_file_is_the_users_alone(server, project):
    mode = (project / SERVER_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_the_route_refuses_browsers_strangers_and_wrong_tokens(server):
    body = {"command": "status", "options": {}}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        refused = [client.post(ROUTE, json=body),
                   client.post(ROUTE, json=body, headers={TOKEN_HEADER: "not-the-token"}),
                   client.post(ROUTE, json=body, headers={TOKEN_HEADER: server.token[:-1]}),
                   client.post(ROUTE, json=body, headers={TOKEN_HEADER: server.token, "Origin": "http://evil.example"}),
                   client.post(ROUTE, json=body, headers={TOKEN_HEADER: server.token,
                                                          "Origin": f"http://127.0.0.1:{server.port}"}),
                   client.post(ROUTE, json=body, headers={TOKEN_HEADER: server.token, "Sec-Fetch-Site": "cross-site"}),
                   client.post(f"{ROUTE}?token={server.token}", json=body)]
        assert [response.status_code for response in refused] == [403] * len(refused)
        assert client.get(ROUTE, headers={TOKEN_HEADER: server.token}).status_code == 405
        not_read_only = client.post(ROUTE, json={"command": "label", "options": {}},
                                    headers={TOKEN_HEADER: server.token})
        assert not_read_only.status_code == 400
        answered = client.post(ROUTE, json=body, headers={TOKEN_HEADER: server.token})
        assert answered.status_code == 200 and answered.json()["result"]["images"]["ok"] == 12


def test_ctrl_c_on_the_server_removes_its_file(serving, project):
    """The module's last test of the server: it stops it."""
    assert (project / SERVER_FILE).exists()
    serving.send_signal(signal.SIGINT)
    serving.wait(timeout=60)
    assert not (project / SERVER_FILE).exists()
    assert json.loads(_labelloop("status", project, "--json").stdout)["images"]["ok"] == 12


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


@pytest.mark.parametrize("who", ["dead process", "live process that does not hold the project", "holder"])
def test_a_stale_server_file_is_ignored(held_project, who):
    """A file naming a dead process, or a live one that is not the lock's holder (its pid reused), is ignored; one
    naming the holder is followed (the control: the two others are told apart)."""
    root, holder = held_project
    write_server_record(root, host="127.0.0.1", port=_free_port(), token="stale")
    record = json.loads((root / SERVER_FILE).read_text())
    record["pid"] = {"dead process": _dead_pid(), "holder": holder}.get(who, os.getpid())
    (root / SERVER_FILE).write_text(json.dumps(record))
    result = _labelloop("status", root, "--json", check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    if who == "holder":  # nothing listens at its port: the command says so instead of waiting
        assert f"the page at http://127.0.0.1:{record['port']} (process {holder}) holds this project but did not " \
               "answer" in lines[0]
    else:
        assert f"in use by process {holder}" in lines[0] and "the page at" not in lines[0]
