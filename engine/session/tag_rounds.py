"""A multi-label project's loop over its stored arrays: the person's tags as matrices, a round (one sigmoid per
tag trained on the person's tags and confident pseudo-tags), and the review queue by the tag least sure. The rules
themselves are the pure functions of engine/learning/tags.py and engine/learning/selftrain/head.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from engine.errors import LabelloopError
from engine.project.folder import Project
from engine.learning.selftrain.config import RoundConfig
from engine.learning.selftrain.head import Head, fit_tag_head
from engine.learning.tags import least_sure_order, predicted_tags, pseudo_tags, tag_stats, zero_shot_tag_probs
from engine.learning.zeroshot import ZERO_SHOT_ROUND
from engine.session.round_start import begin_round, end_unfinished_round
from storage import Store

UNMEASURED = {"measured": False, "message": "effect unmeasured: the random audit does not cover tags yet"}


@dataclass(frozen=True)
class TagRoundMetrics:
    """What a multi-label round measured; read as a single-label round's RoundMetrics is (`labelloop round`, the
    Rounds tab), with what it cannot measure yet left None."""

    round_id: int
    pseudo_labels: int  # pseudo-tags taken (image, tag pairs)
    coverage: float  # over the (image, tag) pairs no person looked at
    flip_share: float  # images whose predicted tag set changed from the teacher's
    human_tags: int  # (image, tag) pairs a person looked at
    seconds: float
    human_accuracy_crossfit: float | None = None
    quality: dict = field(default_factory=lambda: UNMEASURED)
    teacher_refused: str | None = None
    finetune: dict | None = None

    def as_json(self) -> dict:
        return {key: value for key, value in asdict(self).items()
                if value is not None or key == "human_accuracy_crossfit"}


def human_tag_arrays(store: Store, image_ids: np.ndarray, class_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The person's tags aligned to `image_ids` (N,) and `class_ids` (C): (has (N, C) bool, looked at (N, C) bool);
    a tag no one looked at is False in both."""
    has = np.zeros((len(image_ids), len(class_ids)), bool)
    looked = np.zeros_like(has)
    column_of = {class_id: column for column, class_id in enumerate(class_ids)}
    row_of = {image_id: row for row, image_id in enumerate(np.asarray(image_ids).tolist())}
    for label in store.human_tag_labels().to_pylist():
        row = row_of.get(label["image_id"])
        if row is None:
            continue
        has[row, [column_of[t] for t in label["tags"] if t in column_of]] = True
        looked[row, [column_of[t] for t in label["looked_at"] if t in column_of]] = True
    return has, looked


def _teacher_probs(store: Store, image_ids: np.ndarray, class_ids: list[int], embeddings: np.ndarray,
                   text_weights: np.ndarray) -> np.ndarray:
    """The shown round's tag probabilities (zero-shot's before any round) aligned to `image_ids`; an image it did
    not predict gets its zero-shot probabilities."""
    probs = zero_shot_tag_probs(embeddings, text_weights)
    stored = store.prediction_matrix(store.shown_round())
    if stored is not None and stored[1] == class_ids:
        rows = np.searchsorted(image_ids, stored[0]).clip(0, max(len(image_ids) - 1, 0))
        found = image_ids[rows] == stored[0] if len(image_ids) else np.zeros(0, bool)
        probs[rows[found]] = stored[2][found]
    return probs


def tag_head_init(text_weights: np.ndarray, scale: float, embeddings: np.ndarray) -> Head:
    """The head a tag round starts from: the tags' text weights, each bias set so that a tag's logit is 0 at its
    mean similarity over the collection (a sigmoid of scale * cosine alone would call every tag present)."""
    weight = np.asarray(text_weights, np.float32).copy()
    bias = -scale * (np.asarray(embeddings, np.float32) @ weight.T).mean(axis=0)
    return Head(weight=weight, bias=bias.astype(np.float32), scale=float(scale))


