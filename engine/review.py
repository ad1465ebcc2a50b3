"""The review queue of a project: gathers predictions, labels and embeddings, ranks them with `engine.queue`."""

from __future__ import annotations

import numpy as np

from engine.audit import pending_audit
from engine.errors import LabelloopError
from engine.labels import label_arrays
from engine.queue import AUDIT, rank_review_queue
from storage import Store


def review_order(store: Store, k: int) -> tuple[np.ndarray, list[str], dict]:
    """The `k` image ids a person should look at next, best first, their reasons, and per pick the arrays the
    CLI prints from (teacher and zero-shot probabilities, label, whether a person gave it, class ids)."""
    if k < 1:
        raise LabelloopError(f"--k must be at least 1, got {k}")
    model_id = store.get_meta("model_id")
    zero_shot = store.prediction_matrix(0)
    if model_id is None or zero_shot is None:
        raise LabelloopError("nothing to review yet; run `labelloop ingest PROJECT` first")
    latest = store.prediction_matrix(store.shown_round()) or zero_shot  # what the page shows
    image_ids, class_ids, teacher = latest
    # Rank the images that have a teacher prediction, a zero-shot prediction and a vector (all, after ingest).
    keep = np.isin(image_ids, zero_shot[0]) & np.isin(image_ids, store.embedded_ids(model_id))
    image_ids, teacher = image_ids[keep], teacher[keep]
    zero = zero_shot[2][np.searchsorted(zero_shot[0], image_ids)]  # both by image id
    embeddings = _StoredVectors(store, model_id, image_ids)
    labels, human = label_arrays(store, image_ids, class_ids)
    mistake_ids, _ = possible_label_mistakes(store)
    row_of = {image_id: row for row, image_id in enumerate(image_ids.tolist())}
    mistakes = np.array([row_of[i] for i in mistake_ids.tolist() if i in row_of], int)
    # the audit's drawn images waiting for a label come first: they are what the estimates and the prior wait for
    audit_picks = np.array([row_of[i] for i in pending_audit(store) if i in row_of], int)
    indices, reasons = rank_review_queue(teacher, zero, labels, human, embeddings, k=k, mistakes=mistakes,
                                         audit_picks=audit_picks)
    picked = {"teacher": teacher[indices], "zero_shot": zero[indices], "label": labels[indices],
              "human": human[indices], "class_ids": class_ids}
    return image_ids[indices], reasons, picked


class _StoredVectors:
    """The (N, D) vectors of `image_ids`, indexed like an array but read from the project only where the queue
    looks (its pool of a few thousand and the human-labeled images): all of them are 2 GB at a million images."""

    def __init__(self, store: Store, model_id: str, image_ids: np.ndarray):
        self.store, self.model_id, self.image_ids = store, model_id, image_ids

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        return self.store.vectors_of(self.model_id, self.image_ids[np.flatnonzero(rows) if rows.dtype == bool
                                                                   else rows])


def possible_label_mistakes(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, normalized margin) of the person's labels that the shown round's out-of-sample students predict
    as another class, most likely mistaken first (storage.scores.LABEL_MISTAKES, the one definition). Empty before
    a round has cross-fitted (it needs at least two human labels)."""
    return store.label_mistakes(store.shown_round())


FITS_NO_CLASS = 0.5  # outlier score from which the page's "fits no class" filter shows an image


def fits_no_class(store: Store, *, threshold: float = FITS_NO_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, outlier scores) of the images whose outlier score in the shown round is at least `threshold`,
    most outlying first; empty before the first round."""
    if not 0.0 <= threshold <= 1.0:
        raise LabelloopError(f"the outlier threshold must be between 0 and 1, got {threshold}")
    image_ids, scores = store.outlier_scores(store.shown_round())
    keep = scores >= threshold
    order = np.argsort(-scores[keep], kind="stable")
    return image_ids[keep][order], scores[keep][order]


def review_queue(store: Store, k: int) -> list[dict]:
    """The `k` images a person should look at next, best first: path, predicted class, confidence, reason (an audit
    image waiting for its label shows no prediction: predicted, confidence, runner_up and zero_shot null); for a
    person's label the round cross-fitted, also how students that never trained on it judge the image
    (`without_label`: predicted class and confidence; the shown prediction holds the label itself)."""
    image_ids, reasons, picked = review_order(store, k)
    class_ids = picked["class_ids"]
    names = {c["id"]: c["name"] for c in store.classes()}
    relpaths = store.relpaths()
    crossfit = store.crossfit_matrix(store.shown_round())
    judged = {} if crossfit is None else {image_id: row for row, image_id in enumerate(crossfit[0].tolist())}
    queue = []
    for row, (image_id, reason) in enumerate(zip(image_ids.tolist(), reasons)):
        if reason == AUDIT:  # blind until a person labels it (engine.audit): no prediction to anchor on
            queue.append({"path": relpaths[image_id], "predicted": None, "confidence": None, "runner_up": None,
                          "zero_shot": None, "reason": reason})
            continue
        probs = picked["teacher"][row]
        order = np.argsort(-probs)
        item = {"path": relpaths[image_id], "predicted": names[class_ids[order[0]]],
                "confidence": round(float(probs[order[0]]), 4),
                "runner_up": names[class_ids[order[1]]] if len(order) > 1 else None,
                "zero_shot": names[class_ids[int(picked["zero_shot"][row].argmax())]], "reason": reason}
        if picked["label"][row] >= 0:
            item["label"] = names[class_ids[picked["label"][row]]]
            item["label_source"] = "human" if picked["human"][row] else "pseudo"
        if picked["human"][row] and image_id in judged:
            without = crossfit[2][judged[image_id]]
            item["without_label"] = {"predicted": names.get(crossfit[1][int(without.argmax())], "?"),
                                     "confidence": round(float(without.max()), 4)}
        queue.append(item)
    return queue
