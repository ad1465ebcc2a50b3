"""One self-training round over arrays: pick pseudo-labels from the teacher, cross-fit students for out-of-sample
scores of the person's labels, train the new student, refine its predictions over the collection's kNN graph, and
score every image for fitting no class. No project, no storage: `engine.session.round_runner` adds those.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from engine.learning.calibration import expected_calibration_error, fit_temperature
from engine.learning.round_metrics import accuracy, class_counts, flip_share
from engine.learning.probabilities import softmax
from engine.learning.selftrain.config import RoundConfig
from engine.learning.selftrain.head import Head, cache_logits, fit_head
from engine.learning.selftrain.propagate import (Affinity, mcm_outlier_score, propagate_labels, propagate_scores,
                                                 rebalance, relative_mahalanobis)
from engine.learning.selftrain.selection import prior_quotas, pseudo_labels_per_class, select_pseudo_labels

Progress = Callable[[float, str], None]


@dataclass
class RoundMetrics:
    """What one round measured: stored with it as JSON (`as_json`), printed by `labelloop round`. The first group
    comes from the round over arrays (`adapt`), the rest from the project's round (engine/session/round_runner.py)."""

    round: int  # the teacher's round number (counts finished rounds)
    images: int
    human_labels: int
    none_of_these: int
    pseudo_labels: int
    coverage: float  # pseudo-labels over the images not excluded
    pseudo_per_class: list[int]
    flip_share: float  # predictions whose class changed from the teacher's
    refined_changed: float  # predictions the refinement over the graph changed
    human_accuracy_crossfit: float | None  # None: too few labels to cross-fit
    ece_crossfit: float | None
    temperature: float
    mean_confidence: float
    round_id: int | None = None  # the round's number in the project
    seconds: float | None = None
    graph_cached: bool | None = None  # None: no neighbour graph (no refinement)
    graph_seconds: float | None = None
    class_prior: str | None = None  # "audit" or "none"
    audit_labels_held_out: int | None = None
    teacher_refused: str | None = None  # why the cache teacher was not used
    finetune: dict | None = None  # the adapted encoder's summary, model spec and id
    quality: dict | None = None  # engine.project.audit.judge_round's verdict

    def as_json(self) -> dict:
        """As stored and printed: the fields a round did not set are left out."""
        return {key: value for key, value in asdict(self).items()
                if value is not None or key in ("human_accuracy_crossfit", "ece_crossfit")}


@dataclass
class RoundOutput:
    teacher: Head
    temperature: float
    probs: np.ndarray  # (N, C) the teacher's calibrated probabilities for every image, refined over the graph
    pseudo_index: np.ndarray  # (M,) rows chosen as pseudo-labels
    pseudo_label: np.ndarray  # (M,) their class columns
    crossfit_probs: np.ndarray | None  # (H,) x C out-of-fold probabilities of the human-labeled rows; None: too few
    outlier: np.ndarray  # (N,) in [0, 1]: higher = fits no class more
    metrics: RoundMetrics


