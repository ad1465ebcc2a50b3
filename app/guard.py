"""What `serve --auth` puts in front of Gradio: no session, no answer (but the login page), and a throttle on
repeated wrong passwords.

Gradio checks the login on some routes only: without a session it still answers `/openapi.json` (every endpoint
with its parameters), the heartbeat, cancel, reset and the queue. This ASGI middleware refuses every request
that carries no valid session cookie, except what the login page itself needs to draw and sign in, and the CLI's
route, which refuses every request without the server's token itself (app.local_api).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from starlette.requests import Request

from app.local_api import ROUTE as CLI_ROUTE

LOGIN_PATHS = ("/login", "/login/")
# What the login page loads before anyone signs in: the page shell (Gradio draws the login form in it when there
# is no session) and its scripts, styles and icons.
PUBLIC_PATHS = frozenset({"/", "/favicon.ico", "/theme.css", "/gradio_api/theme.css", "/manifest.json",
                          "/robots.txt", "/pwa_icon"})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon/")
FREE_FAILURES = 5  # wrong passwords from one client for one account before it must wait
LONGEST_WAIT = 300.0  # seconds; the back-off doubles from 1 s up to this
LOGIN_FORM_LIMIT = 65536  # bytes; a sign-in form holds a name and a password, read whole before Gradio sees it
_log = logging.getLogger("labelloop.login")
# Gradio writes the whole API description (every endpoint, its parameters, the class names) into the page shell,
# login page included; the login form needs none of it.
_API_INFO = re.compile(rb"<script>window\.gradio_api_info = .*?</script>", re.DOTALL)


def is_public(method: str, path: str) -> bool:
    """Whether a request may be answered without a session: the login page and its static assets only."""
    if path in LOGIN_PATHS:
        return method == "POST"
    return method in ("GET", "HEAD") and (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES))


@dataclass
class LoginThrottle:
    """Exponential back-off per (client address, account) after FREE_FAILURES wrong passwords: 1 s, 2 s, 4 s ... up
    to LONGEST_WAIT. A successful sign-in clears that pair's record only: signing in to one's own account does not
    restart the count against another's."""

    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)
    _blocked_until: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_seconds(self, client: tuple[str, str]) -> float:
        """How long `client` (address, account) must still wait before its next attempt (0 = it may try now)."""
        with self._lock:
            return max(0.0, self._blocked_until.get(client, 0.0) - self.clock())

    def failed(self, client: tuple[str, str]) -> int:
        with self._lock:
            count = self._failures.get(client, 0) + 1
            self._failures[client] = count
            if count >= FREE_FAILURES:
                self._blocked_until[client] = self.clock() + min(LONGEST_WAIT, 2.0 ** (count - FREE_FAILURES))
        return count

    def succeeded(self, client: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(client, None)
            self._blocked_until.pop(client, None)


def _has_session(scope) -> bool:
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not tokens or cookie_id is None:
        return False
    cookies = {}
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, token = part.strip().partition("=")
                cookies[key] = token
    return any(cookies.get(name) in tokens for name in (f"access-token-{cookie_id}",
                                                        f"access-token-unsecure-{cookie_id}"))


async def _refuse(send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class SessionGuard:
    """ASGI middleware: with a login configured, answer only signed-in requests, the login page and its assets.
    Gradio's own start-up probe (`startup-events`, once, before the page is first served) passes too."""

    def __init__(self, app, throttle: LoginThrottle | None = None):
        self.app = app
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        app = scope.get("app")
        if path in LOGIN_PATHS and method == "POST":
            return await self._login(scope, receive, send)
        if path == CLI_ROUTE and scope["type"] == "http":  # a command holds the token, not a session
            return await self.app(scope, receive, send)
        if _has_session(scope):
            return await self.app(scope, receive, send)
        if path == "/" and method == "GET":
            return await self._login_page(scope, receive, send)
        if is_public(method, path):
            return await self.app(scope, receive, send)
        if path == "/gradio_api/startup-events" and not getattr(app, "startup_events_triggered", True):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await _refuse(send, 401, "Not authenticated: sign in first")

    async def _login_page(self, scope, receive, send) -> None:
        """The page shell without its API description."""
        start, body = {}, []

        async def collect(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                body.append(message.get("body", b""))

        await self.app(scope, receive, collect)
        content = _API_INFO.sub(b"", b"".join(body))
        headers = [(name, value) for name, value in start.get("headers", []) if name != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})

    async def _login(self, scope, receive, send) -> None:
        # The connection's own address, unless the server trusts a proxy's X-Forwarded-For (app.server.launch)
        address = (scope.get("client") or ("unknown", 0))[0]
        body = await _read_body(receive)
        if body is None:
            return await _refuse(send, 413, f"a sign-in form is at most {LOGIN_FORM_LIMIT} bytes")
        client = (address, await _account(scope, body))
        wait = self.throttle.wait_seconds(client)
        if wait > 0:
            _log.warning("sign-in from %s as %r refused: too many wrong passwords, %.0f s to wait", *client, wait)
            return await _refuse(send, 429, f"too many wrong passwords; try again in {wait:.0f} s",
                                 [(b"retry-after", str(max(1, round(wait))).encode())])
        status = {}

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, _replay(body, receive), watch)
        if status.get("code") == 200:
            self.throttle.succeeded(client)
        elif status.get("code") in (400, 401):
            count = self.throttle.failed(client)
            _log.warning("wrong password from %s for %r (%d in a row)", *client, count)


async def _read_body(receive) -> bytes | None:
    """A request's body, or None past LOGIN_FORM_LIMIT bytes."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > LOGIN_FORM_LIMIT:
            return None
        more = message.get("more_body", False) and message["type"] == "http.request"
    return b"".join(chunks)


def _replay(body: bytes, receive=None):
    """An ASGI `receive` that hands over `body` (already read from the client) first, then what `receive` gets."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _account(scope, body: bytes) -> str:
    """The user name a sign-in form names ("" when it names none)."""
    try:
        form = await Request(scope, _replay(body)).form()
    except Exception:  # a malformed form: Gradio refuses it itself, counted as a wrong password under ""
        return ""
    return str(form.get("username", ""))
