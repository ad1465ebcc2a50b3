"""`serve --auth` as an attacker without a password sees it: every route the Gradio app answers, listed from the
app itself, is requested without a session and must refuse (the login page and its static assets excepted);
path traversal variants on every file route never reach the database or a file outside the served folders; and
repeated wrong passwords are throttled. With and without a login: a request naming another Host (DNS rebinding)
or coming from another origin is refused, every file route answers with the headers of an image (or of a download),
and files in the images folder that are not images, or lie in a nested project, are not served. The same attacks
from a real browser are in test_cross_origin.py."""

import os
import re
import shutil
import subprocess
import sys
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
from engine.dataset.ingest import ingest
from engine.learning.models import load_model
from engine.project.folder import DB_FILE, create_project
from engine.project.server_record import SERVER_FILE, read_server_record
from engine.session.workspace import Workspace
from tests.imagegen import write_images

USER, PASSWORD = "ann", "s3cret-pw"
# Each throttle test wears out its own account, so the others still sign in as USER.
ACCOUNTS = [(USER, PASSWORD), ("bob", "pw-bob"), ("carol", "pw-carol"), ("dave", "pw-dave"), ("erin", "pw-erin")]
CLASSES = ("zebracorn", "quokkafish")  # names no Gradio asset contains, to spot leaks of the page's config
SCRIPT = "<script>fetch('/gradio_api/info')</script>"
HOSTILE = {"evil.html": f"<html><body>{SCRIPT}</body></html>",
           "evil.svg": f"<svg xmlns='http://www.w3.org/2000/svg'>{SCRIPT}</svg>", "evil.txt": SCRIPT}
ALLOWED_HOST = "labels.example.test"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _hostile_project(tmp: Path, tiny_model: Path):
    """A project whose images folder holds, besides five images (one format each), a PNG named .jpg, files that
    are scripts (HOSTILE) and a nested labelloop project `inner/` with its database, thumbnails and an image."""
    images = tmp / "images"
    write_images(images, 5)
    shutil.copyfile(images / "img_00001.png", images / "png_named.jpg")
    for name, text in HOSTILE.items():
        (images / name).write_text(text)
    write_images(tmp / "inner-images", 2)
    inner = create_project(images / "inner", images=tmp / "inner-images", classes="a,b", model=str(tiny_model))
    ingest(inner, load_model(inner.model_spec), workers=0)
    inner.close()
    shutil.copyfile(images / "img_00002.webp", images / "inner" / "photo.webp")
    project = create_project(tmp / "project", images=images, classes=",".join(CLASSES), model=str(tiny_model))
    ingest(project, load_model(project.model_spec), workers=0)
    (project.root / "exports").mkdir(exist_ok=True)
    (project.root / "exports" / "labels.csv").write_text("path,label\nimg_00000.jpg,zebracorn\n")
    (project.root / "exports" / "evil.html").write_text(HOSTILE["evil.html"])
    return project


@contextmanager
def _launched(project, **options):
    workspace = Workspace(project, ingest_workers=0)
    port = _free_port()
    page = launch(workspace, port=port, block=False, **options)
    try:
        yield f"http://127.0.0.1:{port}", page.app
    finally:
        page.close()
        workspace.close()
        project.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    """A served project with a login; yields (base url, project root, secret file outside the served folders,
    the app)."""
    tmp = tmp_path_factory.mktemp("secure")
    secret = tmp / "secret.txt"
    secret.write_text(f"secret-{secrets.token_hex(8)}")
    project = _hostile_project(tmp, tiny_model)
    with _launched(project, auth=ACCOUNTS) as (url, app):
        yield url, project.root, secret, app


@pytest.fixture(scope="module")
def open_served(tmp_path_factory, tiny_model):
    """The same project served without a login, answering ALLOWED_HOST too; yields (base url, project root, app)."""
    project = _hostile_project(tmp_path_factory.mktemp("open"), tiny_model)
    with _launched(project, allowed_hosts=[ALLOWED_HOST]) as (url, app):
        yield url, project.root, app


