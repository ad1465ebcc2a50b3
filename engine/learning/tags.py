"""Multi-label projects (init --multi-label): a label is a set of tags (class ids) plus the tags a person looked at.
Reading tag cells, and the pure per-tag rules over numpy arrays that zero-shot, rounds, the queue and the
benchmark share."""

from __future__ import annotations

import numpy as np

TAG_SEPARATOR = ";"
TAG_PRESENT = 0.5  # an image is predicted to have a tag from this probability on (exports, the queue, rounds)
MISSING_TAG, WRONG_TAG = 1, 2  # a possible mistake of a person's tag (`tag_mistakes`): said absent, said present
MISTAKE_NAMES = {MISSING_TAG: "possible missing tag", WRONG_TAG: "possible wrong tag"}


def read_tag_cell(cell: str, by_casefold: dict[str, str]) -> tuple[frozenset[str], str | None]:
    """A CSV cell of `;`-joined tags -> (the tag names as the project spells them, a problem or None). An empty
    cell is the empty set: no tag applies. `by_casefold`: casefolded name -> name."""
    if not cell:
        return frozenset(), None
    parts = [part.strip() for part in cell.split(TAG_SEPARATOR)]
    if not all(parts):
        return frozenset(), f"an empty tag in {cell!r} (tags are joined by a single ';')"
    unknown = [part for part in parts if part.casefold() not in by_casefold]
    if unknown:
        return frozenset(), f"unknown tag {unknown[0]!r}"
    return frozenset(by_casefold[part.casefold()] for part in parts), None


