"""SQL for the record of exports (mixed into Store)."""

from __future__ import annotations

import json


class ExportQueries:
    def record_export(self, *, fmt: str, path: str, filters: dict, counts: dict) -> int:
        """Append one export to the record; `filters` and `counts` are stored as JSON. Returns its id."""
        with self.transaction() as con:
            rows = con.execute("INSERT INTO exports (format, path, filters, counts) VALUES (?, ?, ?, ?) RETURNING id",
                               [fmt, path, json.dumps(filters), json.dumps(counts)]).fetchall()
        return rows[0][0]

    def exports(self, limit: int = 20) -> list[dict]:
        """The newest `limit` exports, newest first."""
        rows = self._query("""SELECT id, created_at, format, path, filters, counts FROM exports
                              ORDER BY id DESC LIMIT ?""", [limit])
        return [{"id": eid, "created_at": created, "format": fmt, "path": path, "filters": json.loads(filters),
                 "counts": json.loads(counts)} for eid, created, fmt, path, filters, counts in rows]

    def human_labels_on_unusable_images(self) -> int:
        """Images a person labelled that are missing or unreadable now: no export can include them."""
        return self._query("""SELECT count(*) FROM labels l JOIN images i ON i.id = l.image_id
                              WHERE l.source = 'human' AND i.status <> 'ok'""")[0][0]
