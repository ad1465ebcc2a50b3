"""SQL for the map: 2-D layouts of a model's embeddings, and each laid-out image with what the map colours it by
(mixed into Store)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from storage.schema import embeddings_table

LAYOUT_METHODS = ("pca", "umap")


class LayoutQueries:
    def embeddings_key(self, model_id: str) -> str:
        """What a layout of `model_id` was computed over: the count of usable embedded images and an
        order-free hash of their ids and content hashes. Any image added, removed or changed gives a new key."""
        if self.model_dim(model_id) is None:
            return "0:0"
        count, digest = self._query(f"""SELECT count(*), coalesce(bit_xor(hash(i.id, i.sha256)), 0)
                                        FROM {embeddings_table(model_id)} e JOIN images i ON i.id = e.image_id
                                        WHERE i.status = 'ok'""")[0]
        return f"{count}:{digest}"

    def save_layout(self, model_id: str, method: str, embeddings_key: str, image_ids: np.ndarray, xy: np.ndarray,
                    *, seconds: float | None = None) -> None:
        """Replace the `method` layout of `model_id`: `xy` (N, 2) for `image_ids` (N,), in one transaction."""
        if method not in LAYOUT_METHODS:
            raise ValueError(f"unknown layout method {method!r}; valid: {', '.join(LAYOUT_METHODS)}")
        xy = np.asarray(xy, np.float32)
        points = pa.table({"image_id": pa.array(np.asarray(image_ids, np.int64)),
                           "x": pa.array(xy[:, 0]), "y": pa.array(xy[:, 1])})
        with self._registered("layout_batch", points), self.transaction() as con:
            con.execute("DELETE FROM layout_points WHERE model_id = ? AND method = ?", [model_id, method])
            con.execute("DELETE FROM layouts WHERE model_id = ? AND method = ?", [model_id, method])
            con.execute("""INSERT INTO layout_points SELECT ?, ?, image_id, x, y FROM layout_batch""",
                        [model_id, method])
            con.execute("INSERT INTO layouts (model_id, method, embeddings_key, seconds) VALUES (?, ?, ?, ?)",
                        [model_id, method, embeddings_key, seconds])

    def layout_key(self, model_id: str, method: str) -> str | None:
        """The embeddings key the stored `method` layout of `model_id` was computed over; None if there is none."""
        rows = self._query("SELECT embeddings_key FROM layouts WHERE model_id = ? AND method = ?", [model_id, method])
        return rows[0][0] if rows else None

    def map_points(self, model_id: str, method: str, round_id: int) -> dict[str, np.ndarray]:
        """Every image of the stored layout that is still usable, by image id, as arrays: image_id, x, y, shown
        (the class it shows: the person's label where there is one, else the prediction of `round_id`, else
        zero-shot; -1 = none of these or not predicted), confidence (of that prediction; NaN for a person's
        label), source ('human', 'pseudo' or '' for unlabeled) and outlier (the round's outlier score; NaN
        without one)."""
        self._build_gallery(round_id)  # the gallery's kept rows: the map shows exactly what the gallery shows
        table = self._arrow("""
            SELECT p.image_id, p.x, p.y,
                   coalesce(CASE WHEN s.label_source = 'human' THEN s.label ELSE s.predicted END, -1) AS shown,
                   CASE WHEN s.label_source = 'human' THEN NULL ELSE s.confidence END AS confidence,
                   coalesce(s.label_source, '') AS source, o.score AS outlier
            FROM layout_points p JOIN gallery_rows s ON s.image_id = p.image_id
            LEFT JOIN outlier_scores o ON o.image_id = p.image_id AND o.round = $round
            WHERE p.model_id = $model AND p.method = $method AND s.status = 'ok'
            ORDER BY p.image_id""", {"round": round_id, "model": model_id, "method": method})
        return {"image_id": table.column("image_id").to_numpy(),
                "x": table.column("x").to_numpy(), "y": table.column("y").to_numpy(),
                "shown": table.column("shown").to_numpy().astype(np.int64),
                "confidence": table.column("confidence").to_numpy(zero_copy_only=False).astype(np.float32),
                "source": np.asarray(table.column("source").to_pylist(), dtype=object),
                "outlier": table.column("outlier").to_numpy(zero_copy_only=False).astype(np.float32)}
