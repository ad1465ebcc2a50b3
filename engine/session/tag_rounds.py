"""A multi-label project's loop over its stored arrays: the person's tags as matrices, a round (one sigmoid per
tag trained on the person's tags and confident pseudo-tags, refined over the kNN graph, the person's tags
cross-fitted), and the review queue: possible tag mistakes, then the tag least sure. The rules
themselves are the pure functions of engine/learning/tags.py and engine/learning/selftrain/head.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from engine.errors import LabelloopError
from engine.project.folder import Project
from engine.learning.selftrain.config import RoundConfig
from engine.learning.selftrain.head import Head, fit_tag_head
from engine.learning.selftrain.propagate import Affinity
from engine.learning.selftrain.tag_propagation import refine_tags
from engine.learning.tags import (MISTAKE_NAMES, least_sure_order, predicted_tags, pseudo_tags, tag_mistakes,
                                  tag_stats, zero_shot_tag_probs)
from engine.learning.zeroshot import ZERO_SHOT_ROUND
from engine.session.round_start import begin_round, end_unfinished_round, neighbour_graph
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
    human_accuracy_crossfit: float | None = None  # share of the answers a person gave (image, tag) that the
    # cross-fitted heads, which never saw them, predict alike; None: too few tagged images to cross-fit
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


@dataclass(frozen=True)
class TagRoundOutput:
    probs: np.ndarray  # (N, C) the head's tag probabilities, refined over the kNN graph when the round had one
    taken: np.ndarray  # (N, C) bool: the pseudo-tags taken
    tagged: np.ndarray  # (H,) rows where a person looked at some tag
    crossfit_probs: np.ndarray | None  # (H, C) their out-of-sample probabilities; None: under 2 such rows


def tag_round(embeddings: np.ndarray, text_weights: np.ndarray, scale: float, teacher: np.ndarray, has: np.ndarray,
              looked: np.ndarray, config: RoundConfig, *, affinity: Affinity | None = None,
              seed: int = 0) -> TagRoundOutput:
    """One multi-label round over arrays: a head with one sigmoid per tag (`fit_tag_head`, binary cross-entropy,
    from `tag_head_init`) learns the person's tags (`has` where `looked`, weighted by `human_weight`) and the
    `teacher`'s confident pseudo-tags (`pseudo_tags` at `threshold`) on the tags no one looked at; every other
    (image, tag) is masked out. The person's tags are cross-fitted (`crossfit_tag_probs`, folds drawn by `seed`).
    With `affinity` (and `refine`) the head's probabilities are refined over the graph (`refine_tags`, the
    person's answers held), and the out-of-sample ones too, from every prediction with nothing held, so that no
    row's own answer reaches its score (as engine.learning.selftrain.adapt does for classes). The head learns from
    the tagged images and at most `per_class_cap` x C others with pseudo-tags (a random draw by `seed`), so a
    round's cost stops growing with the collection, as a single-label round's pseudo-labels do."""
    targets, taken = pseudo_tags(teacher, looked, config.threshold)
    tagged = np.flatnonzero(looked.any(axis=1))
    pseudo_rows = np.setdiff1d(np.flatnonzero(taken.any(axis=1)), tagged)
    cap = config.per_class_cap * targets.shape[1]
    if len(pseudo_rows) > cap:
        dropped = np.random.default_rng(seed).permutation(pseudo_rows)[cap:]
        taken[dropped] = False
    targets[looked] = has[looked]
    weight = taken.astype(np.float32) + config.human_weight * looked
    init = tag_head_init(text_weights, scale, embeddings)
    rows = np.flatnonzero(weight.any(axis=1))
    head = fit_tag_head(init, embeddings[rows], targets[rows], weight[rows], l2_to_init=config.l2_to_init,
                        iterations=config.head_iterations)
    probs = _sigmoid(head.logits(embeddings))
    crossfit = crossfit_tag_probs(embeddings, init, targets, weight, tagged, config, seed=seed)
    if config.refine and affinity is not None:
        if crossfit is not None:
            prior = probs.copy()
            prior[tagged] = crossfit
            crossfit = refine_tags(affinity, prior, has, np.zeros_like(looked), alpha=config.tag_propagation)[tagged]
        probs = refine_tags(affinity, probs, has, looked, alpha=config.tag_propagation)
    return TagRoundOutput(probs, taken, tagged, crossfit)


def crossfit_tag_probs(embeddings: np.ndarray, init: Head, targets: np.ndarray, weight: np.ndarray,
                       tagged: np.ndarray, config: RoundConfig, *, seed: int = 0) -> np.ndarray | None:
    """Cross-fitting (as engine.learning.selftrain.adapt does for classes): the rows `tagged` (H,) split into
    `config.folds` folds, each scored by a head that never saw its rows (neither their tags nor pseudo-tags), fitted
    on the other folds and, to stay cheap, a random `crossfit_pseudo_per_class` x C of the pseudo-tagged rows.
    Returns the out-of-sample probabilities (H, C), or None under two tagged rows."""
    folds = min(config.folds, len(tagged))
    if folds < 2:
        return None
    rng = np.random.default_rng(seed)
    pseudo_rows = np.setdiff1d(np.flatnonzero(weight.any(axis=1)), tagged)
    sample = rng.choice(pseudo_rows, min(len(pseudo_rows), config.crossfit_pseudo_per_class * targets.shape[1]),
                        replace=False)
    fold_of = rng.permutation(len(tagged)) % folds
    out = np.zeros((len(tagged), targets.shape[1]), np.float32)
    for fold in range(folds):
        held_out = fold_of == fold
        rows = np.concatenate([tagged[~held_out], sample])
        head = fit_tag_head(init, embeddings[rows], targets[rows], weight[rows], l2_to_init=config.l2_to_init,
                            iterations=config.head_iterations)
        out[held_out] = _sigmoid(head.logits(embeddings[tagged[held_out]]))
    return out


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(logits, np.float64)))


def run_tag_round(project: Project, config: RoundConfig, *, progress: Callable[[float, str], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> TagRoundMetrics:
    """One round of a multi-label project (`tag_round`, taught by the shown round, refined over the project's kNN
    graph), written in one transaction: the round's probabilities are its predictions, the out-of-sample ones of
    the person's tags its cross-fitted scores (`crossfit_probs`, read by `tag_mistakes`). Returns its metrics."""
    if config.mode != "head" or config.teacher != "head":
        raise LabelloopError("a multi-label project's rounds are head rounds for now; run `labelloop round` without "
                             "--mode finetune or --teacher cache")
    start = begin_round(project, progress, cancel, reading="tags")
    store, image_ids, class_ids, embeddings, report = (start.store, start.image_ids, start.class_ids,
                                                       start.embeddings, start.report)
    has, looked = human_tag_arrays(store, image_ids, class_ids)
    teacher = _teacher_probs(store, image_ids, class_ids, embeddings, start.text_weights)
    affinity = None
    if config.refine and len(image_ids) > config.neighbours:
        affinity = neighbour_graph(project, start.model_id, image_ids, embeddings, config.neighbours, report)[0]
    round_id = store.start_round(asdict(config))
    try:
        report(0.3, "training one sigmoid per tag, cross-fitting the person's tags")
        output = tag_round(embeddings, start.text_weights, start.scale, teacher, has, looked, config,
                           affinity=affinity, seed=round_id)
        report(0.9, "writing predictions")
        probs, taken, tagged = output.probs, output.taken, output.tagged
        changed = predicted_tags(probs) != predicted_tags(teacher)
        agreement = None
        if output.crossfit_probs is not None:
            right = predicted_tags(output.crossfit_probs) == has[tagged]
            agreement = round(float(right[looked[tagged]].mean()), 4)
        metrics = TagRoundMetrics(round_id=round_id, pseudo_labels=int(taken.sum()),
                                  coverage=float(taken.sum() / max((~looked).sum(), 1)),
                                  flip_share=float(changed.mean()) if changed.size else 0.0,
                                  human_tags=int(looked.sum()), seconds=start.seconds(),
                                  human_accuracy_crossfit=agreement)
        store.finish_round(round_id, model_id=start.model_id, image_ids=image_ids, class_ids=class_ids, probs=probs,
                           stats=tag_stats(probs), pseudo_ids=image_ids[:0], pseudo_classes=np.zeros(0, np.int32),
                           metrics=metrics.as_json(),
                           crossfit_ids=image_ids[tagged] if output.crossfit_probs is not None else image_ids[:0],
                           crossfit_probs=output.crossfit_probs)
    except BaseException as error:
        end_unfinished_round(store, round_id, error)
        raise
    return metrics


