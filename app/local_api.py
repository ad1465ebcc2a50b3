"""How a read-only CLI command answers while `labelloop serve` holds the project: DuckDB lets one process open the
file to write, so the command asks the server, which runs the same engine function (engine.session.read_only_commands)
on a snapshot of its connection and sends back the JSON the command prints from.

Who may ask: a process on this machine that can read the project's server file (engine.project.server_record: mode 0600,
the user who runs the server), sending its token in a header. A browser never may: a request with an Origin or
Sec-Fetch-Site header (every browser sends them; a script's fetch cannot remove them) is refused, so another web
page cannot drive this route even where it learnt the token, and the token never appears in a URL.
"""

from __future__ import annotations

import hmac
import http.client
import inspect
import ipaddress
import json

from engine.errors import LabelloopError, as_refusal
from engine.project.server_record import ServerRecord

ROUTE = "/labelloop/cli"
TOKEN_HEADER = "X-Labelloop-Token"
CONNECT_SECONDS = 10.0  # to reach the server; the answer itself may take as long as the work (an export)


def refusal(headers, client_host: str | None, token: str, bound_host: str | None) -> str | None:
    """Why a request to ROUTE is refused (None: it may pass): sent by a browser, from another machine, or without
    the server's token."""
    if "origin" in headers or "sec-fetch-site" in headers:
        return "requests from web pages are refused"
    if not _on_this_machine(client_host, bound_host):
        return "only commands on the server's own machine may ask"
    given = headers.get(TOKEN_HEADER.lower(), "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return f"missing or wrong {TOKEN_HEADER}"
    return None


def _on_this_machine(client_host: str | None, bound_host: str | None) -> bool:
    """A loopback client, or one at the one address the server binds (this machine reaching its own address)."""
    try:
        return ipaddress.ip_address(client_host or "").is_loopback or client_host == bound_host
    except ValueError:
        return False


def cli_route(workspace, token: str, bound_host: str):
    """`POST ROUTE` with JSON {"command": one of engine.session.read_only_commands.READ_ONLY_COMMANDS, "options":
    {...}}: 200 with {"result": ...}, 400 with {"error": one line} for what the command refuses, 403 for a refused
    caller."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from engine.project.folder import Project
    from engine.session.read_only_commands import READ_ONLY_COMMANDS

    def answer(command: str, options: dict) -> str:
        project = workspace.project
        with project.store.snapshot() as store:
            result = READ_ONLY_COMMANDS[command](Project(project.root, store), **options)
        return json.dumps({"result": result}, default=str)

    async def handle(request: Request) -> Response:
        client = request.client.host if request.client else None
        refused = refusal(request.headers, client, token, bound_host)
        if refused:
            return JSONResponse({"error": refused}, status_code=403)
        try:
            asked = json.loads(await request.body())
            command, options = asked["command"], asked["options"]
            inspect.signature(READ_ONLY_COMMANDS[command]).bind(None, **options)
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not a read-only labelloop command; upgrade the CLI to the server's "
                                          "labelloop"}, status_code=400)
        try:
            body = await run_in_threadpool(answer, command, options)
        except Exception as error:  # a refusal, or a full or read-only disk: told as the CLI tells it alone
            told = as_refusal(error)
            if told is None:
                raise
            return JSONResponse({"error": str(told)}, status_code=400)
        return Response(body, media_type="application/json")

    return Route(ROUTE, handle, methods=["POST"])


def ask_server(server: ServerRecord, command: str, options: dict):
    """The result of `command` run by the server that holds the project, or its refusal as a LabelloopError."""
    body = json.dumps({"command": command, "options": options})
    connection = http.client.HTTPConnection(server.host, server.port, timeout=CONNECT_SECONDS)
    try:
        connection.connect()
        connection.sock.settimeout(None)
        connection.request("POST", ROUTE, body=body, headers={TOKEN_HEADER: server.token,
                                                               "Content-Type": "application/json"})
        response = connection.getresponse()
        status, payload = response.status, response.read()
    except OSError as error:
        raise LabelloopError(f"the page at {server.url} (process {server.pid}) holds this project but did not answer "
                             f"({error.strerror or error}); try again, or stop it first") from None
    finally:
        connection.close()
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    if status == 200 and "result" in answer:
        return answer["result"]
    if status == 400 and "error" in answer:  # the command's own refusal, as it reads without a server
        raise LabelloopError(answer["error"])
    raise LabelloopError(f"the page at {server.url} (process {server.pid}) refused the command "
                         f"({answer.get('error', f'HTTP {status}')}); stop it and run the command again")
