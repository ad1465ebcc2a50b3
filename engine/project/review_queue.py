"""The review queue of a project: gathers predictions, labels and embeddings, ranks them with
`engine.learning.review_ranking`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.project.audit import pending_audit
from engine.project.current_labels import label_arrays
from engine.errors import LabelloopError
from engine.learning.review_ranking import AUDIT, review_queue_order, uncertainty_order
from engine.sources import Source
from storage import Store


@dataclass(frozen=True)
class RankedImages:
    """The costly half of the review queue, ranked once per shown round (and zero-shot run): every image no person
    had labelled when that round read its labels, in review order (engine.learning.review_ranking.uncertainty_order).
    What a person did since only takes images out (`review_queue_ids`), so the order stays the one the person saw."""

    image_ids: np.ndarray  # (M,) best first
    reasons: np.ndarray  # (M,) object array of engine.learning.review_ranking's reasons
    ranked_ids: np.ndarray  # (N,) ascending: every image the ranking saw (a prediction of both kinds, a vector)
    labels_through: int  # the last label change the ranking counted (store.last_label_event_before_round)


@dataclass(frozen=True)
class ReviewQueue:
    """The review queue, best first: image ids (Q,) and their reasons (Q,), the same for the page and the CLI."""

    image_ids: np.ndarray
    reasons: np.ndarray

    def rank(self, image_id: int) -> tuple[int, str] | None:
        """(rank from 0, reason) of an image in the queue, else None."""
        if not 0 <= image_id < len(self._rank_of) or self._rank_of[image_id] < 0:
            return None
        rank = int(self._rank_of[image_id])
        return rank, self.reasons[rank]

    @cached_property
    def _rank_of(self) -> np.ndarray:
        """Rank by image id (-1: not queued): a page's tiles look up theirs in O(1), not in a dict of every image."""
        rank_of = np.full(int(self.image_ids.max(initial=-1)) + 1, -1, np.int64)
        rank_of[self.image_ids] = np.arange(len(self.image_ids))
        return rank_of


NO_QUEUE = ReviewQueue(np.zeros(0, np.int64), np.zeros(0, object))


@dataclass(frozen=True)
class _Predictions:
    """What the queue is ranked over: the images with a shown-round prediction, a zero-shot one and a vector."""

    shown_round: int
    image_ids: np.ndarray  # (N,) ascending
    class_ids: list[int]  # the classes of the probabilities' columns
    teacher: np.ndarray  # (N, C) the shown round's probabilities (what the page shows)
    zero_shot: np.ndarray  # (N, C)
    vectors: _StoredVectors


def _predictions(store: Store) -> _Predictions:
    model_id = store.get_meta("model_id")
    zero_shot = store.prediction_matrix(0)
    if model_id is None or zero_shot is None:
        raise LabelloopError("nothing to review yet; run `labelloop ingest PROJECT` first")
    shown_round = store.shown_round()
    image_ids, class_ids, teacher = store.prediction_matrix(shown_round) or zero_shot
    # Rank the images that have a teacher prediction, a zero-shot prediction and a vector (all, after ingest).
    keep = np.isin(image_ids, zero_shot[0]) & np.isin(image_ids, store.embedded_ids(model_id))
    image_ids, teacher = image_ids[keep], teacher[keep]
    zero = zero_shot[2][np.searchsorted(zero_shot[0], image_ids)]  # both by image id
    return _Predictions(shown_round, image_ids, class_ids, teacher, zero, _StoredVectors(store, model_id, image_ids))


def rank_images(store: Store) -> RankedImages:
    """Rank the project's images for review over the shown round's predictions and the labels that round read
    (before any round: none, so every person's label counts as given since). Seconds at a million images."""
    return _ranked(store, _predictions(store))


def _ranked(store: Store, predictions: _Predictions) -> RankedImages:
    labels_through = store.last_label_event_before_round(predictions.shown_round)
    human = np.isin(predictions.image_ids, store.human_labelled_through(labels_through))
    rows, reasons = uncertainty_order(predictions.teacher, predictions.zero_shot, human, predictions.vectors)
    return RankedImages(predictions.image_ids[rows], reasons, predictions.image_ids, labels_through)