@pytest.fixture(params=["with --auth", "without --auth"])
def either(request):
    """Each test using it runs against both servers: (base url, project root, app, signed-in client factory)."""
    if request.param == "with --auth":
        url, root, _, app = request.getfixturevalue("served")
        return url, root, app, lambda: _signed_in(url)
    url, root, app = request.getfixturevalue("open_served")
    return url, root, app, lambda: _client(url)


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
        codes = [client.post("/login", data={"username": "erin", "password": "wrong"}).status_code
                 for _ in range(FREE_FAILURES + 3)]
        assert codes[:FREE_FAILURES] == [400] * FREE_FAILURES and set(codes[FREE_FAILURES:]) == {429}
        late = client.post("/login", data={"username": "erin", "password": "pw-erin"})
        assert late.status_code == 429 and "try again" in late.text  # even the right password waits its turn


# ---- with and without a login: the page's own origin only, files as images --------------------------------------

@contextmanager
def _client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=5) as client:
        yield client


def _cors(response) -> list[str]:
    return [name for name in response.headers if name.lower().startswith("access-control-")]


def test_a_rebinding_host_is_refused(either):
    """DNS rebinding: a web page reaches the server through a name it points at 127.0.0.1, and the browser sends
    that name as Host. Refused on every kind of request; the server's own names pass."""
    url, _, _, client_for = either
    port = url.rsplit(":", 1)[1]
    with client_for() as client:
        for host in ("rebind.attacker.test", f"rebind.attacker.test:{port}", f"127.0.0.1.attacker.test:{port}"):
            for method, path in (("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"),
                                 ("POST", "/gradio_api/queue/join"), ("GET", "/image/etc/hostname")):
                response = client.request(method, path, headers={"Host": host})
                assert response.status_code == 403 and "--allowed-host" in response.text, (host, method, path)
                assert CLASSES[0] not in response.text
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):  # the control: its own names
            assert client.get("/gradio_api/info", headers={"Host": host}).status_code == 200, host


def test_allowed_host_is_answered(open_served):
    url = open_served[0]
    port = url.rsplit(":", 1)[1]
    with _client(url) as client:
        assert client.get("/gradio_api/info", headers={"Host": f"{ALLOWED_HOST}:{port}"}).status_code == 200
        assert client.get("/gradio_api/info", headers={"Host": f"x{ALLOWED_HOST}:{port}"}).status_code == 403


