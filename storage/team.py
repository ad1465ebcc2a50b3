"""SQL for teams: the people of a project, each person's own labels side by side, reviews, and the overlap draw
(mixed into Store)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa


class TeamQueries:
    def people(self) -> list[dict]:
        """Every person of the project, by name: name, role, labels (how many images they labelled)."""
        rows = self._query("""SELECT p.name, p.role, count(l.image_id) FROM people p
                              LEFT JOIN person_labels l ON l.person = p.name GROUP BY p.name, p.role ORDER BY p.name""")
        return [{"name": name, "role": role, "labels": count} for name, role, count in rows]

    def set_people(self, people: Sequence[tuple[str, str]]) -> None:
        """Add these (name, role) people, or give those already there the role named."""
        with self.transaction() as con:
            for name, role in people:
                con.execute("INSERT OR REPLACE INTO people (name, role) VALUES (?, ?)", [name, role])

    def remove_person(self, name: str) -> None:
        """Remove a person; the caller checks they have no labels."""
        with self.transaction() as con:
            con.execute("DELETE FROM people WHERE name = ?", [name])

    def set_person_labels(self, image_ids: Sequence[int], class_ids: Sequence[int | None], *, person: str) -> int:
        """Record `person`'s own label of each image (None = none of these) for its content now, beside the
        others' labels of it; returns how many were new or changed."""
        batch = pa.table({"image_id": pa.array(list(image_ids), pa.int64()),
                          "class_id": pa.array(list(class_ids), pa.int32())})
        with self._registered("batch_person", batch), self.transaction() as con:
            changed = con.execute("""INSERT OR REPLACE INTO person_labels (image_id, person, class_id, sha256)
                SELECT b.image_id, ?, b.class_id, i.sha256 FROM batch_person b JOIN images i ON i.id = b.image_id
                LEFT JOIN person_labels l ON l.image_id = b.image_id AND l.person = ?
                WHERE l.image_id IS NULL OR l.class_id IS DISTINCT FROM b.class_id OR l.sha256 IS DISTINCT FROM i.sha256
                RETURNING image_id""", [person, person]).fetchall()
        return len(changed)

    def person_labels(self) -> pa.Table:
        """Every person's label of every usable image: image_id, person, class_id (NULL = none of these), by image
        and person."""
        return self._arrow("""SELECT l.image_id, l.person, l.class_id FROM person_labels l
                              JOIN images i ON i.id = l.image_id WHERE i.status = 'ok'
                              ORDER BY l.image_id, l.person""")

    def person_label_rows(self) -> pa.Table:
        """One row per (usable image, person): path, person, label (class name, '' = none of these), labelled_at
        (UTC, ISO 8601), by path and person."""
        return self._arrow("""SELECT i.relpath AS path, l.person, coalesce(c.name, '') AS label,
                                     strftime(l.labelled_at, '%Y-%m-%dT%H:%M:%S') AS labelled_at
                              FROM person_labels l JOIN images i ON i.id = l.image_id
                              LEFT JOIN classes c ON c.id = l.class_id
                              WHERE i.status = 'ok' ORDER BY i.relpath, l.person""")

    def person_label(self, image_id: int, person: str) -> tuple[bool, int | None]:
        """(whether `person` labelled the image, their class id)."""
        rows = self._query("SELECT class_id FROM person_labels WHERE image_id = ? AND person = ?", [image_id, person])
        return (True, rows[0][0]) if rows else (False, None)

    def add_review(self, image_id: int, *, labeler: str, reviewer: str, labelled_class: int | None,
                   decided_class: int | None, approved: bool) -> None:
        with self.transaction() as con:
            con.execute("""INSERT INTO reviews (image_id, labeler, reviewer, labelled_class, decided_class, approved)
                           VALUES (?, ?, ?, ?, ?, ?)""",
                        [image_id, labeler, reviewer, labelled_class, decided_class, approved])

    def reviewed_image_ids(self) -> np.ndarray:
        """Ids of the images a reviewer decided (their label is that decision, not the people's consensus)."""
        return self._arrow("SELECT DISTINCT image_id FROM reviews ORDER BY image_id").column("image_id").to_numpy()

    def review_counts(self) -> dict[str, dict]:
        """labeler -> {"reviewed", "approved", "corrected"}: the reviews of each person's labels."""
        rows = self._query("""SELECT labeler, count(*), count(*) FILTER (WHERE approved) FROM reviews
                              GROUP BY labeler ORDER BY labeler""")
        return {name: {"reviewed": total, "approved": approved, "corrected": total - approved}
                for name, total, approved in rows}

    def usable_image_ids(self) -> np.ndarray:
        return self._arrow("SELECT id FROM images WHERE status = 'ok' ORDER BY id").column("id").to_numpy()

    def set_overlap_images(self, image_ids: Sequence[int]) -> None:
        """Make these images the overlap (each labelled by at least two people), replacing an earlier draw."""
        wanted = pa.table({"image_id": pa.array(list(image_ids), pa.int64())})
        with self._registered("drawn_overlap", wanted), self.transaction() as con:
            con.execute("DELETE FROM overlap_images")
            con.execute("INSERT INTO overlap_images SELECT image_id FROM drawn_overlap")

    def overlap_image_ids(self) -> np.ndarray:
        return self._arrow("SELECT image_id FROM overlap_images ORDER BY image_id").column("image_id").to_numpy()
