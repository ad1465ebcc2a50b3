"""What a browser may do with the server, signed in or not: only the page's own origin drives it.

- A request whose Host is not a name of this server is refused: a web page anywhere could otherwise reach a server
  on this machine through a name it rebinds to 127.0.0.1 (DNS rebinding) and drive it as its own origin.
- A request carrying another page's Origin is refused, preflights included, and no answer carries CORS headers:
  another page (another port of this machine included) neither reads an answer nor acts as the person signed in.
- A state-changing request (not GET, HEAD or OPTIONS) from a browser proves it comes from the page: its Origin is
  the page's, or, without one, its Sec-Fetch-Site says same-origin or none. A request with neither header comes
  from a program, not a web page (every browser sends one of them on such a request), and a program holds no
  person's cookie to abuse.
- The session cookie is SameSite=Strict and HttpOnly.
- Every answer says nosniff and carries a Content-Security-Policy: the page's own scripts run and it talks to its
  own origin only; a served file is sandboxed (a script in it never runs on the page's origin), and Gradio's file
  route (export downloads) answers as an attachment of no particular type, a download and never a document.

The guard wraps the whole app, Gradio's own CORS middleware included (app.server.launch), so it sees every request
first; the rules live here only.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Sequence
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
EVERY_INTERFACE = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where files are served from (app.server's routes and Gradio's file route): answered as sandboxed documents.
FILE_PREFIXES = ("/image/", "/thumbnails/", "/gradio_api/file=", "/gradio_api/file/")
ATTACHMENT_PREFIXES = ("/gradio_api/file=", "/gradio_api/file/")
# Gradio's page bootstraps from inline scripts and runs the page's `js=` through eval, so 'unsafe-inline' and
# 'unsafe-eval' stay; what the policy takes away is every other origin (no script, image or request elsewhere).
PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; "
               "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
               "form-action 'self'; frame-ancestors 'none'")
FILE_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


def host_name(value: str) -> str:
    """The name in a Host header or an address: lower-case, without port, brackets or a final dot; an IP address
    in its one canonical spelling."""
    name = value.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def server_names(bound_host: str, allowed_hosts: Sequence[str] = ()) -> frozenset[str]:
    """The Host names the server answers: this machine's loopback names, the host it binds, the names given with
    --allowed-host and, bound to every interface, this machine's own names."""
    names = set(LOOPBACK_NAMES) | {bound_host, *allowed_hosts}
    if bound_host in EVERY_INTERFACE:
        names |= {socket.gethostname(), socket.getfqdn()}
    return frozenset(host_name(name) for name in names if name)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def refusal(method: str, headers: dict[str, str], names: frozenset[str], every_interface: bool) -> str | None:
    """Why a browser's request is refused (None: it may pass); `headers` lower-case names. Bound to every
    interface, any IP address is a name of the server: an address typed into a browser cannot be rebound."""
    host = headers.get("host", "")
    name = host_name(host)
    if not name or (name not in names and not (every_interface and _is_address(name))):
        return (f"Host {host!r} is not a name of this server; if it is, start the server with --allowed-host "
                f"{name or 'NAME'}")
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return f"requests from other web pages ({origin}) are refused; use the labelloop page itself"
    fetched_from = headers.get("sec-fetch-site", "same-origin")
    if method not in SAFE_METHODS and origin is None and fetched_from not in ("same-origin", "none"):
        return f"requests from other web pages (Sec-Fetch-Site: {fetched_from}) are refused"
    return None


def _strict_cookie(value: bytes) -> bytes:
    """A Set-Cookie value with SameSite=Strict and HttpOnly, whatever it said."""
    parts = [part.strip() for part in value.decode("latin-1").split(";")]
    kept = [part for part in parts[1:] if part.lower().split("=")[0] not in ("samesite", "httponly")]
    return "; ".join([parts[0], *kept, "HttpOnly", "SameSite=Strict"]).encode("latin-1")


def secured_headers(path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An answer's headers as the rules above want them: no CORS headers, strict cookies, nosniff and the policy
    for `path`, and Gradio's file route as an octet-stream attachment."""
    attachment = path.startswith(ATTACHMENT_PREFIXES)
    secured, disposition = [], b"attachment"
    for name, value in headers:
        name = name.lower()
        if name.startswith(b"access-control-") or name in (b"x-content-type-options", b"content-security-policy"):
            continue
        if name == b"content-disposition" and attachment:  # Gradio's names the file: kept, but never inline
            disposition = b"attachment" + value.partition(b";")[1] + value.partition(b";")[2]
            continue
        if name == b"content-type" and attachment:
            continue
        secured.append((name, _strict_cookie(value) if name == b"set-cookie" else value))
    policy = FILE_POLICY if path.startswith(FILE_PREFIXES) else PAGE_POLICY
    secured += [(b"x-content-type-options", b"nosniff"), (b"content-security-policy", policy.encode())]
    if attachment:
        secured += [(b"content-disposition", disposition), (b"content-type", b"application/octet-stream")]
    return secured


class BrowserGuard:
    """ASGI middleware applying `refusal` to every request and `secured_headers` to every answer."""

    def __init__(self, app, *, bound_host: str, allowed_hosts: Sequence[str] = ()):
        self.app = app
        self.names = server_names(bound_host, allowed_hosts)
        self.every_interface = bound_host in EVERY_INTERFACE

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        refused = refusal(scope.get("method", "GET"), headers, self.names, self.every_interface)
        if refused:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            body = json.dumps({"detail": refused}).encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": secured_headers(scope["path"], [(b"content-type", b"application/json"),
                                                                   (b"content-length", str(len(body)).encode())])})
            return await send({"type": "http.response.body", "body": body})
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)

        async def secured(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": secured_headers(scope["path"], message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, secured)