def test_other_origins_get_no_answer_and_no_cors(either):
    """Another page (another port of this machine) neither reads an answer nor calls the API: its preflight, its
    reads and its posts are refused, and no answer carries CORS headers; the page's own origin passes."""
    url, _, _, client_for = either
    other = "http://127.0.0.1:9"
    with client_for() as client:
        preflight = client.options("/gradio_api/queue/join", headers={
            "Origin": other, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 403 and not _cors(preflight)
        read = client.get("/gradio_api/info", headers={"Origin": other})
        assert read.status_code == 403 and not _cors(read) and CLASSES[0] not in read.text
        for origin in (other, "null", "http://localhost:9"):
            post = client.post("/gradio_api/queue/join", json={}, headers={"Origin": origin})
            assert post.status_code == 403 and not _cors(post), origin
        for site in ("same-site", "cross-site"):  # a browser's post without an Origin says where it comes from
            assert client.post("/gradio_api/queue/join", json={}, headers={"Sec-Fetch-Site": site}).status_code == 403
        own = client.get("/gradio_api/info", headers={"Origin": url})
        assert own.status_code == 200 and not _cors(own)
        assert client.post("/gradio_api/queue/join", json={}, headers={"Origin": url}).status_code != 403


def test_the_session_cookie_is_strict_and_http_only(served):
    with httpx.Client(base_url=served[0], timeout=5) as client:
        cookies = client.post("/login", data={"username": USER, "password": PASSWORD}).headers.get_list("set-cookie")
    assert cookies and all("samesite=strict" in cookie.lower() and "httponly" in cookie.lower() for cookie in cookies)


PROJECT_FILE_ROUTES = {"/image/{path:path}", "/thumbnails/{key}", "/gradio_api/file={path_or_url:path}",
                       "/gradio_api/file/{path:path}"}
IMAGE_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".bmp": "image/bmp",
               ".tiff": "image/tiff"}


def _file_headers_ok(response, *, attachment: bool) -> bool:
    policy = response.headers.get("content-security-policy", "")
    disposition = response.headers.get("content-disposition", "")
    return (response.headers.get("x-content-type-options") == "nosniff" and "sandbox" in policy
            and "script-src" not in policy and disposition.startswith("attachment") == attachment)


def test_every_file_route_answers_with_the_headers_of_an_image_or_a_download(either):
    """Every route taking a file path answers nosniff and a policy; the routes serving project files answer an
    image with its Content-Type from its bytes (a PNG named .jpg is image/png), sandboxed, and an export (even an
    HTML one) as a sandboxed attachment."""
    url, root, app, client_for = either
    images = root.parent / "images"
    path_routes = sorted({path for path, method in _routes(app.routes)
                          if method == "GET" and (":path}" in path or path in PROJECT_FILE_ROUTES)})
    assert PROJECT_FILE_ROUTES <= set(path_routes)
    thumbnail = next((root / "thumbs").glob("??/*.jpg"))
    checked = set()
    with client_for() as client:
        for route in path_routes:
            response = client.get(_concrete(route))
            assert response.headers.get("x-content-type-options") == "nosniff", route
            assert response.headers.get("content-security-policy"), route
        answer = client.get(f"/thumbnails/{thumbnail.stem}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert _file_headers_ok(answer, attachment=False)
        checked.add("/thumbnails/{key}")
        pictures = [*(images.glob("img_*")), *(images / "sub").glob("img_*"), images / "png_named.jpg"]
        assert {picture.suffix for picture in pictures} == set(IMAGE_TYPES)
        for picture in [*pictures, thumbnail]:
            answer = client.get(f"/image{picture}")
            expected = "image/png" if picture.name == "png_named.jpg" else IMAGE_TYPES[picture.suffix]
            assert answer.status_code == 200 and answer.content == picture.read_bytes(), picture
            assert answer.headers["content-type"] == expected and _file_headers_ok(answer, attachment=False), picture
        checked.add("/image/{path:path}")
        for stem in ("/gradio_api/file=", "/gradio_api/file/"):
            for export in ("labels.csv", "evil.html"):
                answer = client.get(f"{stem}{root / 'exports' / export}")
                assert answer.status_code == 200 and _file_headers_ok(answer, attachment=True), (stem, export)
                assert "text/html" not in answer.headers.get("content-type", "")
            checked.add(stem + ("{path_or_url:path}" if stem.endswith("=") else "{path:path}"))
    assert checked == PROJECT_FILE_ROUTES
    page = httpx.get(url + "/", timeout=5)
    assert page.headers.get("x-content-type-options") == "nosniff"
    assert "connect-src 'self'" in page.headers.get("content-security-policy", "")


def test_scripts_and_nested_projects_in_the_images_folder_are_not_served(either):
    """evil.html/.svg/.txt in the images folder, and everything of a labelloop project nested in it (its database,
    its thumbnails, an image in it), are served by no file route; the images beside them are."""
    url, root, _, client_for = either
    images = root.parent / "images"
    inner = images / "inner"
    refused = [images / name for name in HOSTILE] + [inner / DB_FILE, next((inner / "thumbs").glob("??/*.jpg")),
                                                     inner / "photo.webp"]
    with client_for() as client:
        assert client.get(f"/image{images / 'img_00001.png'}").status_code == 200  # the control
        for path in refused:
            assert path.is_file(), path
            for stem in ("/image", "/gradio_api/file=", "/gradio_api/file/"):
                answer = client.get(f"{stem}{path}")
                assert answer.status_code >= 400 and answer.content != path.read_bytes(), (stem, path)
                assert b"<script>" not in answer.content and b"DUCK" not in answer.content[:16], (stem, path)


def test_the_throttle_counts_the_connection_not_x_forwarded_for(served):
    """Rotating X-Forwarded-For from this machine does not make a new client (uvicorn would trust it from
    127.0.0.1 unless told otherwise)."""
    with httpx.Client(base_url=served[0], timeout=5) as client:
        codes = [client.post("/login", data={"username": "dave", "password": "wrong"},
                             headers={"X-Forwarded-For": f"203.0.113.{attempt}"}).status_code
                 for attempt in range(FREE_FAILURES + 2)]
    assert codes[:FREE_FAILURES] == [400] * FREE_FAILURES and set(codes[FREE_FAILURES:]) == {429}


def test_signing_in_to_ones_own_account_does_not_reset_the_count_against_another(served):
    with httpx.Client(base_url=served[0], timeout=5) as client:
        def attempt(user, password):
            return client.post("/login", data={"username": user, "password": password}).status_code

        codes = [attempt("bob", "wrong") for _ in range(FREE_FAILURES - 1)]
        assert attempt("carol", "pw-carol") == 200
        codes += [attempt("bob", "wrong"), attempt("bob", "wrong")]
    assert codes == [400] * FREE_FAILURES + [429]


@pytest.mark.parametrize("auth, warned", [([], True), (["--auth", "ann:pw"], False)])
def test_serving_beyond_this_machine_without_a_login_warns(tmp_path, tiny_model, auth, warned):
    """`serve --host 0.0.0.0` without --auth says, in one line on stderr, that anyone reaching the machine can
    label; with --auth it does not."""
    write_images(tmp_path / "images", 1)
    create_project(tmp_path / "project", images=tmp_path / "images", classes="a,b", model=str(tiny_model)).close()
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", str(tmp_path / "project"), "--host",
                                "0.0.0.0", "--port", str(_free_port()), *auth], cwd=Path(__file__).parents[1],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "LABELLOOP_AUTH": ""})
    try:
        assert "serving" in process.stdout.readline()
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    warnings = [line for line in errors.splitlines() if "without --auth" in line]
    assert len(warnings) == (1 if warned else 0), errors
    assert not warned or "0.0.0.0" in warnings[0] and "--auth USER:PASSWORD" in warnings[0]


