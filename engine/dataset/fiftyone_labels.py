"""The labels of a `--format fiftyone` export: FiftyOne's `FiftyOneImageClassificationDataset`, a `data/` folder of
images and a `labels.json` that FiftyOne's importer reads as

    {"classes": [name, ...],
     "labels": {key: {"label": index into classes, "confidence": c, "attributes": {name: value}} or null}}

where `key` is an image's file name in `data/` without its extension and null is an image without a label ("none of
these"). Each attribute becomes a field of the sample's `Classification`; `logits` is a field `Classification` has
of its own, read by FiftyOne's brain (hardness, mistakenness) through a softmax.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import pyarrow as pa

from engine.sources import Source

LABELS_FILE = "labels.json"
DATA_FOLDER = "data"
_LOG_OF_ZERO = round(math.log(np.finfo(np.float32).tiny), 4)  # a probability that underflowed to 0 has no log


def label_key(file_name: str) -> str:
    """What FiftyOne keys an image in `data/` by: its file name without the extension."""
    return os.path.splitext(file_name)[0]


def class_logits(probabilities: pa.Table, class_ids: Sequence[int]) -> dict[str, list[float]]:
    """path -> the natural log of its prediction's class probabilities in the order of `class_ids` (the project's),
    so that a softmax gives the probabilities back. `probabilities` has columns path, class_ids and probs
    (`Store.shown_class_probabilities`); a prediction over another set of classes (made before a class changed) has
    none."""
    wanted = sorted(class_ids)
    logits = {}
    for path, predicted_ids, probs in zip(*(probabilities[name].to_pylist() for name in ("path", "class_ids",
                                                                                       "probs"))):
        if sorted(predicted_ids) != wanted:
            continue
        by_class = dict(zip(predicted_ids, probs))
        logits[path] = [round(math.log(by_class[class_id]), 4) if by_class[class_id] > 0 else _LOG_OF_ZERO
                        for class_id in class_ids]
    return logits


def labels_document(rows: list[dict], keys: list[str], classes: list[str],
                    logits: dict[str, list[float]]) -> dict:
    """labels.json for `rows` (dicts of path, label (None: none of these), source, confidence and round), the
    image of rows[i] being keys[i] in `data/`. Each label carries its confidence (null for a person's), and its
    source and round as attributes; a machine label also carries its prediction's `logits` where known."""
    index = {name: i for i, name in enumerate(classes)}

    def entry(row: dict) -> dict | None:
        if row["label"] is None:
            return None
        attributes = {"source": row["source"], "round": row["round"]}
        if row["source"] != Source.HUMAN and row["path"] in logits:
            attributes["logits"] = logits[row["path"]]
        return {"label": index[row["label"]], "confidence": row["confidence"], "attributes": attributes}

    return {"classes": list(classes), "labels": {key: entry(row) for key, row in zip(keys, rows)}}