def adapt(embeddings: np.ndarray, zero_shot: Head, teacher: Head, teacher_probs: np.ndarray,
          human_index: np.ndarray, human_label: np.ndarray, excluded: np.ndarray, round_number: int,
          config: RoundConfig, *, affinity: Affinity | None = None, none_index: np.ndarray | None = None,
          class_prior: np.ndarray | None = None, progress: Progress | None = None) -> RoundOutput:
    """One self-training round over arrays.

    embeddings (N, D) unit vectors; zero_shot and teacher: heads over C classes (the teacher's weights feed its
    moving average); teacher_probs (N, C): the previous round's predictions, which pick the pseudo-labels;
    human_index (H,) rows with a human class label human_label (H,); none_index rows a person said fit no class
    ("none of these": taught to the student as a class of its own, and outliers by definition); excluded (N,) bool
    rows never pseudo-labeled (every human-labeled row, "none of these" included). affinity (N, N): the kNN graph
    of engine.learning.selftrain.propagate (None: no refinement). round_number counts from 1. class_prior (C,) summing
    to one: the collection's class shares estimated from a random audit (engine.learning.quality_estimates.class_prior);
    the pseudo-label quotas follow it (None: no audit yet, see `choose_pseudo_labels`).
    """
    report = progress or (lambda fraction, message: None)
    n, n_classes = len(embeddings), len(zero_shot.weight)
    none_index = np.zeros(0, int) if none_index is None else np.asarray(none_index, int)
    report(0.05, "selecting pseudo-labels")
    pseudo_index, pseudo_label = choose_pseudo_labels(teacher_probs, excluded, round_number, config,
                                                      human_label=human_label, class_prior=class_prior)
    # "none of these" is one more class of the student, started from the mean of its examples
    start = zero_shot if not len(none_index) else _with_none_class(zero_shot, embeddings[none_index])
    none_label = np.full(len(none_index), n_classes)

    def student(train_human: np.ndarray, pseudo: np.ndarray) -> Head:
        rows = np.concatenate([human_index[train_human], none_index, pseudo_index[pseudo]])
        labels = np.concatenate([human_label[train_human], none_label, pseudo_label[pseudo]])
        weights = np.concatenate([np.full(int(train_human.sum()) + len(none_index), config.human_weight),
                                  np.ones(int(pseudo.sum()))])
        fitted = fit_head(start, embeddings[rows], labels, weights, l2_to_init=config.l2_to_init,
                          iterations=config.head_iterations)
        return fitted.blend(start, keep=config.wise_alpha)

    # Cross-fitting: each human label is scored by a student that never trained on it (its out-of-sample
    # probabilities rank possible label mistakes). These students only score, so they learn from the surest
    # `crossfit_pseudo_per_class` pseudo-labels of each class (cheaper).
    crossfit_pseudo = np.zeros(len(pseudo_index), bool)
    crossfit_pseudo[select_pseudo_labels(teacher_probs[pseudo_index], method="balanced",
                                         per_class=config.crossfit_pseudo_per_class)[0]] = True
    crossfit_logits = np.zeros((len(human_index), n_classes), np.float32)
    folds = min(config.folds, len(human_index))
    fold_of = np.random.default_rng(round_number).permutation(len(human_index)) % max(folds, 1)
    for fold in range(folds if folds >= 2 else 0):
        report(0.1 + 0.55 * fold / folds, f"cross-fitting fold {fold + 1}/{folds}")
        held_out = fold_of == fold
        crossfit_logits[held_out] = student(~held_out, crossfit_pseudo).logits(
            embeddings[human_index[held_out]])[:, :n_classes]

    scored = folds >= 2
    temperature = 1.0
    if scored and len(human_index) >= config.min_human_for_calibration:
        temperature = fit_temperature(crossfit_logits, human_label)
    crossfit_probs = softmax(crossfit_logits / temperature) if scored else None
    report(0.7, "training the student")
    none_probs = None
    if config.teacher == "cache":
        keys, key_labels = _cache_keys(embeddings, human_index, human_label, pseudo_index, pseudo_label,
                                       teacher_probs, config.cache.keys_per_class, n_classes)
        new_teacher = teacher
        logits = zero_shot.logits(embeddings) + config.cache.alpha * zero_shot.scale * cache_logits(
            embeddings, keys, key_labels, n_classes, beta=config.cache.beta)
    else:
        everything = student(np.ones(len(human_index), bool), np.ones(len(pseudo_index), bool))
        classes_only = Head(everything.weight[:n_classes], everything.bias[:n_classes], everything.scale)
        new_teacher = teacher.blend(classes_only, keep=config.ema)
        report(0.8, "predicting every image")
        logits = new_teacher.logits(embeddings)
        if len(none_index):
            none_probs = softmax(everything.logits(embeddings) / temperature)[:, n_classes]
    student_probs = softmax(logits / temperature)
    probs = student_probs
    if config.refine and affinity is not None:
        report(0.87, "refining over the neighbour graph")
        probs = propagate_labels(affinity, student_probs, human_index, human_label, alpha=config.propagation)
        if scored:  # the out-of-sample scores refined too, from every prediction with no label clamped, so that
            # no row's own label reaches its score. Measured on planted embeddings (2000 x 32-d, 4 classes, 80
            # labels, 3 of them wrong): unrefined, 27 labels flagged and a wrong one ranked 16th; refined, 9
            # flagged and the 3 wrong ones ranked first.
            prior = student_probs.copy()
            prior[human_index] = crossfit_probs
            crossfit_probs = propagate_labels(affinity, prior, np.zeros(0, int), np.zeros(0, int),
                                              alpha=config.propagation)[human_index]
    outlier = outlier_scores(zero_shot.logits(embeddings) / zero_shot.scale, config, affinity=affinity,
                             fits=human_index, fits_label=human_label, fits_none=none_index, none_probs=none_probs,
                             embeddings=embeddings, probs=probs)
    predicted = probs.argmax(axis=1)
    metrics = RoundMetrics(
        round=round_number,
        images=n,
        human_labels=int(len(human_index)),
        none_of_these=int(len(none_index)),
        pseudo_labels=int(len(pseudo_index)),
        coverage=round(len(pseudo_index) / max(1, int((~excluded).sum())), 4),
        pseudo_per_class=class_counts(pseudo_label, n_classes),
        flip_share=round(flip_share(teacher_probs.argmax(axis=1), predicted) or 0.0, 4),
        refined_changed=round(float((student_probs.argmax(axis=1) != predicted).mean()), 4),
        human_accuracy_crossfit=(round(accuracy(crossfit_probs.argmax(axis=1), human_label), 4)
                                 if scored else None),
        ece_crossfit=round(expected_calibration_error(crossfit_probs, human_label), 4) if scored else None,
        temperature=round(temperature, 4),
        mean_confidence=round(float(probs.max(axis=1).mean()), 4),
    )
    report(0.95, "writing predictions")
    return RoundOutput(new_teacher, temperature, probs, pseudo_index, pseudo_label, crossfit_probs, outlier, metrics)