def tag_review_queue(store: Store, k: int) -> list[dict]:
    """The first `k` of a multi-label project's review queue: first the images whose person's tags the shown round's
    cross-fitted scores doubt (`possible_tag_mistakes`), then those no person has tagged, the least sure first by
    their least sure tag (`least_sure_order` over the shown round, zero-shot before any). Each: path, image_id,
    predicted (`predicted_tags`, in class order), tag (the one doubted or least sure), probability of that tag
    (out-of-sample for a doubted one), confidence (max(p, 1 - p)) and reason."""
    if k < 1:
        raise LabelloopError(f"--k must be at least 1, got {k}")
    stored = store.prediction_matrix(store.shown_round()) or store.prediction_matrix(ZERO_SHOT_ROUND)
    if stored is None:
        return []
    image_ids, class_ids, probs = stored
    names = {c["id"]: c["name"] for c in store.classes()}
    doubted = possible_tag_mistakes(store)[:k]
    tagged = np.isin(image_ids, store.human_tag_labels().column("image_id").to_numpy())
    order, least_sure = least_sure_order(probs, ~tagged)
    picks = [(int(image_ids[row]), probs[row], int(column), float(probs[row, column]), "least sure tag")
             for row, column in zip(order[:k - len(doubted)].tolist(), least_sure[:k - len(doubted)].tolist())]
    rows = np.searchsorted(image_ids, [image_id for image_id, *_ in doubted]).astype(int)
    picks = [(image_id, probs[row], class_ids.index(tag), probability, reason)
             for row, (image_id, tag, probability, reason) in zip(rows.tolist(), doubted)] + picks
    relpaths = store.relpaths_of([image_id for image_id, *_ in picks])
    return [{"path": relpaths[image_id], "image_id": image_id,
             "predicted": [names[c] for c, on in zip(class_ids, predicted_tags(row_probs)) if on],
             "tag": names[class_ids[column]], "probability": round(probability, 4),
             "confidence": round(max(probability, 1 - probability), 4), "reason": reason}
            for image_id, row_probs, column, probability, reason in picks]


def possible_tag_mistakes(store: Store) -> list[tuple[int, int, float, str]]:
    """The person's tags that the shown round's cross-fitted heads, which never saw them, predict otherwise
    (`tag_mistakes` over its `crossfit_probs`, the tags as they are now): (image id, tag id, its out-of-sample
    probability, MISTAKE_NAMES of the kind), one per image (its most doubted tag), most doubted first."""
    crossfit = store.crossfit_matrix(store.shown_round())
    if crossfit is None:
        return []
    image_ids, class_ids, probs = crossfit
    has, looked = human_tag_arrays(store, image_ids, class_ids)
    margin, mistake = tag_mistakes(probs, has, looked)
    margin = np.where(mistake > 0, margin, np.inf)
    column = margin.argmin(axis=1)
    rows = np.flatnonzero(np.isfinite(margin[np.arange(len(margin)), column]))
    rows = rows[np.argsort(margin[rows, column[rows]], kind="stable")]
    return [(int(image_ids[row]), class_ids[column[row]], float(probs[row, column[row]]),
             MISTAKE_NAMES[int(mistake[row, column[row]])]) for row in rows.tolist()]
