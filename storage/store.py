"""The one object that talks to a project's DuckDB file.

Every SQL statement of labelloop lives in this package: the connection, schema and meta here, the queries by
subject in images.py, labels.py and rounds.py. Functions take and return plain Python values, numpy
arrays or Arrow tables. Bulk writes go through registered Arrow tables (`INSERT ... SELECT`), never row by row.
"""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import pyarrow as pa

from storage.audits import AuditQueries
from storage.exports import ExportQueries
from storage.gallery import GalleryQueries
from storage.images import ImageQueries
from storage.labels import LabelQueries
from storage.layouts import LayoutQueries
from storage.rounds import RoundQueries
from storage.schema import MIGRATIONS, SCHEMA_VERSION
from storage.scores import ScoreQueries
from storage.team import TeamQueries

# The project's kind (meta `label_kind`), fixed at init and never mixed: a label is one class (or "none of these"), or
# a set of tags with which tags a person looked at (engine/learning/tags.py). Projects made before it are single-label.
SINGLE_LABEL, MULTI_LABEL = "single-label", "multi-label"


class ProjectLocked(Exception):
    """The database file is held by another process (DuckDB allows one writer per file)."""

    def __init__(self, path: Path, pid: int | None, command: str | None):
        self.path, self.pid, self.command = path, pid, command
        holder = f"process {pid}" if pid else "another process"
        if command:
            holder += f" ({command})"
        super().__init__(f"{path} is in use by {holder}; stop it, or use the page it serves, then try again")


class ProjectUnreadable(Exception):
    """The database file cannot be used: not a DuckDB file, truncated, corrupt, or made by a newer labelloop."""


def _lock_holder(message: str) -> tuple[int | None, str | None]:
    match = re.search(r"\(PID (\d+)\)", message)
    if not match:
        return None, None
    pid = int(match.group(1))
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
        command = command if len(command) <= 80 else command[:77] + "..."
    except OSError:
        command = None
    return pid, command


