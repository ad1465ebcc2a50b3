"""Teams: consensus and agreement with simulated people (issue 29's yardstick).

    PYTHONPATH=. python -m benchmarks.bench_teams [--cache DIR] [--sets demo,inked_digits] [--seeds 5]

Three simulated people label with known, class-dependent error rates (10 %, 25 % and 40 % on average; each class's
rate is the person's times a factor drawn from 0.5..1.5), 70 % of each one's mistakes going to one favourite wrong
class per true class and the rest spread over the other wrong classes. All three label every image of a random 20 %
slice (the overlap); each other image is labelled by one of them at random. The model's probabilities are
out-of-sample: a logistic regression on the embeddings, cross-fitted in 5 folds on the labels as majority vote makes
them. On the overlap slice it prints, per set (mean over seeds, and each seed's worst case where it matters): the
accuracy of majority vote, of the model-aware consensus (CROWDLAB), of the model alone and of each person against the
truth; each person's estimated accuracy against their true one (absolute error, and whether the estimates rank the
people as their true accuracies do); and the largest difference between our kappas and scikit-learn's
`cohen_kappa_score` and statsmodels' `fleiss_kappa` on the same labels. One JSON line per set.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score
from sklearn.model_selection import StratifiedKFold
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa as statsmodels_fleiss

from benchmarks.bench_selftrain import demo_arrays
from benchmarks.selftrain_sets import embedded_set
from engine.learning.agreement import (MISSING, crowdlab, fleiss_kappa, majority_vote, pairwise_kappas,
                                       person_accuracy)

ERROR_RATES = (0.10, 0.25, 0.40)
FAVOURITE_SHARE = 0.7  # of a person's mistakes, the share that goes to their favourite wrong class
OVERLAP = 0.2


def simulate_people(truth: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """(N, P) each simulated person's label of every image (the benchmark hides some of them afterwards)."""
    labels = np.empty((len(truth), len(ERROR_RATES)), np.int64)
    for person, rate in enumerate(ERROR_RATES):
        factors = rng.uniform(0.5, 1.5, n_classes)
        factors /= factors[truth].mean()  # the person's mean error rate over these images is `rate`
        class_rate = np.clip(rate * factors, 0, 0.95)
        favourite = (np.arange(n_classes) + rng.integers(1, n_classes, n_classes)) % n_classes
        wrong = rng.random(len(truth)) < class_rate[truth]
        to_favourite = rng.random(len(truth)) < FAVOURITE_SHARE
        others = (truth + rng.integers(1, n_classes, len(truth))) % n_classes
        redraw = others == favourite[truth]
        while redraw.any():  # the rest of the mistakes: any wrong class but the favourite
            others[redraw] = (truth[redraw] + rng.integers(1, n_classes, int(redraw.sum()))) % n_classes
            redraw = others == favourite[truth]
        if n_classes == 2:
            others = favourite[truth]
        labels[:, person] = np.where(wrong, np.where(to_favourite, favourite[truth], others), truth)
    return labels


def out_of_sample_probs(x: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """(N, K) probabilities of a logistic regression on the embeddings that never saw the image's own label."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    probs = np.zeros((len(x), n_classes))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    for train, test in folds.split(x, labels):
        model = LogisticRegression(C=10.0, max_iter=1000).fit(x[train], labels[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return probs


def reference_kappa_gap(labels: np.ndarray, n_classes: int) -> float:
    """The largest difference between our kappas and scikit-learn's / statsmodels' on the same labels."""
    gaps = [abs(kappa - cohen_kappa_score(labels[:, a], labels[:, b], labels=np.arange(n_classes)))
            for a, b, kappa, _ in pairwise_kappas(labels, n_classes)]
    table, _ = aggregate_raters(labels, n_cat=n_classes)
    gaps.append(abs(fleiss_kappa(labels, n_classes) - statsmodels_fleiss(table)))
    return float(max(gaps))


def run_seed(x: np.ndarray, truth: np.ndarray, n_classes: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    everyone = simulate_people(truth, n_classes, rng)
    overlap = rng.random(len(truth)) < OVERLAP
    labels = np.full_like(everyone, MISSING)
    labels[overlap] = everyone[overlap]
    single = np.flatnonzero(~overlap)
    chosen = rng.integers(0, everyone.shape[1], len(single))
    labels[single, chosen] = everyone[single, chosen]
    probs = out_of_sample_probs(x, majority_vote(labels, n_classes), n_classes, seed)
    majority = majority_vote(labels, n_classes, probs)
    consensus = crowdlab(labels, probs)
    estimated = person_accuracy(labels, probs)
    true = (everyone[overlap] == truth[overlap, None]).mean(axis=0)
    slice_truth = truth[overlap]
    return {"majority": float(np.mean(majority[overlap] == slice_truth)),
            "model_aware": float(np.mean(consensus.labels[overlap] == slice_truth)),
            "model": float(np.mean(probs[overlap].argmax(axis=1) == slice_truth)),
            "people": true.tolist(), "estimated": estimated.tolist(),
            "kappa_gap": reference_kappa_gap(labels[overlap], n_classes), "overlap_images": int(overlap.sum())}


def summarise(name: str, runs: list[dict]) -> dict:
    def mean(key):
        return round(float(np.mean([run[key] for run in runs])), 4)

    true = np.array([run["people"] for run in runs])
    estimated = np.array([run["estimated"] for run in runs])
    best_person = true.max(axis=1)
    margins = np.array([run["model_aware"] - run["majority"] for run in runs])
    return {"set": name, "seeds": len(runs), "overlap_images": runs[0]["overlap_images"],
            "accuracy": {"majority": mean("majority"), "model_aware": mean("model_aware"), "model": mean("model"),
                         "people": {f"{rate:.0%} error": round(float(v), 4)
                                    for rate, v in zip(ERROR_RATES, true.mean(axis=0))}},
            "model_aware_minus_majority": {"mean": round(float(margins.mean()), 4),
                                           "worst_seed": round(float(margins.min()), 4)},
            "model_aware_minus_best_person": {
                "mean": round(float(np.mean([r["model_aware"] for r in runs] - best_person)), 4),
                "worst_seed": round(float(np.min([r["model_aware"] for r in runs] - best_person)), 4)},
            "estimated_accuracy": {f"{rate:.0%} error": round(float(v), 4)
                                   for rate, v in zip(ERROR_RATES, estimated.mean(axis=0))},
            "estimate_abs_error": {"mean": round(float(np.abs(estimated - true).mean()), 4),
                                   "max": round(float(np.abs(estimated - true).max()), 4)},
            "estimates_rank_people_right": int(sum((np.argsort(e) == np.argsort(t)).all()
                                                   for e, t in zip(estimated, true))),
            "kappa_max_gap_to_sklearn_statsmodels": float(max(run["kappa_gap"] for run in runs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "labelloop-bench-sets",
                        help="where the rendered and embedded sets are cached")
    parser.add_argument("--sets", default="demo,inked_digits")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    for name in args.sets.split(","):
        x, truth, text, _ = demo_arrays(args.cache / "demo") if name == "demo" else embedded_set(name, args.cache)
        keep = truth >= 0
        runs = [run_seed(x[keep], truth[keep], text.shape[0], seed) for seed in range(args.seeds)]
        print(json.dumps(summarise(name, runs)), flush=True)


if __name__ == "__main__":
    main()