def outlier_scores(cosines: np.ndarray, config: RoundConfig, *, affinity: Affinity | None = None,
                   fits: np.ndarray | None = None, fits_label: np.ndarray | None = None,
                   fits_none: np.ndarray | None = None, none_probs: np.ndarray | None = None,
                   embeddings: np.ndarray | None = None, probs: np.ndarray | None = None) -> np.ndarray:
    """Per image (N,), how much it fits no class (higher = more): 1 - MCM of the zero-shot cosines (N, C); with
    config.outlier_score "rmd", the images re-ordered by their relative Mahalanobis distance to the classes (see
    `rmd_order`: it needs `embeddings` (N, D) and the round's predictions `probs` (N, C)); raised to the student's
    probability of "none of these" where it has that class (none_probs (N,)); then smoothed over the graph with
    the rows a person gave a class (`fits`, their classes `fits_label`) held at 0 and those they called "none of
    these" at 1."""
    score = mcm_outlier_score(cosines, temperature=config.outlier_temperature)
    fits = np.zeros(0, int) if fits is None else np.asarray(fits, int)
    fits_none = np.zeros(0, int) if fits_none is None else np.asarray(fits_none, int)
    if config.outlier_score == "rmd":
        if embeddings is None or probs is None:
            raise ValueError('outlier_score "rmd" needs the embeddings and the round\'s predictions')
        score = rmd_order(score, embeddings, probs, fits, fits_label, fits_none, config)
    if none_probs is not None:
        score = np.maximum(score, none_probs)
    if affinity is None:
        return score
    return propagate_scores(affinity, score, np.concatenate([fits, fits_none]),
                            np.concatenate([np.zeros(len(fits)), np.ones(len(fits_none))]), alpha=config.propagation)