def review_queue_ids(store: Store, ranked: RankedImages) -> ReviewQueue:
    """The review queue over `ranked`: the images changed since labelled first (their labels wait for a person),
    then the possible label mistakes, then the audit's drawn images waiting for a label (what the estimates and
    the prior wait for), then the ranked images; an image a person labelled since the ranking's round leaves it.
    A few milliseconds: call it at every read."""
    mistakes = possible_label_mistakes(store)[0]
    audit_picks = np.array(pending_audit(store), np.int64)
    image_ids, reasons = review_queue_order(
        ranked.image_ids, ranked.reasons, mistakes=mistakes[np.isin(mistakes, ranked.ranked_ids)],
        audit_picks=audit_picks[np.isin(audit_picks, ranked.ranked_ids)],
        labeled_since=store.human_labelled_after(ranked.labels_through), changed=store.changed_since_labelled())
    return ReviewQueue(image_ids, reasons)


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


def fits_no_class_mask(scores: np.ndarray, threshold: float = FITS_NO_CLASS) -> np.ndarray:
    """The one "fits no class" rule: (N,) bool, True where an outlier score (N,) is at least `threshold`. A NaN
    score (not scored yet: before the first round) fits no class never."""
    return np.asarray(scores) >= threshold


def fits_no_class(store: Store, *, threshold: float = FITS_NO_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, outlier scores) of the images whose outlier score in the shown round is at least `threshold`,
    most outlying first; empty before the first round."""
    if not 0.0 <= threshold <= 1.0:
        raise LabelloopError(f"the outlier threshold must be between 0 and 1, got {threshold}")
    image_ids, scores = store.outlier_scores(store.shown_round())
    keep = fits_no_class_mask(scores, threshold)
    order = np.argsort(-scores[keep], kind="stable")
    return image_ids[keep][order], scores[keep][order]


def review_queue(store: Store, k: int) -> list[dict]:
    """The first `k` images of the review queue (the page's "review queue" order), best first: path, predicted
    class, confidence, reason (an audit image waiting for its label, or a changed one the shown round has not
    predicted, shows no prediction: predicted, confidence, runner_up and zero_shot null); for a person's label the
    round cross-fitted, also how students that never trained on it judge the image (`without_label`: predicted
    class and confidence; the shown prediction holds the label itself)."""
    if k < 1:
        raise LabelloopError(f"--k must be at least 1, got {k}")
    predictions = _predictions(store)
    queue = review_queue_ids(store, _ranked(store, predictions))
    picked_ids, reasons = queue.image_ids[:k], queue.reasons[:k].tolist()
    class_ids, rows = predictions.class_ids, np.searchsorted(predictions.image_ids, picked_ids)
    predicted = np.isin(picked_ids, predictions.image_ids)  # a changed image has none until the next round
    labels, human = label_arrays(store, picked_ids, class_ids)
    names = {c["id"]: c["name"] for c in store.classes()}
    relpaths = store.relpaths()
    crossfit = store.crossfit_matrix(store.shown_round())
    judged = {} if crossfit is None else {image_id: row for row, image_id in enumerate(crossfit[0].tolist())}
    listing = []
    for pick, (image_id, reason) in enumerate(zip(picked_ids.tolist(), reasons)):
        # an audit image is blind until a person labels it (engine.project.audit): no prediction to anchor on
        if reason == AUDIT or not predicted[pick]:
            listing.append({"path": relpaths[image_id], "predicted": None, "confidence": None, "runner_up": None,
                            "zero_shot": None, "reason": reason})
            continue
        probs = predictions.teacher[rows[pick]]
        order = np.argsort(-probs)
        item = {"path": relpaths[image_id], "predicted": names[class_ids[order[0]]],
                "confidence": round(float(probs[order[0]]), 4),
                "runner_up": names[class_ids[order[1]]] if len(order) > 1 else None,
                "zero_shot": names[class_ids[int(predictions.zero_shot[rows[pick]].argmax())]], "reason": reason}
        if labels[pick] >= 0:
            item["label"] = names[class_ids[labels[pick]]]
            item["label_source"] = Source.HUMAN if human[pick] else Source.PSEUDO
        if human[pick] and image_id in judged:
            without = crossfit[2][judged[image_id]]
            item["without_label"] = {"predicted": names.get(crossfit[1][int(without.argmax())], "?"),
                                     "confidence": round(float(without.max()), 4)}
        listing.append(item)
    return listing
