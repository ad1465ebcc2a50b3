"""The project's current labels as arrays aligned to a list of image ids: what a round and the review queue read
of them."""

from __future__ import annotations

import numpy as np

from storage import Store


def label_arrays(store: Store, image_ids: np.ndarray, class_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The current labels aligned to `image_ids` (N,): (label column in `class_ids`, -1 = none, "none of these" or
    an unknown class; human (N,) bool, the label came from a person)."""
    image_ids = np.asarray(image_ids)
    column_of = {class_id: column for column, class_id in enumerate(class_ids)}
    labels = np.full(len(image_ids), -1)
    human = np.zeros(len(image_ids), bool)
    snapshot = store.label_snapshot()
    if not len(image_ids):
        return labels, human
    # Matched by a sort, not a dict of every image id (a second at a million images); labels are far fewer.
    order = np.argsort(image_ids, kind="stable")
    rows = order[np.searchsorted(image_ids, snapshot["image_id"], sorter=order).clip(0, len(image_ids) - 1)]
    for row, image_id, class_id, is_human in zip(rows.tolist(), snapshot["image_id"], snapshot["class_id"],
                                                 snapshot["human"]):
        if image_ids[row] == image_id:
            labels[row] = column_of.get(int(class_id), -1)
            human[row] = is_human
    return labels, human


def none_of_these_rows(store: Store, image_ids: np.ndarray) -> np.ndarray:
    """Rows of `image_ids` a person labeled "none of these"."""
    snapshot = store.label_snapshot()
    none_ids = snapshot["image_id"][snapshot["human"] & (snapshot["class_id"] < 0)]
    return np.flatnonzero(np.isin(image_ids, none_ids))
