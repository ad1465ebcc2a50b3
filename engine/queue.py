"""The review queue: which images a person should look at next, best first, each with its reason.
Pure functions over numpy arrays."""

from __future__ import annotations

import numpy as np

MISTAKE, DISAGREE, UNCERTAIN = "possible label mistake", "zero-shot and teacher disagree", "low margin"
TYPICAL, AUDIT = "typical of its predicted class", "random audit"
# A random audit first (images drawn uniformly, labelled blind: they give engine.estimates its class shares, the
# rounds their class prior, and the accuracy estimate), until every class share's 95 % interval is at most
# AUDIT_HALF_WIDTH either side (`audit_needed`). The audit's labels train no round (engine.selftrain.rounds), so
# each review spent on it is one fewer training label: measured as the accuracy of the labels after 3 rounds of
# 2 % reviews, mean of 5 seeds (demo / inked_digits / shapes_and_digits / neon_shapes / cloth_stamps), 0.15 (in
# effect one round of audit picks, then uncertainty): 0.919 / 0.798 / 0.667 / 0.824 / 0.713; 0.1 (30-80 of the 90
# reviews): 0.917 / 0.796 / 0.668 / 0.815 / 0.695; 0.2 and 0.3 as 0.15 but 0.826 on neon_shapes; against random
# reviews that train with no prior (so no pseudo-labels) 0.919 / 0.765 / 0.624 / 0.799 / 0.693. On the four
# rendered sets drawn again with seed 8 (3 seeds; never chosen on): 0.15: 0.800 / 0.698 / 0.928 / 0.711, 0.1: 0.805
# / 0.705 / 0.928 / 0.706, random 0.782 / 0.653 / 0.896 / 0.727 (the queue trails random on that cloth_stamps).
# While the audit trained the rounds (before they held it out), the same with 3 seeds: 0.1: 0.937 / 0.793 / 0.679
# / 0.826 / 0.719; 0.07: 0.922 / 0.786 / 0.672 / 0.809 / 0.715; 0.15: 0.930 / 0.796 / 0.656 / 0.828 / 0.725; and
# the uncertainty margins taken over the teacher moved to the audit prior (Saerens et al.'s correction, one step:
# each class's probability times prior / the teacher's mean share of it), 0.1: 0.926 / 0.796 / 0.673 / 0.822 /
# 0.707, losing to random picks taken as the audit on two sets: left out.
AUDIT_HALF_WIDTH = 0.15
# Below this many human labels per class, picks are typical images of each class. Off: measured (3 rounds of 2 %
# reviews; inked_digits / shapes_and_digits / demo) 0.787 / 0.675 / 0.935 off against 0.775 / 0.675 / 0.926 at 3.
COLD_START_PER_CLASS = 0
# After the cold start, the k picks are spread by k-center greedy over the POOL_FACTOR * k most uncertain images.
# Measured as queue minus random (mean of 5 seeds) after 3 rounds of 2 % reviews, in points, on the three sets
# (demo / inked_digits / shapes_and_digits) and, in brackets, as the mean over 3 random 90 % subsets of each set
# with the worst of those 9 runs: pool 10: +1.41 / +0.85 / -0.47 (+1.67 / +1.43 / +0.07, worst -0.21); 3: +1.28 /
# +2.85 / -0.40 (+1.82 / +1.78 / -0.56, worst -0.93); 2: +1.75 / +2.72 / +0.05 (+2.14 / +2.20 / +0.37, worst
# +0.11); 1 (the most uncertain, no spreading): +1.01 / +2.58 / +0.71 (+2.12 / +1.29 / +0.67, worst -0.03). The
# disagreement bonus at 0 instead of 0.5: +0.68 / +1.12 / -0.10 (+2.09 / +1.66 / -0.86, worst -1.60). Also tried at
# pool 2, as the mean over the three sets (and over the 9 subsets): the round's outlier score added to the priority
# at weight 0.5 or 1 (open-set active learning: spend no review on images of no class) +1.34 and +1.22 (+1.78 and
# +1.53, worst -0.44 and -0.38); images with an outlier score of 0.5 or more (the page's "fits no class") left out
# +0.26 (+0.60, worst -1.10); a quarter or a half of the picks at random +0.87 and +0.83 (+1.17 and +0.84).
# Information density (Settles & Craven, "An Analysis of Active Learning Strategies for Sequence Labeling Tasks",
# 2008: the uncertainty times the mean cosine to the 10 nearest images) before the pool: +1.75 / +2.25 / -1.21, and
# on inked_digits / shapes_and_digits rendered with another seed +2.16 / +0.24, against +1.75 / +2.72 / +0.05 and
# +3.16 / +0.68 as is.
POOL_FACTOR = 2
# The possible label mistakes go first, all but those the person confirmed (gave again as they were). Measured with
# a simulated person who is never wrong, queue minus random as above (and on the two new sets rendered with another
# seed): confirmed ones left out, as now, +1.95 / +2.98 / +0.12 (+3.23 / +0.24); every possible mistake first each
# round +1.75 / +2.72 / +0.05 (+3.16 / +0.68), 17-80 % of rounds 2-3's picks then re-reviewing right labels on hard
# images (the queue's own earlier picks, which out-of-sample students often predict as another class). Measured
# against the latter and left out: no mistake picks at all +2.15 / +3.32 / -0.32 (+4.30 / +2.51); a possible
# mistake admitted only when it is likelier wrong than the unlabeled image it displaces (Bayes' rule with the person
# wrong 5 % of the time, the wrong label standing for the likeliest other class) gives the no-mistake figures, but
# then none of 20 planted wrong labels among 200 reaches the queue (mistakes_queued 0.0 on all three sets, against
# 1.00 / 0.77 / 0.75): the out-of-sample probabilities are too flat here to tell a planted label (a chance of
# 0.12-0.15 of being wrong) from a right one on a hard image (0.08); admitted when likelier wrong than a random
# review (the mean of 1 - top probability over the unlabeled images): the same, none queued. Cleanlab's
# confident-joint rule in place of "predicted as another class" (flagged only where another class's out-of-sample
# probability reaches that class's mean self-confidence): +1.81 / +2.58 / -0.62 (+2.96 / +1.27), and planted mistakes
# found fall to 0.65 / 0.67 / 0.63. With the confirmed rule, against its +1.95 / +2.98 / +0.12 (+3.23 / +0.24), mean
# +1.70: pool 1 +1.72, pool 3 +1.66, disagreement bonus 0 +1.59 (0.25 and 1 change no pick); BADGE's k-means++ over
# the head's gradient embeddings in place of pool and k-center (Ash et al., "Deep Batch Active Learning by Diverse,
# Uncertain Gradient Lower Bounds", ICLR 2020) +0.69, and with the person's labels as already covered +0.95;
# human_weight 1 or 2 instead of 5: +1.66 and +1.51.


