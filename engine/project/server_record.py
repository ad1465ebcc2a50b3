"""The file `labelloop serve` leaves in the project folder while it holds the project: its process, the address
the CLI reaches it at, and a random token that the read-only commands send to have the server answer them
(app.local_api). Only the user who runs the server can read it (mode 0600); a record whose process is gone, or
that anyone else could have written, is ignored.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

SERVER_FILE = "server.json"
_ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # bound to all: reached on this machine's own


@dataclass(frozen=True)
class ServerRecord:
    pid: int
    host: str  # the address a command on this machine connects to (loopback when the server binds every address)
    port: int
    token: str

    @property
    def netloc(self) -> str:
        """host:port as a URL and an HTTP Host header write it (an IPv6 address in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_server_record(root: Path, *, host: str, port: int, token: str) -> ServerRecord:
    """Write this process's record, readable only by this user, replacing any earlier one in one step (the caller
    holds the project, so an earlier record is a dead server's). `host` is the address the server binds."""
    record = ServerRecord(pid=os.getpid(), host=_ANY_ADDRESS.get(host, host), port=port, token=token)
    temporary = root / f".{SERVER_FILE}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(asdict(record), file)
    os.replace(temporary, root / SERVER_FILE)
    return record


def remove_server_record(root: Path, record: ServerRecord) -> None:
    """Remove the record if it is still `record` (a newer server may have replaced it)."""
    if read_server_record(root, require_alive=False) == record:
        (root / SERVER_FILE).unlink(missing_ok=True)


def read_server_record(root: Path, *, require_alive: bool = True) -> ServerRecord | None:
    """The record of the server holding the project at `root`, or None: no record, an unreadable one, one this
    user does not own alone (anyone else could point the CLI at a server of theirs), or (require_alive) one whose
    process is gone."""
    path = root / SERVER_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, encoding="utf-8") as file:
            info = os.fstat(file.fileno())
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                return None
            record = ServerRecord(**json.load(file))
    except (OSError, ValueError, TypeError):
        return None
    if not (type(record.pid) is int and record.pid > 0 and type(record.port) is int
            and isinstance(record.host, str) and isinstance(record.token, str)):
        return None
    return record if not require_alive or _alive(record.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, though not a server of ours
        return True
    return True
