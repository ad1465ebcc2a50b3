"""The review queue: which images a person should look at next, best first, each with its reason.
Pure functions over numpy arrays."""

from __future__ import annotations

import numpy as np

MISTAKE, DISAGREE, UNCERTAIN = "possible label mistake", "zero-shot and teacher disagree", "low margin"
TYPICAL, AUDIT, NOT_REVIEWED = "typical of its predicted class", "random audit", "not reviewed yet"
CHANGED = "changed since labelled"
# "Low margin" is said of an image whose top class leads the runner-up by less than this: one at 95 % confidence
# leads by at least 0.9. Past the low-margin images the queue goes on with the least sure of the rest, said as
# NOT_REVIEWED.
LOW_MARGIN = 0.5
# A random audit first (images drawn uniformly, labelled blind: they give engine.learning.quality_estimates its class
# shares, the rounds their class prior, and the accuracy estimate), until every class share's 95 % interval is at most
# AUDIT_HALF_WIDTH either side (`audit_needed`). The audit's labels train no round, so each review spent on it
# is one fewer training label: 0.15 measured as good as any of 0.1-0.3 (docs/experiments.md#audit_half_width).
AUDIT_HALF_WIDTH = 0.15
# Below this many human labels per class, picks are typical images of each class. Off: measured (3 rounds of 2 %
# reviews; inked_digits / shapes_and_digits / demo) 0.787 / 0.675 / 0.935 off against 0.775 / 0.675 / 0.926 at 3.
COLD_START_PER_CLASS = 0
# After the cold start, the picks are spread by k-center greedy over the most uncertain images, one at a time:
# pick i comes from the POOL_FACTOR * (i + 1) most uncertain, so the first k of the queue are one list whatever
# k (the page and `labelloop queue` show one order); 3 measured best of 2-4 (docs/experiments.md#pool_factor).
POOL_FACTOR = 3
# Past SPREAD_PICKS picks the rest follow by priority alone. Each pick is one product over its pool: the whole
# order of 100,000 images at 512 dimensions (500 picks over 1,500 vectors, then a sort) took 0.15-0.23 s with one
# BLAS thread on the 2-core machine under load, 2.5 s with two (threads fighting over a small product); 1,000
# picks took 14 s with two.
SPREAD_PICKS = 500
# The possible label mistakes go first, all but those the person confirmed (gave again as they were): of the
# rules tried, the one that measured best while still queueing planted wrong labels
# (docs/experiments.md#possible-label-mistakes-first).


def k_center_greedy(points: np.ndarray, k: int, *, covered: np.ndarray | None = None,
                    pool_factor: int | None = None) -> np.ndarray:
    """Pick `k` rows of `points` (N, D) that spread over the space: each pick is the point farthest from every
    earlier pick and from the `covered` points (M, D) (Sener & Savarese, "Active Learning for Convolutional
    Neural Networks: A Core-Set Approach", 2018). With `pool_factor`, pick i is chosen among the first
    pool_factor * (i + 1) rows only (rows given most uncertain first): the first k picks then come from the
    pool_factor * k first rows, whatever number of picks is asked for. Returns indices in pick order."""
    points = np.asarray(points, np.float32)
    k = min(k, len(points))
    if k <= 0:
        return np.zeros(0, int)
    nearest = np.full(len(points), np.inf, np.float32)
    if covered is not None and len(covered):
        for start in range(0, len(covered), 4096):
            chunk = np.asarray(covered[start:start + 4096], np.float32)
            nearest = np.minimum(nearest, _squared_distances(points, chunk).min(axis=1))
    squared_norms = (points * points).sum(1)  # once, not per pick: each pick is then one matrix-vector product
    picks = []
    for turn in range(k):
        pool = nearest if pool_factor is None else nearest[:pool_factor * (turn + 1)]
        pick = int(np.argmax(pool))  # the first row while nothing is covered (all infinite)
        picks.append(pick)
        to_pick = np.maximum(squared_norms + squared_norms[pick] - 2 * (points @ points[pick]), 0)
        nearest = np.minimum(nearest, to_pick)
        nearest[pick] = -1.0
    return np.array(picks)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0)