def centred_similarity(embeddings: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    """Each image's cosine similarity to each tag less its median similarity over all tags, (N, C): what is left
    once the image-wide offset (how strongly the picture matches any prompt of this model) is removed, so one tag's
    scores compare across images. The median, not the mean: while fewer than half the tags apply it is a tag the
    image lacks, so a picture with no tag scores like the pictures that lack this one, and one with two tags does
    not push both down (the mean would)."""
    similarity = np.asarray(embeddings, np.float32) @ np.asarray(class_weights, np.float32).T
    return similarity - np.median(similarity, axis=1, keepdims=True)


def two_gaussian_posterior(scores: np.ndarray, *, iterations: int = 100, tolerance: float = 1e-6) -> np.ndarray:
    """P(upper component | score) of a two-component 1-D Gaussian mixture with one shared variance, fitted by EM
    (Dempster, Laird and Rubin, 1977) to `scores` (N,): the tag's probability when its images score high and the
    others low. With the variance shared the posterior is a sigmoid of the score (as in linear discriminant
    analysis), so it keeps the scores' order; its threshold and slope are the tag's own. Started from the lower and
    upper quartiles; the variance is floored at 1e-6 of the scores' own; stops once neither mean moves by more than
    `tolerance` of the scores' spread."""
    scores = np.asarray(scores, np.float64)
    spread = max(float(scores.std()), 1e-12)
    floor = spread ** 2 * 1e-6
    low, high = np.quantile(scores, [0.25, 0.75])
    variance, upper_share = max(spread ** 2 / 4, floor), 0.5
    for _ in range(iterations):
        upper = _upper_posterior(scores, low, high, variance, upper_share)
        upper_share = float(np.clip(upper.mean(), 1e-12, 1 - 1e-12))
        new_high = float((upper * scores).sum() / max(upper.sum(), 1e-12))
        new_low = float(((1 - upper) * scores).sum() / max((1 - upper).sum(), 1e-12))
        variance = max(float((upper * (scores - new_high) ** 2 + (1 - upper) * (scores - new_low) ** 2).mean()),
                       floor)
        moved = max(abs(new_high - high), abs(new_low - low))
        low, high = new_low, new_high
        if moved < tolerance * spread:
            break
    posterior = _upper_posterior(scores, low, high, variance, upper_share)
    return posterior if high >= low else 1 - posterior


def _upper_posterior(scores: np.ndarray, low: float, high: float, variance: float, upper_share: float) -> np.ndarray:
    """The E-step of `two_gaussian_posterior` in closed form: with a shared variance, the log-odds of the upper
    component are linear in the score."""
    log_odds = ((high - low) * scores - (high ** 2 - low ** 2) / 2) / variance + np.log(upper_share / (1 - upper_share))
    return 1 / (1 + np.exp(-np.clip(log_odds, -500, 500)))


def zero_shot_tag_probs(embeddings: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    """Per-tag zero-shot probabilities (N, C), each tag on its own (a softmax over tags cannot say "both" or
    "neither"): the centred similarity of each tag (`centred_similarity`) split into "has it" and "lacks it" by a
    two-component Gaussian mixture over the collection (`two_gaussian_posterior`), which sets each tag's own
    threshold without a label. Rows need not sum to 1."""
    centred = centred_similarity(embeddings, class_weights)
    if len(centred) < 2:
        return np.full(centred.shape, 0.5, np.float32)
    return np.stack([two_gaussian_posterior(centred[:, tag]) for tag in range(centred.shape[1])],
                    axis=1).astype(np.float32)


def tag_stats(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of (N, C) independent tag probabilities, what the predictions table keeps of a multi-label
    prediction: `label` the tag least sure (probability nearest 0.5), `confidence` how sure that tag is
    (max(p, 1 - p)), `margin` |2p - 1| of it (lower = less sure, as a single-label margin), and `entropy` the sum
    of the tags' binary entropies (nats)."""
    probs = np.asarray(probs, np.float64)
    sureness = np.abs(2 * probs - 1)
    label = sureness.argmin(axis=1)
    margin = sureness[np.arange(len(probs)), label]
    clipped = probs.clip(1e-12, 1 - 1e-12)
    entropy = -(clipped * np.log(clipped) + (1 - clipped) * np.log(1 - clipped)).sum(axis=1)
    return {"label": label, "confidence": (1 + margin) / 2, "margin": margin, "entropy": entropy}


def predicted_tags(probs: np.ndarray) -> np.ndarray:
    """(N, C) bool: the tags an image is predicted to have (probability at least TAG_PRESENT)."""
    return np.asarray(probs) >= TAG_PRESENT


def pseudo_tags(teacher_probs: np.ndarray, looked_at: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Confident pseudo-tags per tag, as self-training takes confident pseudo-labels (Lee, "Pseudo-Label", 2013),
    on each tag on its own: (targets (N, C) float, taken (N, C) bool) where the teacher is at least `threshold`
    sure either way (p >= threshold: has it; p <= 1 - threshold: lacks it) and no person looked at that tag."""
    probs = np.asarray(teacher_probs, np.float32)
    taken = ~np.asarray(looked_at, bool) & ((probs >= threshold) | (probs <= 1 - threshold))
    return predicted_tags(probs).astype(np.float32), taken


def least_sure_order(probs: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uncertainty sampling over tags (Lewis and Gale, 1994, per tag): the rows of `candidates` (bool (N,)) ordered
    by how sure their least sure tag is (|2p - 1|, lowest first; ties by row), and that tag's column per row."""
    stats = tag_stats(probs)
    rows = np.flatnonzero(candidates)
    order = rows[np.argsort(stats["margin"][rows], kind="stable")]
    return order, stats["label"][order]


def tag_mistakes(crossfit_probs: np.ndarray, has: np.ndarray, looked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cleanlab's "predicted_neq_given" (Northcutt et al., "Confident Learning", 2021) on each tag a person looked at,
    over out-of-sample probabilities (H, C) from models that never trained on those rows. Returns (margin (H, C): the
    probability of the person's answer less that of the other, 2p - 1 where they gave the tag and 1 - 2p where they
    said it is absent, in [-1, 1], lower = more likely a mistake, 1 where no one looked; mistake (H, C) int8: 0 none,
    MISSING_TAG (absent, yet the model predicts it), WRONG_TAG (given, yet the model predicts it absent))."""
    probs, has, looked = np.asarray(crossfit_probs, np.float32), np.asarray(has, bool), np.asarray(looked, bool)
    margin = np.where(looked, np.where(has, 2 * probs - 1, 1 - 2 * probs), 1.0).astype(np.float32)
    predicted = predicted_tags(probs)
    mistake = np.where(looked & ~has & predicted, MISSING_TAG, np.where(looked & has & ~predicted, WRONG_TAG, 0))
    return margin, mistake.astype(np.int8)