def tag_round(embeddings: np.ndarray, text_weights: np.ndarray, scale: float, teacher: np.ndarray, has: np.ndarray,
              looked: np.ndarray, config: RoundConfig) -> tuple[np.ndarray, np.ndarray]:
    """One multi-label round over arrays: a head with one sigmoid per tag (`fit_tag_head`, binary cross-entropy,
    from `tag_head_init`) learns the person's tags (`has` where `looked`, weighted by `human_weight`) and the
    `teacher`'s confident pseudo-tags (`pseudo_tags` at `threshold`) on the tags no one looked at; every other
    (image, tag) is masked out. Returns (the head's probabilities (N, C), the pseudo-tags taken (N, C) bool)."""
    targets, taken = pseudo_tags(teacher, looked, config.threshold)
    targets[looked] = has[looked]
    weight = taken.astype(np.float32) + config.human_weight * looked
    head = fit_tag_head(tag_head_init(text_weights, scale, embeddings), embeddings, targets, weight,
                        l2_to_init=config.l2_to_init, iterations=config.head_iterations)
    return 1 / (1 + np.exp(-head.logits(embeddings).astype(np.float64))), taken


def run_tag_round(project: Project, config: RoundConfig, *, progress: Callable[[float, str], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> TagRoundMetrics:
    """One round of a multi-label project (`tag_round`, taught by the shown round), written in one transaction; the
    head's probabilities are the round's predictions. No kNN refinement and no cross-fitted mistake scores yet. Returns its
    metrics."""
    if config.mode != "head" or config.teacher != "head":
        raise LabelloopError("a multi-label project's rounds are head rounds for now; run `labelloop round` without "
                             "--mode finetune or --teacher cache")
    start = begin_round(project, progress, cancel, reading="tags")
    store, image_ids, class_ids = start.store, start.image_ids, start.class_ids
    has, looked = human_tag_arrays(store, image_ids, class_ids)
    teacher = _teacher_probs(store, image_ids, class_ids, start.embeddings, start.text_weights)
    round_id = store.start_round(asdict(config))
    try:
        start.report(0.3, "training one sigmoid per tag")
        probs, taken = tag_round(start.embeddings, start.text_weights, start.scale, teacher, has, looked, config)
        start.report(0.9, "writing predictions")
        changed = predicted_tags(probs) != predicted_tags(teacher)
        metrics = TagRoundMetrics(round_id=round_id, pseudo_labels=int(taken.sum()),
                                  coverage=float(taken.sum() / max((~looked).sum(), 1)),
                                  flip_share=float(changed.mean()) if changed.size else 0.0,
                                  human_tags=int(looked.sum()), seconds=start.seconds())
        store.finish_round(round_id, model_id=start.model_id, image_ids=image_ids, class_ids=class_ids, probs=probs,
                           stats=tag_stats(probs), pseudo_ids=image_ids[:0], pseudo_classes=np.zeros(0, np.int32),
                           metrics=metrics.as_json())
    except BaseException as error:
        end_unfinished_round(store, round_id, error)
        raise
    return metrics


def tag_review_queue(store: Store, k: int) -> list[dict]:
    """The first `k` images no person has tagged, the least sure first by their least sure tag (`least_sure_order`
    over the shown round, zero-shot before any): path, predicted (`predicted_tags`, in class order), tag (the
    one least sure), confidence (how sure of that tag: max(p, 1 - p)), probability (of that tag) and reason."""
    if k < 1:
        raise LabelloopError(f"--k must be at least 1, got {k}")
    stored = store.prediction_matrix(store.shown_round()) or store.prediction_matrix(ZERO_SHOT_ROUND)
    if stored is None:
        return []
    image_ids, class_ids, probs = stored
    names = {c["id"]: c["name"] for c in store.classes()}
    tagged = np.isin(image_ids, store.human_tag_labels().column("image_id").to_numpy())
    order, least_sure = least_sure_order(probs, ~tagged)
    relpaths = store.relpaths_of(image_ids[order[:k]].tolist())
    queue = []
    for row, column in zip(order[:k].tolist(), least_sure[:k].tolist()):
        probability = float(probs[row, column])
        queue.append({"path": relpaths[int(image_ids[row])], "image_id": int(image_ids[row]),
                      "predicted": [names[c] for c, on in zip(class_ids, predicted_tags(probs[row])) if on],
                      "tag": names[class_ids[column]], "probability": round(probability, 4),
                      "confidence": round(max(probability, 1 - probability), 4), "reason": "least sure tag"})
    return queue
