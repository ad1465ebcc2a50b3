"""Multi-label projects against ground truth: per-tag zero-shot, then rounds, on the tagged sketches of
benchmarks/multilabel_sets.py (1500 pictures of 2 x 2 cells holding 0-3 of the demo's 8 shapes, tags imbalanced 6 to
1), embedded with the embedded demo model and cached in --cache.

    python -m benchmarks.bench_multilabel [--cache DIR] [--ablations] [--no-refine] [--sizes 100000]

Every figure is measured on the same held-out 20 % of the pictures, which no simulated person ever tags (the rounds
still predict them, as a project's rounds predict every image). Prints one JSON object: per method the mean over
tags of the average precision (map), of F1 at probability 0.5 (f1), the share of pictures whose predicted tag set is
exactly right (exact), and per tag AP and F1. Methods:

- zero_shot_softmax: CLIP's softmax over the tags (the single-label rule): AP of its probabilities, and its top tag
  taken as the picture's only tag for F1 and exact.
- zero_shot: the per-tag rule of engine.learning.tags.zero_shot_tag_probs (median-centred similarity, a shared-variance
  two-Gaussian mixture per tag). With --ablations also zero_shot_mean_centred (the same centred by the mean).
- round_1 / rounds_3: 1 or 3 rounds without any tag from a person (pseudo-tags only), each taught by the one before.
- queue_2pct / random_2pct: a simulated person tags 2 % of the pictures (every tag looked at), picked by the review
  queue's least-sure-tag order over zero-shot (engine.learning.tags.least_sure_order) or at random (mean of 5 seeds), then
  one round. With --ablations also queue_entropy_2pct: the pictures whose tags' binary entropies sum highest.
- queue_3x2pct / random_3x2pct: 3 rounds, before each the person tags 2 % more, picked by the queue over the
  round before (zero-shot before the first) or at random (mean of 5 seeds); each round taught by the one before.
- oracle: every picture outside the held-out 20 % tagged by the person, then one round: the ceiling of this head on
  these embeddings.

Every round is refined over the set's kNN graph (engine.learning.selftrain.tag_propagation.refine_tags) as a
project's is; --no-refine measures them without. `mistakes`: after queue_3x2pct's tags, with a share of the person's
answers flipped, how many of the flipped answers the round's out-of-sample scores (engine.learning.tags.tag_mistakes)
flag, and how many of the flags are flipped answers.

--sizes times, on planted 512-d embeddings with 20 tags (tests/synthetic.py), the per-tag zero-shot and one round
over arrays with 2 % of the images tagged (`zero_shot_seconds`, `round_seconds`, cross-fitting and refinement
included; no database), and apart the kNN graph (`graph_seconds`: built once per model, then cached by a project).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, f1_score

from benchmarks.multilabel_sets import embedded_tagged_set
from engine.learning.neighbours import knn_graph
from engine.learning.probabilities import cosine_probs
from engine.learning.selftrain.config import RoundConfig
from engine.learning.selftrain.propagate import affinity_matrix
from engine.session.tag_rounds import tag_round
from engine.learning.tags import (MISSING_TAG, WRONG_TAG, least_sure_order, tag_mistakes, tag_stats,
                                  two_gaussian_posterior, zero_shot_tag_probs)

REVIEW_SHARE = 0.02
RANDOM_SEEDS = 5
FLIPPED_SHARE = 0.05  # of the person's answers, flipped to measure the mistake scores


def scores(truth: np.ndarray, probs: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict:
    """mAP, macro F1 and exact-set accuracy of `probs` / `predicted` (N, C) against `truth` (N, C), and per tag."""
    ap = [float(average_precision_score(truth[:, c], probs[:, c])) for c in range(truth.shape[1])]
    f1 = [float(f1_score(truth[:, c], predicted[:, c], zero_division=0)) for c in range(truth.shape[1])]
    return {"map": round(float(np.mean(ap)), 3), "f1": round(float(np.mean(f1)), 3),
            "exact": round(float((predicted == truth).all(axis=1).mean()), 3),
            "per_tag": {name: {"ap": round(a, 3), "f1": round(f, 3)} for name, a, f in zip(names, ap, f1)}}


def mean_scores(runs: list[dict]) -> dict:
    """The mean of several `scores` (random draws)."""
    mean = {key: round(float(np.mean([run[key] for run in runs])), 3) for key in ("map", "f1", "exact")}
    mean["per_tag"] = {name: {key: round(float(np.mean([run["per_tag"][name][key] for run in runs])), 3)
                              for key in ("ap", "f1")} for name in runs[0]["per_tag"]}
    return mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "labelloop-bench-sets",
                        help="where the embedded set is cached")
    parser.add_argument("--ablations", action="store_true", help="also the alternatives to the chosen rules")
    parser.add_argument("--sizes", default="", help="image counts to time a round at, such as 100000")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                        help="refine every round over the kNN graph (default; --no-refine: the head alone)")
    args = parser.parse_args()
    x, truth, text, scale, names = embedded_tagged_set(args.cache)
    rng = np.random.default_rng(0)
    held_out = np.zeros(len(x), bool)
    held_out[rng.permutation(len(x))[: len(x) // 5]] = True
    pool = np.flatnonzero(~held_out)
    config = RoundConfig(refine=args.refine)
    affinity = affinity_matrix(*knn_graph(x, config.neighbours))
    nobody = np.zeros_like(truth)

    def judged(probs: np.ndarray, predicted: np.ndarray | None = None) -> dict:
        predicted = probs >= 0.5 if predicted is None else predicted
        return scores(truth[held_out], probs[held_out], predicted[held_out], names)

    def round_after(rows: np.ndarray, teacher: np.ndarray) -> np.ndarray:
        looked = np.zeros_like(truth)
        looked[rows] = True
        return tag_round(x, text, scale, teacher, truth & looked, looked, config, affinity=affinity).probs

    def three_rounds(pick, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """3 rounds, before each `pick(probs, tagged, rng)` rows more tagged by the person; (probs, tagged)."""
        picker, tagged, probs = np.random.default_rng(seed), np.zeros(len(x), bool), zero_shot
        for _ in range(3):
            tagged[pick(probs, tagged, picker)] = True
            probs = round_after(np.flatnonzero(tagged), probs)
        return probs, tagged

    softmax = cosine_probs(x, text, scale)
    zero_shot = zero_shot_tag_probs(x, text)
    results = {"set": {"images": len(x), "tags": names, "held_out": int(held_out.sum()),
                       "tags_per_image": round(float(truth.sum(axis=1).mean()), 2),
                       "tag_shares": {n: round(float(s), 3) for n, s in zip(names, truth.mean(axis=0))}},
               "zero_shot_softmax": judged(softmax, softmax == softmax.max(axis=1, keepdims=True)),
               "zero_shot": judged(zero_shot)}
    if args.ablations:
        similarity = x @ text.T
        centred = similarity - similarity.mean(axis=1, keepdims=True)
        results["zero_shot_mean_centred"] = judged(
            np.stack([two_gaussian_posterior(centred[:, c]) for c in range(len(names))], axis=1))
    teacher = zero_shot
    for number in range(1, 4):
        teacher = tag_round(x, text, scale, teacher, nobody, nobody, config, affinity=affinity).probs
        if number in (1, 3):
            results["round_1" if number == 1 else "rounds_3"] = judged(teacher)
    budget = int(round(REVIEW_SHARE * len(x)))
    candidates = np.zeros(len(x), bool)
    candidates[pool] = True
    queue_rows = least_sure_order(zero_shot, candidates)[0][:budget]
    results["queue_2pct"] = judged(round_after(queue_rows, zero_shot))
    if args.ablations:
        entropy = tag_stats(zero_shot)["entropy"]
        results["queue_entropy_2pct"] = judged(round_after(pool[np.argsort(-entropy[pool], kind="stable")][:budget],
                                                           zero_shot))
    results["random_2pct"] = mean_scores([
        judged(round_after(np.random.default_rng(seed).choice(pool, budget, replace=False), zero_shot))
        for seed in range(RANDOM_SEEDS)])
    queue_probs, queue_tagged = three_rounds(lambda probs, tagged, _: least_sure_order(
        probs, candidates & ~tagged)[0][:budget], seed=0)
    results["queue_3x2pct"] = judged(queue_probs)
    results["random_3x2pct"] = mean_scores([
        judged(three_rounds(lambda probs, tagged, rng: rng.choice(np.setdiff1d(pool, np.flatnonzero(tagged)), budget,
                                                                  replace=False), seed=seed)[0])
        for seed in range(RANDOM_SEEDS)])
    results["oracle"] = judged(round_after(pool, zero_shot))
    results["mistakes"] = flagged_mistakes(x, text, scale, truth, queue_tagged, queue_probs, config, affinity)
    results["reviews"] = budget
    results["refine"] = args.refine
    results["timing"] = [timing(int(size), refine=args.refine) for size in args.sizes.split(",") if size]
    print(json.dumps(results))


def flagged_mistakes(x, text, scale, truth, tagged, teacher, config, affinity, seed: int = 0) -> dict:
    """FLIPPED_SHARE of the answers a person gave on the `tagged` rows flipped, one round: of the flipped answers,
    the share flagged (recall), of the flags the share flipped (precision), per kind (missing: a tag said absent)."""
    looked = np.zeros_like(truth)
    looked[tagged] = True
    flipped = looked & (np.random.default_rng(seed).random(truth.shape) < FLIPPED_SHARE)
    given = truth ^ flipped
    output = tag_round(x, text, scale, teacher, given & looked, looked, config, affinity=affinity)
    mistake = tag_mistakes(output.crossfit_probs, given[output.tagged], looked[output.tagged])[1]
    answers, planted = given[output.tagged], flipped[output.tagged]
    result = {"answers": int(looked.sum()), "flipped": int(flipped.sum())}
    kinds = {"missing": (mistake == MISSING_TAG, planted & ~answers), "wrong": (mistake == WRONG_TAG, planted & answers),
             "all": (mistake > 0, planted)}
    for name, (flags, truly) in kinds.items():
        hits = int((flags & truly).sum())
        result[name] = {"flags": int(flags.sum()), "planted": int(truly.sum()),
                        "recall": round(hits / max(int(truly.sum()), 1), 3),
                        "precision": round(hits / max(int(flags.sum()), 1), 3)}
    return result


def timing(size: int, dim: int = 512, tags: int = 20, *, refine: bool = True) -> dict:
    """Seconds of the per-tag zero-shot, of the kNN graph and of one round over `size` planted embeddings, 2 % of them
    tagged."""
    from tests.synthetic import planted_embeddings

    x, y, text = planted_embeddings(size, dim, tags, seed=0)
    truth = np.eye(tags, dtype=bool)[y]
    started = time.perf_counter()
    zero_shot = zero_shot_tag_probs(x, text)
    zero_shot_seconds = time.perf_counter() - started
    looked = np.zeros_like(truth)
    looked[: int(REVIEW_SHARE * size)] = True
    config = RoundConfig(refine=refine)
    started = time.perf_counter()
    affinity = affinity_matrix(*knn_graph(x, config.neighbours))
    graph_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tag_round(x, text, 50.0, zero_shot, truth & looked, looked, config, affinity=affinity)
    return {"images": size, "dim": dim, "tags": tags, "refine": refine, "zero_shot_seconds": round(zero_shot_seconds, 2),
            "graph_seconds": round(graph_seconds, 2), "round_seconds": round(time.perf_counter() - started, 2)}


if __name__ == "__main__":
    main()