def label_quality(crossfit_probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cleanlab's normalized margin and its "predicted_neq_given" rule over out-of-sample probabilities (Northcutt
    et al., "Confident Learning", 2021; cleanlab.rank's method="normalized_margin", unscaled).

    crossfit_probs (H, C): each row from a student that never trained on that row's label; given (H,) the
    person's class column. Returns (margin p[given] - max over the other classes (H,) in [-1, 1], lower = more
    likely mislabeled; possible mistake (H,) bool: the out-of-sample prediction is another class). Leave out
    the labels the person confirmed (storage.scores.LABEL_MISTAKES does)).
    storage.scores.LABEL_MISTAKES is the same rule and order in SQL (measured there against self-confidence)."""
    probs, given = np.asarray(crossfit_probs, np.float32), np.asarray(given, int)
    if probs.ndim != 2 or given.shape != (len(probs),) or (len(given) and not
                                                             (0 <= given.min() and given.max() < probs.shape[1])):
        raise ValueError(f"crossfit_probs must be (H, C) and given (H,) class columns, got {probs.shape} and "
                         f"{given.shape}")
    rows = np.arange(len(given))
    self_confidence = probs[rows, given]
    others = probs.copy()
    others[rows, given] = -np.inf
    best_other = others.max(axis=1) if probs.shape[1] > 1 else np.zeros(len(given), np.float32)
    return self_confidence - best_other, probs.argmax(axis=1) != given


def typical_picks(probs: np.ndarray, embeddings: np.ndarray, candidates: np.ndarray, k: int, *,
                  neighbours: int = 10, pool_per_pick: int = 5, sample: int = 2000, seed: int = 0) -> np.ndarray:
    """`k` rows of `candidates` for a cold start: spread evenly over the predicted classes (PCB: Bang et al.,
    "Active Prompt Learning with Vision-Language Model Priors", 2024, balances by predicted class, since naive
    active learning on a VLM can lose to random), within a class the most typical images (TypiClust: Hacohen et
    al., "Active Learning on a Budget", ICML 2022: typicality = 1 / mean distance to the `neighbours` nearest
    members), spread by k-center greedy whose j-th pick of a class comes from its pool_per_pick * (j + 1) most
    typical. The classes take turns, so the first k are the first k of any longer list. A class's typicality is
    measured on at most `sample` of its members. probs (N, C), embeddings (N, D). Returns rows, best first."""
    predicted = np.asarray(probs).argmax(axis=1)[candidates]
    rng = np.random.default_rng(seed)
    picks_by_class = []
    for label in np.unique(predicted):  # every class, whatever k, so each class's sample is the same draw
        members = candidates[predicted == label]
        if len(members) > sample:
            members = rng.choice(members, sample, replace=False)
        x = np.asarray(embeddings[members], np.float32)
        distances = np.sqrt(_squared_distances(x, x))
        nearest = np.sort(distances, axis=1)[:, 1:neighbours + 1]
        typicality = 1.0 / (nearest.mean(axis=1) + 1e-6) if nearest.size else np.ones(len(members))
        pool = members[np.argsort(-typicality, kind="stable")[:pool_per_pick * k]]
        picks_by_class.append(pool[k_center_greedy(embeddings[pool], k, pool_factor=pool_per_pick)])
    ordered = []  # the classes take turns, so the first picks already cover many of them
    for turn in range(max((len(p) for p in picks_by_class), default=0)):
        ordered += [p[turn] for p in picks_by_class if turn < len(p)]
    return np.array(ordered[:k], int)


def audit_needed(shares: list[dict], *, half_width: float = AUDIT_HALF_WIDTH) -> bool:
    """Whether the next reviews should be random audit picks: no audit yet, or some class share (or the share of
    "none of these") of engine.learning.quality_estimates.class_share_estimates is not yet known to +-`half_width`
    (95 %). Until then the class prior the rounds and the queue lean on is too rough to trust."""
    if not shares or not shares[0]["n"]:
        return True
    return max((share["high"] - share["low"]) / 2 for share in shares) > half_width


def uncertainty_order(teacher_probs: np.ndarray, zeroshot_probs: np.ndarray, human: np.ndarray, embeddings, *,
                      length: int | None = None, spread: int = SPREAD_PICKS,
                      pool_factor: int = POOL_FACTOR, disagreement_bonus: float = 0.5,
                      cold_start_per_class: int = COLD_START_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """Every image no person labeled, in the order a person should review them; returns (rows (M,), reasons (M,)
    object array of this module's reason strings). The order never depends on how much of it is asked for:
    `length` (None = all) only stops early, so a queue of k is the first k of any longer one.

    teacher_probs, zeroshot_probs: (N, C), the round's refined predictions (what the page shows) and zero-shot's.
    human: (N,) bool, labeled by a person (a class or none of these): those are left out, and the first picks
    spread away from them. embeddings: (N, D), indexed by rows, read only for the pool and the human-labeled.

    While there are fewer than `cold_start_per_class` human labels per class, the first `spread` are
    `typical_picks`. Otherwise priority = top-1 minus top-2 margin, less `disagreement_bonus` when zero-shot and
    teacher disagree (lower = review sooner); the first `spread` picks are k-center greedy where pick i comes from
    the pool_factor * (i + 1) highest priorities, so any first k spread over the pool_factor * k most uncertain
    images (the method measured above) instead of k near-copies of one confusing case. After them, the rest by
    priority. Each reason is true of its image: DISAGREE, else UNCERTAIN when its margin is under LOW_MARGIN,
    else NOT_REVIEWED."""
    teacher_probs, zeroshot_probs = np.asarray(teacher_probs), np.asarray(zeroshot_probs)
    human = np.asarray(human, bool)
    candidates = np.flatnonzero(~human)
    length = len(candidates) if length is None else min(length, len(candidates))
    if not length:
        return np.zeros(0, int), np.zeros(0, object)
    top_two = -np.sort(-teacher_probs[candidates], axis=1)[:, :2]
    margin = top_two[:, 0] - (top_two[:, 1] if teacher_probs.shape[1] > 1 else 0)
    disagree = zeroshot_probs[candidates].argmax(axis=1) != teacher_probs[candidates].argmax(axis=1)
    by_priority = np.argsort(margin - disagreement_bonus * disagree, kind="stable")
    cold_start = human.sum() < cold_start_per_class * teacher_probs.shape[1]
    if cold_start:  # ranked for `spread` whatever `length` is: its class quotas depend on how many it picks
        rows = typical_picks(teacher_probs, embeddings, candidates, min(spread, len(candidates)))[:length]
        picked = np.searchsorted(candidates, rows)
    else:
        first = min(spread, length)
        pool = by_priority[:pool_factor * first]
        picked = pool[k_center_greedy(embeddings[candidates[pool]], first, covered=embeddings[human],
                                      pool_factor=pool_factor)]
        rows = candidates[picked]
    rest = by_priority[~np.isin(by_priority, picked)][:length - len(rows)]
    order = np.concatenate([rows, candidates[rest]]).astype(int)
    position = np.concatenate([picked, rest]).astype(int)
    reasons = np.full(len(order), NOT_REVIEWED, object)
    reasons[margin[position] < LOW_MARGIN] = UNCERTAIN
    reasons[disagree[position]] = DISAGREE
    if cold_start:
        reasons[:len(rows)] = TYPICAL
    return order, reasons


def review_queue_order(order: np.ndarray, reasons: np.ndarray, *, mistakes: np.ndarray | None = None,
                       audit_picks: np.ndarray | None = None, labeled_since: np.ndarray | None = None,
                       changed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The review queue, best first; returns (indices (Q,), reasons (Q,) object array).

    order, reasons: `uncertainty_order`, ranked over the labels of the last round. mistakes: human labels that
    are possible mistakes, most likely first (`label_quality` over out-of-sample probabilities: a student that
    trained on a label cannot judge it; the labels the person confirmed left out). audit_picks: images drawn into
    the random audit and waiting for a label (engine.project.audit draws them while `audit_needed`), in draw order.
    labeled_since: images a person labeled after `order` was ranked; they leave the queue. changed: images whose
    file changed since a person labelled them: their labels wait for that person (relabel or confirm).

    First the changed images, then the possible label mistakes, then the audit picks (what the estimates and the
    prior wait for), then `order` without them."""
    empty = np.zeros(0, int)
    mistakes, audit_picks, labeled_since, changed = (np.asarray(empty if rows is None else rows, int)
                                                     for rows in (mistakes, audit_picks, labeled_since, changed))
    mistakes = mistakes[~np.isin(mistakes, np.concatenate([labeled_since, changed]))]
    audit_picks = audit_picks[~np.isin(audit_picks, np.concatenate([labeled_since, changed, mistakes]))]
    keep = ~np.isin(order, np.concatenate([labeled_since, changed, mistakes, audit_picks]))
    return (np.concatenate([changed, mistakes, audit_picks, np.asarray(order, int)[keep]]),
            np.concatenate([np.full(len(changed), CHANGED, object), np.full(len(mistakes), MISTAKE, object),
                            np.full(len(audit_picks), AUDIT, object), np.asarray(reasons, object)[keep]]))


def rank_review_queue(teacher_probs: np.ndarray, zeroshot_probs: np.ndarray, human: np.ndarray,
                      embeddings: np.ndarray, *, k: int, mistakes: np.ndarray | None = None,
                      audit_picks: np.ndarray | None = None, **order_options) -> tuple[np.ndarray, list[str]]:
    """The first `k` of the review queue over the current labels; returns (indices (<= k,), reasons).
    `review_queue_order` of `uncertainty_order` (whose keyword options `order_options` takes), ranking only as
    far as the first k need."""
    audit_count = 0 if audit_picks is None else len(audit_picks)
    order, reasons = uncertainty_order(teacher_probs, zeroshot_probs, human, embeddings,
                                       length=k + audit_count, **order_options)
    indices, reasons = review_queue_order(order, reasons, mistakes=mistakes, audit_picks=audit_picks)
    return indices[:k], reasons[:k].tolist()