class Store(ImageQueries, LabelQueries, RoundQueries, ExportQueries, GalleryQueries, ScoreQueries, LayoutQueries,
            AuditQueries, TeamQueries):

    """A project's database connection. Build one explicitly at start-up and pass it in; `:memory:` in unit tests."""
    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        # The server's worker threads share one connection; DuckDB connections are not safe for concurrent use.
        self._lock = threading.RLock()
        self._in_snapshot = False  # a snapshot's writes join its one transaction (see snapshot())
        self._migrate()

    @classmethod
    def open(cls, path: str | Path) -> "Store":
        path = Path(path)
        try:
            con = duckdb.connect(str(path))
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise ProjectLocked(path, *_lock_holder(str(error))) from None
            raise ProjectUnreadable(f"{path} is not a readable labelloop database (empty, truncated or "
                                    "corrupt); restore it from a backup") from error  # or a read-only disk
        except duckdb.Error:
            raise ProjectUnreadable(f"{path} is not a readable labelloop database (corrupt); restore it from a "
                                    "backup") from None
        try:
            return cls(con)
        except ProjectUnreadable:
            con.close()
            raise
        except (duckdb.Error, ValueError) as error:  # the file opened, but its tables are not ours or are damaged
            con.close()
            raise ProjectUnreadable(f"{path} cannot be read as a labelloop database ({type(error).__name__}); "
                                    "restore it from a backup") from error

    @classmethod
    def memory(cls) -> "Store":
        return cls(duckdb.connect(":memory:"))

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def checkpoint(self) -> None:
        with self._lock:
            self._con.execute("CHECKPOINT")

    @contextmanager
    def snapshot(self) -> Iterator["Store"]:
        """A Store on a second connection to the same database that reads it as it was at one moment (one
        transaction), for work beside this one's (a CLI command the server answers): it neither waits for nor
        blocks this connection's users, and their writes never show through halfway. What it writes (an export's
        record) commits at its end."""
        with self._lock:
            reader = Store(self._con.cursor())
        try:
            reader._con.execute("BEGIN TRANSACTION")
            reader._con.execute("SELECT count(*) FROM meta").fetchall()  # DuckDB takes the snapshot at a first read
            reader._in_snapshot = True
            yield reader
            reader._con.execute("COMMIT")
        finally:
            reader.close()  # closing rolls back what did not commit

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if self._in_snapshot:
                yield self._con
                return
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    @contextmanager
    def _registered(self, name: str, table: pa.Table) -> Iterator[None]:
        """Expose an Arrow table to SQL as `name`; enter before `transaction()` so it outlives a rollback."""
        with self._lock:
            self._con.register(name, table)
            try:
                yield
            finally:
                self._con.unregister(name)

    def _query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params or []).fetchall()

    def _arrow(self, sql: str, params: Sequence | None = None) -> pa.Table:
        with self._lock:
            return self._con.sql(sql, params=params).to_arrow_table() if params else self._con.sql(sql).to_arrow_table()

    def _migrate(self) -> None:
        with self._lock:
            exists = self._con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'").fetchall()[0][0]
            version = 0
            if exists:
                row = self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
                version = int(json.loads(row[0][0])) if row else 0
            if version > SCHEMA_VERSION:
                raise ProjectUnreadable(f"the database was made by a newer labelloop (schema version {version}; "
                                        f"this one reads up to {SCHEMA_VERSION}); upgrade labelloop")
            for number in range(version, SCHEMA_VERSION):
                with self.transaction() as con:
                    for statement in MIGRATIONS[number]:
                        con.execute(statement)
                    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [json.dumps(number + 1)])

    def schema_version(self) -> int:
        return int(self.get_meta("schema_version"))

    def get_meta(self, key: str, default=None):
        rows = self._query("SELECT value FROM meta WHERE key = ?", [key])
        return json.loads(rows[0][0]) if rows else default

    def is_multi_label(self) -> bool:
        """Whether the project labels each image with a set of tags (init --multi-label; meta `label_kind`)."""
        return self.get_meta("label_kind", SINGLE_LABEL) == MULTI_LABEL

    def set_meta(self, **values) -> None:
        with self.transaction() as con:
            for key, value in values.items():
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, json.dumps(value)])

    def add_classes(self, names: Sequence[str], prompts: Sequence[list[str] | None]) -> None:
        """Append classes; each takes the lowest digit 1-9 no class has as its key, while one is free."""
        with self.transaction() as con:
            next_id = con.execute("SELECT coalesce(max(id) + 1, 0) FROM classes").fetchall()[0][0]
            taken = {key for (key,) in con.execute("SELECT hotkey FROM classes").fetchall()}
            free_digits = iter([digit for digit in "123456789" if digit not in taken])
            for offset, (name, class_prompts) in enumerate(zip(names, prompts)):
                con.execute("INSERT INTO classes (id, name, prompts, hotkey) VALUES (?, ?, ?, ?)",
                            [next_id + offset, name, class_prompts, next(free_digits, None)])
            self._gallery_stale(con)  # the shown round changes: the page shows zero-shot until it reruns

    def rename_class(self, class_id: int, name: str) -> None:
        with self.transaction() as con:
            con.execute("UPDATE classes SET name = ? WHERE id = ?", [name, class_id])

    def set_class_keys(self, keys: dict[int, str | None]) -> None:
        """Give classes (by id) their keys (None = no key) in one step; the caller checks no two classes share one."""
        with self.transaction() as con:
            for class_id, key in keys.items():
                con.execute("UPDATE classes SET hotkey = ? WHERE id = ?", [key, class_id])

    def set_class_prompts(self, class_id: int, prompts: list[str] | None) -> None:
        with self.transaction() as con:
            con.execute("UPDATE classes SET prompts = ? WHERE id = ?", [prompts, class_id])

    def remove_class(self, class_id: int) -> None:
        """Drop a class and the machine labels naming it; the caller checks no human label names it."""
        with self.transaction() as con:
            con.execute("DELETE FROM labels WHERE class_id = ? AND source = 'pseudo'", [class_id])
            con.execute("DELETE FROM classes WHERE id = ?", [class_id])
            self._gallery_stale(con)

    def human_label_count(self, class_id: int) -> int:
        return self._query("SELECT count(*) FROM labels WHERE class_id = ? AND source = 'human'", [class_id])[0][0]

    def round_class_ids(self, round_id: int) -> list[int] | None:
        """The class ids a round predicted over (None when it wrote no predictions)."""
        rows = self._query("SELECT class_ids FROM predictions WHERE round = ? LIMIT 1", [round_id])
        return list(rows[0][0]) if rows else None

    def classes(self) -> list[dict]:
        rows = self._query("SELECT id, name, prompts, hotkey FROM classes ORDER BY id")
        return [{"id": cid, "name": name, "prompts": prompts, "key": key} for cid, name, prompts, key in rows]

    def header_counts(self) -> dict:
        """Images by status and labels by source: what the page's header polls, tens of ms at a million images
        (`counts` adds duplicates and predictions, each a scan of a million rows)."""
        images = dict(self._query("SELECT status, count(*) FROM images GROUP BY status"))
        labels = dict(self._query("SELECT source, count(*) FROM labels GROUP BY source"))
        none_of_these = self._query("""SELECT count(*) FROM labels
                                        WHERE source = 'human' AND class_id IS NULL AND tags IS NULL""")[0][0]
        return {
            "images": {status: images.get(status, 0) for status in ("ok", "error", "missing")},
            "labels": {"human": labels.get("human", 0), "pseudo": labels.get("pseudo", 0),
                       "none_of_these": none_of_these},
        }

    def counts(self) -> dict:
        predictions = dict(self._query("SELECT source, count(DISTINCT image_id) FROM predictions GROUP BY source"))
        duplicates = self._query("""SELECT coalesce(sum(n - 1), 0) FROM (
            SELECT count(*) AS n FROM images WHERE status = 'ok' GROUP BY sha256)""")[0][0]
        rounds = self._query("""SELECT id, started_at, finished_at, metrics FROM rounds
                                WHERE status = 'done' ORDER BY id DESC LIMIT 1""")
        last_round = None
        if rounds:
            rid, started, finished, metrics = rounds[0]
            last_round = {"id": rid, "started_at": str(started), "finished_at": str(finished),
                          "metrics": json.loads(metrics) if metrics else {}}
        header = self.header_counts()
        return {
            "images": header["images"],
            "duplicates": int(duplicates),
            "labels": header["labels"],
            "changed_since_labelled": len(self.changed_since_labelled()),
            "predictions": {"zeroshot": predictions.get("zeroshot", 0), "teacher": predictions.get("teacher", 0)},
            "last_round": last_round,
        }
