"""Start-up: open the project (storage), build the workspace (engine), build the page, serve it.

The server process is the project's one writer; its background jobs run in a thread of the same process.
Only the project's thumbnails and exports and the images folder are served; the database and checkpoints are not.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from pathlib import Path

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.guard import SessionGuard
from app.local_api import cli_route
from engine.errors import LabelloopError
from engine.imageio import thumbnail_path
from engine.project import DB_FILE, Project
from engine.server_record import SERVER_FILE, new_token, remove_server_record, write_server_record
from engine.workspace import Workspace

AUTH_VARIABLE = "LABELLOOP_AUTH"
STOP_SECONDS = 5.0  # how long Ctrl-C waits for the running job to reach a checkpoint


def parse_auth(entries: list[str] | str | None) -> list[tuple[str, str]] | None:
    """One 'user:password' per person (a string holds several separated by spaces, as $LABELLOOP_AUTH does) ->
    [(user, password), ...]; nothing -> None (no login). Each person's labels and undo are their own."""
    if isinstance(entries, str):
        entries = entries.split()
    accounts = []
    for number, entry in enumerate(entries or [], start=1):
        user, colon, password = entry.partition(":")
        if not colon or not user or not password:  # the entry is not echoed: it may hold a password
            raise LabelloopError(f"--auth (or ${AUTH_VARIABLE}) must look like USER:PASSWORD; entry {number} does not")
        if user in dict(accounts):
            raise LabelloopError(f"--auth names {user!r} twice; give each person one USER:PASSWORD")
        accounts.append((user, password))
    return accounts or None


def served_paths(project: Project) -> tuple[list[str], list[str]]:
    """(allowed, blocked) for Gradio: thumbnails, exports and images in; the database and checkpoints out."""
    root = project.root
    allowed = [str(project.thumbs_dir), str(root / "exports"), str(project.images_root)]
    blocked = [str(root / DB_FILE), str(root / f"{DB_FILE}.wal"), str(root / SERVER_FILE), str(project.models_dir)]
    return allowed, blocked


THUMBNAIL_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")


def thumbnail_route(thumbs_dir: Path) -> Route:
    """`GET /thumbnails/{key}`: the thumbnail of content `key` (engine.imageio.thumbnail_path), cached by the
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
        if data is None:
            return Response("no such thumbnail", status_code=404, media_type="text/plain")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=31536000, immutable"})

    return Route("/thumbnails/{key}", thumbnail, methods=["GET", "HEAD"])


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
           auth: list[tuple[str, str]] | None = None, block: bool = True):
    """Serve the page; with block=False return at once (tests), else until Ctrl-C. Returns the Gradio app.

    Once it listens, the project's server file (engine.server_record) tells the read-only CLI commands where to ask
    (app.local_api); it is removed when a blocking launch ends. With block=False it stays while this process
    lives, and is ignored once this process no longer holds the project."""
    import gradio as gr

    from app.page import CSS, KEYBOARD_JS, build_page

    page = build_page(workspace)
    allowed, blocked = served_paths(workspace.project)
    # Thumbnails and images are served where they lie: the detail panel's image is not copied into Gradio's cache
    # on every click (static paths are only ever added to; both folders are allowed above anyway).
    gr.set_static_paths([workspace.project.thumbs_dir, workspace.project.images_root])
    (workspace.project.root / "exports").mkdir(exist_ok=True)
    page.queue(default_concurrency_limit=4)
    check_address(host, port)
    # Routes given to FastAPI come before Gradio's own; SessionGuard (with --auth) guards them like the rest, but
    # the CLI's, which checks its token itself.
    token = new_token()
    app_kwargs = {"routes": [thumbnail_route(workspace.project.thumbs_dir), cli_route(workspace, token, host)]}
    if auth:
        app_kwargs["middleware"] = [Middleware(SessionGuard)]
    try:
        page.launch(server_name=host, server_port=port, auth=auth, allowed_paths=allowed, blocked_paths=blocked,
                    app_kwargs=app_kwargs, run_history=False,  # recording every run in the browser cost ~50 ms a key
                    prevent_thread_lock=True, quiet=not block, show_error=True, footer_links=[],
                    js=KEYBOARD_JS, css=CSS, auth_message="labelloop: sign in to label this project")
    except OSError as error:  # Gradio says "Cannot find empty port" with a paragraph about its own settings
        if "port" not in str(error).lower():
            raise
        raise LabelloopError(f"port {port} on {host} is in use; pass --port with another number, "
                             "or stop what listens there") from None
    record = write_server_record(workspace.project.root, host=host, port=page.server_port, token=token)
    if block:
        try:
            page.block_thread()
        finally:
            remove_server_record(workspace.project.root, record)
    return page


def serve(project_root: str | Path, *, host: str = "127.0.0.1", port: int = 7860,
          auth: list[str] | None = None) -> None:
    from engine.project import open_project

    credentials = parse_auth(auth if auth else os.environ.get(AUTH_VARIABLE))
    check_address(host, port)
    logging.getLogger("labelloop.login").setLevel(logging.WARNING)  # wrong passwords go to the server log
    with open_project(project_root) as project:
        workspace = Workspace(project)
        try:
            print(f"labelloop: serving {project.root} on http://{host}:{port}"
                  + (" (login required)" if credentials else "") + " — Ctrl-C stops", flush=True)
            launch(workspace, host=host, port=port, auth=credentials)
        finally:
            stop_jobs(workspace)
            workspace.close()
