"""Start-up: open the project (storage), build the workspace (engine), build the page, serve it. Without a project,
the start page (app.start_page) is served first, until a person opens or creates one there; the project's page then
takes its place on the same address.

The server process is the project's one writer; its background jobs run in a thread of the same process.
Only images from the images folder and the project's thumbnails (engine.session.served_files), and the exports as
downloads, are served; the database and checkpoints are not. app.browser_guard stands in front of it all.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.browser_guard import BrowserGuard
from app.escaping import terminal_text
from app.guard import SessionGuard
from app.local_api import cli_route
from engine.errors import LabelloopError
from engine.files.images import image_type, thumbnail_path
from engine.project.folder import DB_FILE, Project
from engine.project.server_record import SERVER_FILE, new_token, remove_server_record, write_server_record
from engine.session.served_files import servable_image
from engine.session.workspace import Workspace

AUTH_VARIABLE = "LABELLOOP_AUTH"
STOP_SECONDS = 5.0  # how long Ctrl-C waits for the running job to reach a checkpoint
TRUSTED_PROXIES = "127.0.0.1,::1"  # with --trust-proxy: a reverse proxy on this machine
SWITCH_SECONDS = 0.5  # the start page's answer ("opening ...") reaches the browser before the page is replaced


def auth_entries(entries: list[str] | str | None) -> list[tuple[str, str, str]]:
    """One 'user:password[:reviewer]' per person (a string holds several separated by spaces, as $LABELLOOP_AUTH
    does) -> [(user, password, role), ...], role "labeler" unless the entry ends in ':reviewer'. Each person's labels
    and undo are their own."""
    if isinstance(entries, str):
        entries = entries.split()
    accounts = []
    for number, entry in enumerate(entries or [], start=1):
        user, colon, password = entry.partition(":")
        password, role = (password[:-len(":reviewer")], "reviewer") if password.endswith(":reviewer") \
            else (password, "labeler")
        if not colon or not user or not password:  # the entry is not echoed: it may hold a password
            raise LabelloopError(f"--auth (or ${AUTH_VARIABLE}) must look like USER:PASSWORD[:reviewer]; entry {number} "
                                 "does not")
        if user.casefold() in {known.casefold() for known, _, _ in accounts}:
            raise LabelloopError(f"--auth names {user!r} twice (or two names differing only in case); give each "
                                 "person one USER:PASSWORD")
        accounts.append((user, password, role))
    return accounts


def parse_auth(entries: list[str] | str | None) -> list[tuple[str, str]] | None:
    """auth_entries as Gradio's login takes them: [(user, password), ...]; nothing -> None (no login)."""
    return [(user, password) for user, password, _ in auth_entries(entries)] or None


def served_paths(project: Project) -> tuple[list[str], list[str]]:
    """(allowed, blocked) for Gradio's file route: the exports in (the page offers them as downloads); the database
    and checkpoints out. Images and thumbnails have routes of their own (image_route, thumbnail_route)."""
    root = project.root
    allowed = [str(root / "exports")]
    blocked = [str(root / DB_FILE), str(root / f"{DB_FILE}.wal"), str(root / SERVER_FILE), str(project.models_dir)]
    return allowed, blocked


THUMBNAIL_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")


def thumbnail_route(thumbs_dir: Path) -> Route:
    """`GET /thumbnails/{key}`: the thumbnail of content `key` (engine.files.images.thumbnail_path), cached by the
    browser for good (a key names one content, so it never changes). The gallery asks for 48 of them a page and
    fetches the next page's ahead: Gradio's file route took 2.0-2.6 ms of the server a thumbnail and this one 0.4-0.5
    ms (300 in a row over one connection), time the server then has for keys and clicks. The file is read in the
    event loop: a thumbnail is tens of kilobytes, and a thread hop would cost more than the read."""

    async def thumbnail(request: Request) -> Response:
        key = request.path_params["key"]
        path = thumbnail_path(thumbs_dir, key) if THUMBNAIL_KEY.fullmatch(key) else None
        try:
            data = path.read_bytes() if path else None
        except OSError:
            data = None
        mime = image_type(data) if data else None
        if mime is None:
            return Response("no such thumbnail", status_code=404, media_type="text/plain")
        return Response(data, media_type=mime, headers={"Cache-Control": "public, max-age=31536000, immutable"})

    return Route("/thumbnails/{key}", thumbnail, methods=["GET", "HEAD"])


def image_route(project: Project) -> Route:
    """`GET /image/{absolute path}`: an image from the images folder or the thumbnails (the detail panel's picture,
    tiles and heatmaps), with its Content-Type from its bytes (engine.session.served_files.servable_image); anything
    else 404."""

    async def image(request: Request) -> Response:
        try:
            data, mime = await run_in_threadpool(servable_image, "/" + request.path_params["path"],
                                                 [project.images_root, project.thumbs_dir])
        except LabelloopError as error:
            return Response(str(error), status_code=404, media_type="text/plain")
        return Response(data, media_type=mime, headers={"Cache-Control": "no-cache"})

    return Route("/image/{path:path}", image, methods=["GET", "HEAD"])