def test_the_host_rule_by_binding():
    """Bound to every interface, any IP address is the server's (an address cannot be rebound) but a name must be
    the machine's or given; bound to loopback, only loopback names and the given ones pass."""
    from app.browser_guard import refusal, server_names

    everywhere = server_names("0.0.0.0", [ALLOWED_HOST])
    for host in ("192.0.2.20:7860", "[2001:db8::1]:7860", "0.0.0.0:7860", f"{ALLOWED_HOST.upper()}.:7860"):
        assert refusal("GET", {"host": host}, everywhere, True) is None, host
    loopback = server_names("127.0.0.1")
    for host in ("localhost:7860", "[::1]:7860", "127.0.0.1"):
        assert refusal("GET", {"host": host}, loopback, False) is None, host
    for names, every_interface in ((everywhere, True), (loopback, False)):
        for host in ("rebind.attacker.test", "localhost.attacker.test:7860", ""):
            assert "--allowed-host" in refusal("GET", {"host": host}, names, every_interface), host
    assert "--allowed-host" in refusal("GET", {"host": "192.0.2.20:7860"}, loopback, False)


def test_a_sign_in_form_is_read_only_up_to_its_limit(served):
    """The throttle reads the form to know the account; a body of megabytes is refused, not held in memory."""
    from app.guard import LOGIN_FORM_LIMIT

    with httpx.Client(base_url=served[0], timeout=10) as client:
        huge = client.post("/login", data={"username": USER, "password": "x" * (LOGIN_FORM_LIMIT * 16)})
        assert huge.status_code == 413
        assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200


def test_with_trust_proxy_the_forwarded_address_is_the_client(tmp_path, tiny_model):
    """--trust-proxy: behind a reverse proxy on this machine each X-Forwarded-For address is its own client."""
    write_images(tmp_path / "images", 2)
    project = create_project(tmp_path / "project", images=tmp_path / "images", classes="a,b", model=str(tiny_model))
    ingest(project, load_model(project.model_spec), workers=0)
    with _launched(project, auth=[(USER, PASSWORD)], trust_proxy=True) as (url, _):
        with httpx.Client(base_url=url, timeout=5) as client:
            codes = [client.post("/login", data={"username": USER, "password": "wrong"},
                                 headers={"X-Forwarded-For": f"203.0.113.{attempt}"}).status_code
                     for attempt in range(FREE_FAILURES + 2)]
    assert codes == [400] * (FREE_FAILURES + 2)