def rmd_order(score: np.ndarray, embeddings: np.ndarray, probs: np.ndarray, fits: np.ndarray,
              fits_label: np.ndarray | None, fits_none: np.ndarray, config: RoundConfig) -> np.ndarray:
    """`score` (N,) given the order of the relative Mahalanobis distance (engine.learning.selftrain.propagate): the
    image with the k-th largest distance gets the k-th largest value of `score`, so the scale (and the share the page's
    "fits no class" filter shows) stays MCM's. The class Gaussians are fitted on the images a person gave a class
    (`fits`, `fits_label`) and, for each class, the surest predictions of it among the images no person labeled
    (nor called "none of these": `fits_none`), as many as a first round's pseudo-labels (a precise share)."""
    n, n_classes = probs.shape
    per_class = pseudo_labels_per_class(1, n, n_classes, step=config.share_step, cap=config.per_class_cap)
    eligible = np.ones(n, bool)
    eligible[fits] = eligible[fits_none] = False
    sure, sure_label = select_pseudo_labels(probs, method="balanced", eligible=eligible, per_class=per_class)
    members = np.concatenate([fits, sure])
    labels = np.concatenate([np.asarray(fits_label if fits_label is not None else [], int), sure_label])
    distance = relative_mahalanobis(embeddings, members, labels)
    return np.sort(score)[np.argsort(np.argsort(distance, kind="stable"), kind="stable")]


def choose_pseudo_labels(teacher_probs: np.ndarray, excluded: np.ndarray, round_number: int,
                         config: RoundConfig, *, human_label: np.ndarray | None = None,
                         class_prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The round's pseudo-labels (rows (M,), classes (M,)) from the teacher's probabilities (N, C), never on
    `excluded` rows: config.selection with the growing per-class schedule of engine.learning.selftrain.selection. With a
    `class_prior` (C,) from a random audit, the quotas follow it (`prior_quotas`); without one, the even split grows
    by config.share_step_without_prior a round (0 by default: none), since on a long-tailed collection the even
    split pads the rare classes with the teacher's mistakes and rounds end below zero-shot (see config.py); a
    finetune round (config.mode) keeps config.share_step of the even split.
    config.rebalance "ot" first moves the teacher to the prior (without one, to the person's label shares)."""
    eligible = ~excluded
    n_classes = teacher_probs.shape[1]
    if config.rebalance == "ot":
        target = class_prior if class_prior is not None else label_share_prior(n_classes, human_label)
        teacher_probs = rebalance(teacher_probs, target)
    if class_prior is not None:
        per_class = prior_quotas(round_number, int(eligible.sum()), class_prior, step=config.share_step,
                                 cap=config.per_class_cap)
    else:  # a finetune round needs targets to adapt the encoder to, and was measured with the even split only
        step = config.share_step_without_prior if config.mode == "head" else config.share_step
        per_class = pseudo_labels_per_class(round_number, int(eligible.sum()), n_classes, step=step,
                                            cap=config.per_class_cap)
    return select_pseudo_labels(teacher_probs, method=config.selection, eligible=eligible, per_class=per_class,
                                threshold=config.threshold)


def label_share_prior(n_classes: int, human_label: np.ndarray | None, *, pseudo_count: float = 5.0) -> np.ndarray:
    """The class distribution to rebalance to: the person's labels' class shares, smoothed towards uniform by
    `pseudo_count` imagined labels per class (uniform when there are none). (C,) summing to one."""
    counts = np.bincount(np.asarray(human_label if human_label is not None else [], int), minlength=n_classes)
    smoothed = counts + pseudo_count
    return smoothed / smoothed.sum()


def _with_none_class(head: Head, examples: np.ndarray) -> Head:
    """`head` with one more class after its own, "none of these", whose weight starts at its examples' mean."""
    mean = examples.mean(axis=0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return Head(np.vstack([head.weight, mean[None]]).astype(np.float32), np.append(head.bias, 0).astype(np.float32),
                head.scale)


def _cache_keys(embeddings, human_index, human_label, pseudo_index, pseudo_label, teacher_probs, per_class,
                n_classes) -> tuple[np.ndarray, np.ndarray]:
    """All human labels, plus each class's most confident pseudo-labels up to `per_class` keys."""
    rows, labels = [human_index], [human_label]
    for label in range(n_classes):
        members = pseudo_index[pseudo_label == label]
        order = np.argsort(-teacher_probs[members, label], kind="stable")[:per_class]
        rows.append(members[order])
        labels.append(np.full(len(order), label))
    rows, labels = np.concatenate(rows).astype(int), np.concatenate(labels).astype(int)
    return embeddings[rows], labels