def k_center_greedy(points: np.ndarray, k: int, *, covered: np.ndarray | None = None) -> np.ndarray:
    """Pick `k` rows of `points` (N, D) that spread over the space: each pick is the point farthest from every
    earlier pick and from the `covered` points (M, D) (Sener & Savarese, "Active Learning for Convolutional
    Neural Networks: A Core-Set Approach", 2018). Returns indices in pick order."""
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
    for _ in range(k):
        pick = int(np.argmax(nearest)) if np.isfinite(nearest).any() else 0
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
    members), spread by k-center greedy over the `pool_per_pick` most typical per pick. A class's typicality is
    measured on at most `sample` of its members. probs (N, C), embeddings (N, D). Returns rows, best first."""
    predicted = np.asarray(probs).argmax(axis=1)[candidates]
    n_classes = np.asarray(probs).shape[1]
    rng = np.random.default_rng(seed)
    quota = np.zeros(n_classes, int)
    sizes = np.bincount(predicted, minlength=n_classes)
    for turn in range(k):  # round-robin over the classes that still have members
        open_classes = np.flatnonzero(sizes > quota)
        if not len(open_classes):
            break
        quota[open_classes[turn % len(open_classes)]] += 1
    picks_by_class = []
    for label in np.flatnonzero(quota):
        members = candidates[predicted == label]
        if len(members) > sample:
            members = rng.choice(members, sample, replace=False)
        x = np.asarray(embeddings[members], np.float32)
        distances = np.sqrt(_squared_distances(x, x))
        nearest = np.sort(distances, axis=1)[:, 1:neighbours + 1]
        typicality = 1.0 / (nearest.mean(axis=1) + 1e-6) if nearest.size else np.ones(len(members))
        pool = members[np.argsort(-typicality, kind="stable")[:pool_per_pick * quota[label]]]
        picks_by_class.append(list(pool[k_center_greedy(embeddings[pool], int(quota[label]))]))
    ordered = []  # interleave the classes so the first picks already cover many of them
    for turn in range(max((len(p) for p in picks_by_class), default=0)):
        ordered += [p[turn] for p in picks_by_class if turn < len(p)]
    return np.array(ordered[:k], int)


def audit_needed(shares: list[dict], *, half_width: float = AUDIT_HALF_WIDTH) -> bool:
    """Whether the next reviews should be random audit picks: no audit yet, or some class share (or the share of
    "none of these") of engine.estimates.class_share_estimates is not yet known to +-`half_width` (95 %). Until
    then the class prior the rounds and the queue lean on is too rough to trust."""
    if not shares or not shares[0]["n"]:
        return True
    return max((share["high"] - share["low"]) / 2 for share in shares) > half_width


def rank_review_queue(teacher_probs: np.ndarray, zeroshot_probs: np.ndarray, labels: np.ndarray,
                      human: np.ndarray, embeddings: np.ndarray, *, k: int, mistakes: np.ndarray | None = None,
                      pool_factor: int = POOL_FACTOR, disagreement_bonus: float = 0.5,
                      cold_start_per_class: int = COLD_START_PER_CLASS,
                      audit_picks: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Rank images for review; returns (indices (<= k,), reasons).

    teacher_probs, zeroshot_probs: (N, C), the round's refined predictions (what the page shows) and zero-shot's.
    labels: (N,) current label per image, -1 = none. human: (N,) bool, the label came from a person. embeddings:
    (N, D), used to spread picks. mistakes: rows whose human label is a possible mistake, most likely first
    (`label_quality` over out-of-sample probabilities: a student that trained on a label cannot judge it; the
    labels the person confirmed left out). audit_picks: rows drawn into the random audit and waiting for a label
    (engine.audit draws them while `audit_needed`), in draw order.

    First the possible label mistakes. Then the audit picks, if any. Otherwise, among images no person
    labeled: while there are fewer than `cold_start_per_class` human labels per class, `typical_picks` (typical,
    class-balanced); after that the most uncertain ones (small top-1 minus top-2 margin, less
    `disagreement_bonus` when zero-shot and teacher disagree), thinned to a pool of `pool_factor * k` and chosen
    by k-center greedy so the picks cover different regions instead of `k` near-copies of one confusing case.
    """
    teacher_probs = np.asarray(teacher_probs)
    labels, human = np.asarray(labels), np.asarray(human, bool)
    predicted = teacher_probs.argmax(axis=1)
    picked = np.asarray(mistakes if mistakes is not None else [], int)[:k]
    reasons = [MISTAKE] * len(picked)
    remaining = k - len(picked)
    candidates = np.flatnonzero(~human)
    if remaining <= 0 or not len(candidates):
        return picked, reasons
    if audit_picks is not None and len(audit_picks):
        drawn = np.asarray(audit_picks, int)[:remaining]
        return np.concatenate([picked, drawn]).astype(int), reasons + [AUDIT] * len(drawn)
    if (human & (labels >= 0)).sum() < cold_start_per_class * teacher_probs.shape[1]:
        typical = typical_picks(teacher_probs, embeddings, candidates, remaining)
        return np.concatenate([picked, typical]).astype(int), reasons + [TYPICAL] * len(typical)
    top_two = -np.sort(-teacher_probs[candidates], axis=1)[:, :2]
    margin = top_two[:, 0] - (top_two[:, 1] if teacher_probs.shape[1] > 1 else 0)
    disagree = np.asarray(zeroshot_probs)[candidates].argmax(axis=1) != predicted[candidates]
    priority = margin - disagreement_bonus * disagree
    pool = candidates[np.argsort(priority, kind="stable")[:pool_factor * remaining]]
    uncertain = pool[k_center_greedy(embeddings[pool], remaining, covered=embeddings[human])]
    disagrees = np.asarray(zeroshot_probs)[uncertain].argmax(axis=1) != predicted[uncertain]
    return (np.concatenate([picked, uncertain]).astype(int),
            reasons + [DISAGREE if d else UNCERTAIN for d in disagrees])
