"""`serve --auth` as an attacker without a password sees it: every route the Gradio app answers, listed from the
app itself, is requested without a session and must refuse (the login page and its static assets excepted);
path traversal variants on every file route never reach the database or a file outside the served folders; and
repeated wrong passwords are throttled."""

import re
from contextlib import contextmanager
from typing import Iterator
import secrets
import socket
from pathlib import Path

import httpx
import pytest

from app.guard import FREE_FAILURES, is_public
from app.local_api import ROUTE, TOKEN_HEADER
from app.server import launch
from engine.ingest import ingest
from engine.models import load_model
from engine.project import DB_FILE, create_project
from engine.server_record import SERVER_FILE, read_server_record
from engine.workspace import Workspace
from tests.imagegen import write_images

USER, PASSWORD = "ann", "s3cret-pw"
CLASSES = ("zebracorn", "quokkafish")  # names no Gradio asset contains, to spot leaks of the page's config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    """A served project with a login; yields (base url, project root, secret file outside the served folders)."""
    tmp = tmp_path_factory.mktemp("secure")
    write_images(tmp / "images", 4)
    secret = tmp / "secret.txt"
    secret.write_text(f"secret-{secrets.token_hex(8)}")
    project = create_project(tmp / "project", images=tmp / "images", classes=",".join(CLASSES),
                             model=str(tiny_model))
    ingest(project, load_model(project.model_spec), workers=0)
    workspace = Workspace(project, ingest_workers=0)
    port = _free_port()
    page = launch(workspace, port=port, block=False, auth=[(USER, PASSWORD)])
    yield f"http://127.0.0.1:{port}", project.root, secret, page.app
    page.close()
    workspace.close()
    project.close()


def _routes(routes, prefix=""):
    """(path, method) of every route of a Starlette/FastAPI app, included routers and mounts opened up."""
    for route in routes:
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if not hasattr(route, "endpoint") and getattr(inner, "routes", None) is not None:
            yield from _routes(inner.routes, prefix + getattr(route, "path", ""))
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            yield prefix + route.path, method


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_refuses_without_a_session(served):
    url, _, _, app = served
    routes = sorted(set(_routes(app.routes)))
    assert len(routes) > 40 and ("/gradio_api/queue/join", "POST") in routes  # the listing really opened up
    answered = []
    with httpx.Client(base_url=url, timeout=5) as client:
        for path, method in routes:
            response = client.request(method, _concrete(path))
            if is_public(method, path.split("{")[0] if "{" in path else path) or path == "/login":
                assert not any(name in response.text for name in CLASSES), (method, path)
                continue
            if response.status_code < 400:
                answered.append((method, path, response.status_code))
    assert not answered, f"answered without a session: {answered}"


def test_the_cli_route_takes_its_token_instead_of_a_session(served):
    url, root, _, _ = served
    body = {"command": "status", "options": {}}
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post(ROUTE, json=body).status_code == 403
        answered = client.post(ROUTE, json=body, headers={TOKEN_HEADER: read_server_record(root).token})
        assert answered.status_code == 200 and answered.json()["result"]["classes"] == list(CLASSES)


def test_the_login_page_shows_no_project_details(served):
    url = served[0]
    with httpx.Client(base_url=url, timeout=5) as client:
        for path in ("/", "/?view=api", "/openapi.json", "/config", "/gradio_api/info"):
            body = client.get(path).text
            assert not any(name in body for name in CLASSES), path


@contextmanager
def _signed_in(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=5) as client:
        assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
        yield client


def test_a_session_gets_the_page(served):
    with _signed_in(served[0]) as client:
        assert client.get("/gradio_api/info").status_code == 200
        assert CLASSES[0] in client.get("/config").text


def test_path_traversal_on_every_file_route_never_leaves_the_served_folders(served):
    url, root, secret, app = served
    database = root / DB_FILE
    targets = [str(database), str(secret), str(root / SERVER_FILE), "/etc/passwd"]
    variants = []
    for target in targets:
        relative = "../" * 12 + target.lstrip("/")
        variants += [target, relative, relative.replace("/", "%2F"), relative.replace("..", "%2e%2e"),
                     relative.replace("/", "\\"), "..%252f" * 12 + target.lstrip("/"),
                     f"{root}/thumbs/../{DB_FILE}", f"{root}/exports/../{DB_FILE}"]
    file_routes = sorted({path for path, method in _routes(app.routes)
                          if method == "GET" and (":path}" in path or path == "/thumbnails/{key}")})
    assert {"/gradio_api/file={path_or_url:path}", "/thumbnails/{key}"} <= set(file_routes)
    secrets_seen = {secret.read_text(), "root:x:0:0", read_server_record(root).token}
    leaks = []
    anonymous = httpx.Client(base_url=url, timeout=5)
    with _signed_in(url) as client:
        for route in file_routes:
            stem = route.split("{")[0]
            for variant in variants:
                for who in (client, anonymous):
                    response = who.get(stem + variant)
                    body = response.content
                    if body.startswith(b"DUCK") or body[8:12] == b"DUCK" or any(s.encode() in body for s in secrets_seen):
                        leaks.append((route, variant, who is client))
    anonymous.close()
    assert Path(database).read_bytes()[8:12] == b"DUCK"  # the check above would have seen the database
    assert not leaks, leaks


def test_thumbnails_are_served_by_key_for_good_and_nothing_else(served):
    url, root, _, _ = served
    thumbnail = next((root / "thumbs").glob("??/*.jpg"))
    with _signed_in(url) as client:
        response = client.get(f"/thumbnails/{thumbnail.stem}")
        assert response.status_code == 200 and response.content == thumbnail.read_bytes()
        assert response.headers["content-type"] == "image/jpeg"
        assert "immutable" in response.headers["cache-control"]
        for key in ("..", ".", "%2e%2e", thumbnail.stem + ".jpg", thumbnail.stem[:2], "0" * 64, "a" * 200):
            response = client.get(f"/thumbnails/{key}")
            assert response.headers.get("content-type") != "image/jpeg", key
    with httpx.Client(base_url=url, timeout=5) as anonymous:
        assert anonymous.get(f"/thumbnails/{thumbnail.stem}").status_code in (401, 403)


def test_wrong_passwords_are_throttled(served):
    url = served[0]
    with httpx.Client(base_url=url, timeout=5) as client:
        codes = [client.post("/login", data={"username": USER, "password": "wrong"}).status_code
                 for _ in range(FREE_FAILURES + 3)]
        assert codes[:FREE_FAILURES] == [400] * FREE_FAILURES and set(codes[FREE_FAILURES:]) == {429}
        late = client.post("/login", data={"username": USER, "password": PASSWORD})
        assert late.status_code == 429 and "try again" in late.text  # even the right password waits its turn