def check_address(host: str, port: int | None) -> None:
    """Refuse, in one line, a port outside 1-65535 or a host name that does not resolve (Gradio reports both as
    "port in use")."""
    if port is not None and not 1 <= port <= 65535:
        raise LabelloopError(f"--port must be between 1 and 65535, got {port}")
    try:
        socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else "not a valid host name"
        raise LabelloopError(f"--host {host!r} cannot be resolved ({reason}); give an address such as 127.0.0.1 "
                             "or 0.0.0.0") from None


def binds_loopback(host: str) -> bool:
    """Whether every address `host` resolves to is this machine's loopback (no other machine reaches it)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in found)


def private_cache() -> str:
    """Gradio's file cache (uploads, the downloads the page offers) in a folder only this user reads (0700), made
    once per process, instead of Gradio's default in the system temp folder, which every user reads."""
    if not os.environ.get("GRADIO_TEMP_DIR"):
        folder = tempfile.mkdtemp(prefix="labelloop-page-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ["GRADIO_TEMP_DIR"] = folder
    return os.environ["GRADIO_TEMP_DIR"]


def stop_jobs(workspace: Workspace) -> None:
    """On Ctrl-C: say what is stopping, cancel the running job at its next check, and wait a few seconds."""
    running = workspace.runner.running()
    if running:
        names = ", ".join(f"{kind} job {job_id}" for job_id, kind in running)
        print(f"labelloop: stopping; cancelling {names} at its next checkpoint ...", file=sys.stderr, flush=True)
    if not workspace.runner.close(timeout=STOP_SECONDS):
        print(f"labelloop: a job did not stop within {STOP_SECONDS:.0f} s; exiting anyway (it is recorded as "
              "interrupted, and what it finished is kept)", file=sys.stderr, flush=True)


def launch(workspace: Workspace, *, host: str = "127.0.0.1", port: int | None = 7860,
           auth: list[tuple[str, str]] | None = None, block: bool = True, allowed_hosts: Sequence[str] = (),
           trust_proxy: bool = False):
    """Serve the page; with block=False return at once (tests), else until Ctrl-C. Returns the Gradio app.
    `allowed_hosts`: Host names answered besides this machine's and the bound host (app.browser_guard);
    `trust_proxy`: take the client's address from X-Forwarded-For sent by a proxy on this machine (the login
    throttle counts per client), else the connection's own.

    Once it listens, the project's server file (engine.project.server_record) tells the read-only CLI commands where to
    ask (app.local_api); it is removed when a blocking launch ends. With block=False it stays while this process
    lives, and is ignored once this process no longer holds the project."""
    from app.page import CSS, KEYBOARD_JS, build_page

    private_cache()  # before the page: each component takes its cache folder when it is made
    page = build_page(workspace)
    allowed, blocked = served_paths(workspace.project)
    (workspace.project.root / "exports").mkdir(exist_ok=True)
    token = new_token()
    _launch_blocks(page, routes=[thumbnail_route(workspace.project.thumbs_dir), image_route(workspace.project),
                                 cli_route(workspace, token, host)],
                   allowed_paths=allowed, blocked_paths=blocked, js=KEYBOARD_JS, css=CSS, host=host, port=port,
                   auth=auth, allowed_hosts=allowed_hosts, trust_proxy=trust_proxy, quiet=not block)
    record = write_server_record(workspace.project.root, host=host, port=page.server_port, token=token)
    if block:
        try:
            page.block_thread()
        finally:
            remove_server_record(workspace.project.root, record)
    return page


def _launch_blocks(page, *, routes: list[Route], allowed_paths: list[str], blocked_paths: list[str], js: str,
                   css: str, host: str, port: int | None, auth: list[tuple[str, str]] | None,
                   allowed_hosts: Sequence[str], trust_proxy: bool, quiet: bool) -> None:
    """Serve the Gradio `page` (the labeling page or the start page) with `routes` of labelloop's own before
    Gradio's, app.browser_guard in front of everything and app.guard's login with `auth`; returns once it listens.
    Gradio's file route serves `allowed_paths` only, never `blocked_paths`."""
    page.queue(default_concurrency_limit=4)
    check_address(host, port)

    @asynccontextmanager
    async def guard_first(app):
        # Gradio puts its own CORS middleware (which answers other local origins, with credentials) outside every
        # middleware given to it; the guard wraps the stack Starlette has built before this start-up runs.
        app.middleware_stack = BrowserGuard(app.middleware_stack, bound_host=host, allowed_hosts=allowed_hosts)
        yield

    # Routes given to FastAPI come before Gradio's own; SessionGuard (with --auth) guards them like the rest, but
    # the CLI's, which checks its token itself.
    app_kwargs = {"routes": routes, "lifespan": guard_first}
    if auth:
        app_kwargs["middleware"] = [Middleware(SessionGuard)]
    # uvicorn (under Gradio) takes the client's address from X-Forwarded-For when the peer is one of
    # $FORWARDED_ALLOW_IPS (by default this machine): anyone here could then forge the address the throttle counts.
    os.environ["FORWARDED_ALLOW_IPS"] = TRUSTED_PROXIES if trust_proxy else ""
    try:
        page.launch(server_name=host, server_port=port, auth=auth, allowed_paths=allowed_paths,
                    blocked_paths=blocked_paths, app_kwargs=app_kwargs,
                    run_history=False,  # recording every run in the browser cost ~50 ms a key
                    prevent_thread_lock=True, quiet=quiet, show_error=True, footer_links=[], js=js, css=css,
                    auth_message="labelloop: sign in to label this project")
    except OSError as error:  # Gradio says "Cannot find empty port" with a paragraph about its own settings
        if "port" not in str(error).lower():
            raise
        raise LabelloopError(f"port {port} on {host} is in use; pass --port with another number, "
                             "or stop what listens there") from None


def pick_project(home: Path, *, host: str, port: int, auth: list[tuple[str, str]] | None,
                 allowed_hosts: Sequence[str], trust_proxy: bool) -> tuple[Project, bool]:
    """Serve the start page (app.start_page) until a person opens or creates a project there; returns it, open,
    and whether it was created. The start page serves no file at all: no images folder is known yet, so the image
    routes come with the project's page (launch), which replaces it on the same address."""
    from app.page import CSS
    from app.start_page import ProjectChoice, build_start_page
    from app.static_files import static_text

    private_cache()
    choice = ProjectChoice(home)
    page = build_start_page(choice)
    _launch_blocks(page, routes=[], allowed_paths=[], blocked_paths=[], js=static_text("start.js"), css=CSS,
                   host=host, port=port, auth=auth, allowed_hosts=allowed_hosts, trust_proxy=trust_proxy, quiet=True)
    print(f"labelloop: start page on http://{host}:{port}: open or create a project there"
          + (" (login required)" if auth else "") + " — Ctrl-C stops", flush=True)
    try:
        while not choice.wait(0.5):  # a timeout, so Ctrl-C is heard
            pass
        time.sleep(SWITCH_SECONDS)
    finally:
        page.close(verbose=False)
    return choice.project, choice.created


def serve(project_root: str | Path | None, *, home: str | Path | None = None, host: str = "127.0.0.1",
          port: int = 7860, auth: list[str] | None = None, allowed_hosts: Sequence[str] = (),
          trust_proxy: bool = False) -> None:
    """Serve the page of the project at `project_root`; without one, the start page first (pick_project), paths
    there read from `home` (default: the current folder). A created project is ingested at once, its progress at
    the top of the page as after the Ingest tab's scan."""
    from engine.project.folder import open_project

    entries = auth_entries(auth if auth else os.environ.get(AUTH_VARIABLE))
    credentials = [(user, password) for user, password, _ in entries] or None
    check_address(host, port)
    if not credentials and not binds_loopback(host):
        print(f"labelloop: warning: serving on {host} without --auth: anyone who can reach this machine can label, "
              "export and download" + ("" if project_root else ", and open or create projects as you")
              + "; pass --auth USER:PASSWORD", file=sys.stderr, flush=True)
    logging.getLogger("labelloop.login").setLevel(logging.WARNING)  # wrong passwords go to the server log
    if project_root is None:
        home = Path(home or ".").expanduser().resolve()
        if not home.is_dir():
            raise LabelloopError(f"--home {home} is not a folder; give the folder that holds (or will hold) your "
                                 "projects")
        project, created = pick_project(home, host=host, port=port, auth=credentials, allowed_hosts=allowed_hosts,
                                        trust_proxy=trust_proxy)
    else:
        project, created = open_project(project_root), False
    with project:
        if entries and not project.multi_label:  # each person signed in labels as themselves, in their role
            from engine.labels.team import change_team

            change_team(project, add=[(user, role) for user, _, role in entries])
        workspace = Workspace(project)
        try:
            if created:
                workspace.start_ingest()
            print(f"labelloop: serving {terminal_text(project.root)} on http://{host}:{port}"
                  + (" (login required)" if credentials else "") + " — Ctrl-C stops", flush=True)
            launch(workspace, host=host, port=port, auth=credentials, allowed_hosts=allowed_hosts,
                   trust_proxy=trust_proxy)
        finally:
            stop_jobs(workspace)
            workspace.close()
