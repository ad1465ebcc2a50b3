"""The learning loop against ground truth on five image sets, and the speed of one round at scale.

    python -m benchmarks.bench_selftrain [--cache DIR] [--sets demo,inked_digits,shapes_and_digits,neon_shapes,
                                         cloth_stamps] [--sizes 1000000] [--ablations]

Prints one JSON line per set (the table row), a line of targets, then the table in Markdown. The sets
(benchmarks/selftrain_sets.py; three of them long-tailed) are embedded with the embedded demo model on the CPU and
cached in --cache. About 5 minutes for the five on 2 shared cores once cached (the audit columns are 20 draws, the
queue and random 5, the 200-image audit 5, the oracle 2). Columns:

- zero_shot: accuracy of CLIP zero-shot; probe: the linear-probe ceiling (logistic regression trained on 80 % true
  labels, 5-fold); unsup_3 / unsup_3_refined: 3 rounds without any label and so without an audit (the no-prior
  rule of RoundConfig.share_step_without_prior), without and with the kNN-graph refinement; gap_closed:
  (unsup_3_refined - zero_shot) / (probe - zero_shot).
- audit_3: 3 % of the images drawn at random and labelled by the simulated person before the first round (a random
  audit), then 3 rounds whose pseudo-label quotas follow the audit's class prior
  (engine.learning.quality_estimates.class_prior) and which, as the engine's rounds, train on no audited image (their
  labels give the prior and the estimate): the accuracy of the labels (the person's where given), mean of AUDIT_DRAWS
  draws. audit_3_trained: the same with the audited images training the rounds as human labels (the alternative the
  engine's rule was chosen over).
- queue / random / random_audit / oracle: 3 rounds, before each a simulated person gives the true label to 2 % of
  the images picked by the review queue (random audit picks while engine.learning.review_ranking.audit_needed, held out
  of training and giving the rounds their prior; then uncertainty), at random with no prior (random, mean of 5 seeds),
  at random taken as the audit (held out, its prior given to the rounds: random_audit, 5 seeds), or at random among
  the images the teacher has wrong (the mistakes-only oracle, no audit, mean of 2 seeds): the accuracy of the labels
  (the person's where given, else the prediction). An image of no class that a person reviews gets "none of these".
  queue_minus_random: queue - random.
- coverage / half_width: over the audit_3 draws, each round's accuracy estimate
  (engine.learning.quality_estimates.accuracy_estimate, zero-shot's for round 0) as the engine makes it: the audited
  images judged by the round's predictions (it never trained on them), over the images no person labelled; coverage is
  the share of (draw, round) checks whose 95 % interval holds the true accuracy of those images, half_width the
  interval's mean half-width. coverage_trained (and half_width_trained in the JSON): the same when the audit trains the
  rounds, an audited image labelled before a round judged by the round's cross-fitted probabilities
  (RoundOutput.crossfit_probs). half_width_200: the mean half-width with a 200-image audit (LARGE_AUDIT_DRAWS draws);
  half_width_200_trained (JSON) the same when that audit trains the rounds.
- mistakes_found: 200 random images given human labels, 10 % of them planted wrong; one round; the share of the
  planted ones among the first 2 x 20 of the queue's mistake picks (out-of-sample normalized margin), mean over
  MISTAKE_DRAWS draws of the planted labels (one draw moves it by 0.05 to 0.15). mistakes_queued: the share of the
  planted ones in the review queue's next 2 % (what a person is shown); queued_labels_wrong (JSON only): the share
  of that queue's picks among the person's labels that are planted ones (the rest re-review right labels).
- outlier_auroc: how well the outlier score of the 3rd unsupervised round separates images of no class from the
  rest (sets that have them); outlier_ceiling: the same for a linear probe trained on 80 % true labels with no
  class as a class of its own (5-fold): what the embeddings allow when the answer is shown.

Accuracies count only images of a class. --sizes times `run_round` on planted 512-d embeddings (first round builds
and caches the kNN graph, the second reuses it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.selftrain_sets import SETS, embedded_set
from engine.demo.dataset import read_ground_truth
from engine.demo.render import SHAPES
from engine.demo.setup import prepare_demo
from engine.project.folder import open_project
from engine.learning.quality_estimates import accuracy_estimate, class_prior, class_share_estimates
from engine.learning.review_ranking import (AUDIT, AUDIT_HALF_WIDTH, COLD_START_PER_CLASS, audit_needed, label_quality,
                                            rank_review_queue)
from engine.learning.probabilities import cosine_probs
from engine.learning.selftrain.adapt import adapt
from engine.learning.selftrain.config import RoundConfig
from engine.learning.selftrain.head import zero_shot_head
from engine.learning.neighbours import knn_graph
from engine.learning.selftrain.propagate import affinity_matrix
from engine.session.round_runner import run_round
from tests.synthetic import planted_embeddings, synthetic_project
from tests.tiny_model import make_tiny_model

SHARE = 0.02
RANDOM_SEEDS = 5  # one random draw moves the figure by about 0.01
ORACLE_SEEDS = 2  # fewer than for random, to keep one run of the table within minutes
MISTAKE_DRAWS = 3  # draws of the 200 labels and the 20 planted wrong; each is one round, so they cost seconds
AUDIT_SHARE = 0.03  # the audit_3 column: this share of the images audited at random before the first round
AUDIT_DRAWS = 20  # audit draws per set for audit_3 and the estimate's coverage (4 rounds each: 80 checks a set)
LARGE_AUDIT_DRAWS = 5  # draws of a 200-image audit for half_width_200 (its half-width moves little between draws)
QUEUE_SEEDS = 5  # the queue's audit picks are random: its figure is the mean of this many draws of them
ABLATION_DRAWS = 4  # audit draws for each prior-quota alternative of --ablations


def demo_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    root, _ = prepare_demo(folder)
    truth = read_ground_truth(folder / "ground_truth.csv")
    with open_project(root) as project:
        store = project.store
        model_id = store.get_meta("model_id")
        image_ids, embeddings = store.embeddings(model_id)
        relpaths = store.relpaths()
        _, text_weights, scale = store.class_weights(model_id)
    labels = np.array([SHAPES.index(truth[relpaths[i]]) for i in image_ids.tolist()])
    return embeddings, labels, text_weights, scale


class Bench:
    """One set: embeddings x (N, D), truth y (N,) (-1 = no class), the zero-shot classifier and the kNN graph."""

    def __init__(self, x: np.ndarray, y: np.ndarray, text: np.ndarray, scale: float, config: RoundConfig):
        self.x, self.y, self.text, self.scale, self.config = x, y, text, scale, config
        self.in_class = y >= 0
        self.affinity = affinity_matrix(*knn_graph(x, config.neighbours))

    def accuracy(self, labels: np.ndarray) -> float:
        return round(float((labels == self.y)[self.in_class].mean()), 4)

    def simulate(self, rounds: int, *, config: RoundConfig | None = None, fixes: str | None = None,
                 seed: int = 0, planted: tuple[np.ndarray, np.ndarray] | None = None,
                 cold_start: int = COLD_START_PER_CLASS, audit: int = 0, prior: bool = True,
                 train_on_audit: bool = False, audit_half_width: float = AUDIT_HALF_WIDTH) -> list[dict]:
        """`rounds` rounds; before each, a simulated person gives the true label to SHARE of the images, chosen by
        the review queue (fixes="queue": random audit picks while `audit_needed`, then uncertainty), at random
        ("random"), or among the images the teacher has wrong ("oracle"). `planted`: (rows, labels) a person gave
        before the first round (labels may be wrong). `audit`: that many images drawn at random (`seed`) and
        labelled before the first round. The random picks (audit and fixes="random") are the audit: with `prior`,
        each round's quotas follow engine.learning.quality_estimates.class_prior over them (and the queue audits while
        queue.audit_needed says so). `train_on_audit` False (the engine's rule): the audited images train no round
        (their labels only give the prior and the estimates). Each round's entry has under "check" the accuracy estimate from the
        audit as the engine makes it (None without an audit) and the true accuracy over the images no person
        labelled ("truth")."""
        config = config or self.config
        x, y = self.x, self.y
        n_classes = len(self.text)
        zero_shot = zero_shot_head(self.text, self.scale)
        zero_probs = cosine_probs(x, self.text, self.scale)
        teacher, probs = zero_shot, zero_probs
        human = np.zeros(len(y), bool)
        given = np.full(len(y), -1)
        if planted is not None:
            human[planted[0]], given[planted[0]] = True, planted[1]
        rng = np.random.default_rng(seed)
        audited = rng.choice(len(y), audit, replace=False) if audit else np.zeros(0, int)
        affinity = self.affinity if config.refine else None
        mistakes = np.zeros(0, int)
        confirmed = np.zeros(len(y), bool)  # labels the person gave again as they were: never flagged again
        k = int(round(SHARE * len(y)))
        audit_probs = probs  # out-of-sample predictions of the audited images (zero-shot's before any round)

        def shares() -> list[dict]:
            return class_share_estimates(y[audited], audit_probs[audited], probs[~human]) if len(audited) else []

        def queue() -> tuple[np.ndarray, list[str]]:
            estimated = shares() if prior else []
            needed = prior and audit_needed(estimated, half_width=audit_half_width)
            drawn = (np.random.default_rng(seed + len(audited)).choice(np.flatnonzero(~human), k, replace=False)
                     if needed else None)  # the engine's audit: uniform over the images no person labelled
            return rank_review_queue(probs, zero_probs, human, x, k=k, mistakes=mistakes,
                                     cold_start_per_class=cold_start, audit_picks=drawn)

        def check() -> dict | None:  # the accuracy estimate over the images no person labelled, and the truth
            if not len(audited):
                return None
            estimate = accuracy_estimate(y[audited], audit_probs[audited], probs[~human])
            return {**estimate, "truth": float((probs.argmax(axis=1) == y)[~human].mean())}

        upcoming, reasons = queue()  # what the review queue shows before the next round
        history = [{"round": 0, "check": None}]
        for number in range(1, rounds + 1):
            if number == 1 and len(audited):
                human[audited], given[audited] = True, y[audited]
            if number == 1:
                history[0]["check"] = check()  # zero-shot's, the audit judged by zero-shot's predictions
            if fixes:
                wrong = (probs.argmax(axis=1) != y) & self.in_class
                if fixes == "queue":
                    picks = upcoming
                    audited = np.concatenate([audited, picks[np.array(reasons) == AUDIT]]).astype(int)
                elif fixes == "oracle":
                    pool = np.flatnonzero(~human & wrong)
                    picks = rng.choice(pool, min(k, len(pool)), replace=False)
                else:
                    picks = rng.choice(np.flatnonzero(~human), k, replace=False)
                    if prior:  # random_audit: the picks are the audit; random: ordinary reviews, which train
                        audited = np.concatenate([audited, picks])
                confirmed[picks] |= human[picks] & (given[picks] == y[picks])
                human[picks], given[picks] = True, y[picks]  # y is -1 for an image of no class: "none of these"
            trained = human.copy()
            if not train_on_audit:
                trained[audited] = False
            human_index = np.flatnonzero(trained & (given >= 0))
            estimated = shares() if prior else []
            output = adapt(x, zero_shot, teacher, probs, human_index, given[human_index], human, number, config,
                           affinity=affinity, none_index=np.flatnonzero(trained & (given < 0)),
                           class_prior=class_prior(estimated, n_classes))
            teacher, probs = output.teacher, output.probs
            audit_probs = probs.copy()  # audited images labelled before this round: its cross-fitted probabilities
            if output.crossfit_probs is not None:
                audit_probs[human_index] = output.crossfit_probs
            mistakes = np.zeros(0, int)
            if output.crossfit_probs is not None:
                margin, flagged = label_quality(output.crossfit_probs, given[human_index])
                flagged &= ~confirmed[human_index]
                mistakes = human_index[flagged][np.argsort(margin[flagged], kind="stable")]
            predicted = probs.argmax(axis=1)
            upcoming, reasons = queue()
            history.append({"round": number, "predictions": self.accuracy(predicted),
                            "dataset": self.accuracy(np.where(human, given, predicted)), "check": check(),
                            "outlier": output.outlier, "mistakes": mistakes, "queue": upcoming,
                            "audited": len(audited)})
        return history

    def over_seeds(self, fixes: str, seeds: int, *, prior: bool = True,
                   audit_half_width: float = AUDIT_HALF_WIDTH) -> float:
        return round(float(np.mean([self.simulate(3, fixes=fixes, seed=seed, prior=prior,
                                                  audit_half_width=audit_half_width)[-1]["dataset"]
                                    for seed in range(seeds)])), 4)

    def probe(self) -> float:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score

        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        scores = cross_val_score(LogisticRegression(max_iter=2000, C=10.0), self.x[self.in_class],
                                 self.y[self.in_class], cv=folds)
        return round(float(scores.mean()), 4)

    def mistakes_found(self, labels: int = 200, share: float = 0.1, seed: int = 0) -> tuple[float, float, float]:
        """`labels` random images given human labels, `share` of them planted wrong, one round: (the share of the
        planted ones among the first 2 x (number planted) possible mistakes; the share of them among the next
        queue's SHARE picks; the share of those picks that are planted ones: each other pick spent on a person's
        label is spent on a right one)."""
        rng = np.random.default_rng(seed)
        rows = rng.choice(np.flatnonzero(self.in_class), labels, replace=False)
        given = self.y[rows].copy()
        planted = rows[:int(share * labels)]
        n_classes = len(self.text)
        given[:len(planted)] = (given[:len(planted)] + rng.integers(1, n_classes, len(planted))) % n_classes
        after = self.simulate(1, planted=(rows, given))[-1]
        on_labels = after["queue"][np.isin(after["queue"], rows)]
        return (float(np.isin(planted, after["mistakes"][:2 * len(planted)]).mean()),
                float(np.isin(planted, after["queue"]).mean()),
                float(np.isin(on_labels, planted).mean()) if len(on_labels) else 1.0)

    def outlier_ceiling(self) -> float | None:
        """The outlier score's ceiling: the AUROC of a linear probe's probability of "no class", the probe trained
        with true labels on 80 % of the images, no class a class of its own (5-fold): what these embeddings allow a
        linear read-out that is shown the answer."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        if self.in_class.all():
            return None
        classes = np.where(self.in_class, self.y, len(self.text))
        probs = cross_val_predict(LogisticRegression(max_iter=2000, C=10.0), self.x, classes,
                                  cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")
        return round(float(roc_auc_score(~self.in_class, probs[:, -1])), 4)

    def outlier_auroc(self, outlier: np.ndarray) -> float | None:
        from sklearn.metrics import roc_auc_score

        if self.in_class.all():
            return None
        return round(float(roc_auc_score(~self.in_class, outlier)), 4)


def estimate_checks(history: list[dict]) -> list[tuple[bool, float]]:
    """Per round of a simulation with an audit: (whether the 95 % interval of the accuracy estimate holds the true
    accuracy over the images no person labelled, its half-width)."""
    checks = [entry["check"] for entry in history if entry["check"] is not None]
    return [(check["low"] <= check["truth"] <= check["high"], (check["high"] - check["low"]) / 2) for check in checks]


def table_row(name: str, bench: Bench) -> dict:
    started = time.perf_counter()
    zero = bench.accuracy(cosine_probs(bench.x, bench.text, bench.scale).argmax(axis=1))
    probe = bench.probe()
    plain = bench.simulate(3, config=replace(bench.config, refine=False))[-1]["predictions"]
    refined = bench.simulate(3)
    row = {"set": name, "images": len(bench.y), "classes": len(bench.text),
           "no_class_share": round(float((~bench.in_class).mean()), 3), "zero_shot": zero,
           "unsup_3": plain, "unsup_3_refined": refined[-1]["predictions"], "probe": probe}
    row["gap_closed"] = round((row["unsup_3_refined"] - zero) / max(probe - zero, 1e-9), 3)
    audit = int(round(AUDIT_SHARE * len(bench.y)))
    for suffix, train in (("", False), ("_trained", True)):  # the engine's rule, and the audit training rounds
        runs = [bench.simulate(3, audit=audit, seed=seed, train_on_audit=train) for seed in range(AUDIT_DRAWS)]
        row[f"audit_3{suffix}"] = round(float(np.mean([history[-1]["dataset"] for history in runs])), 4)
        checks = [check for history in runs for check in estimate_checks(history)]
        row[f"coverage{suffix}"] = round(float(np.mean([held for held, _ in checks])), 3)
        row[f"half_width{suffix}"] = round(float(np.mean([half for _, half in checks])), 4)
    for suffix, train in (("", False), ("_trained", True)):
        row[f"half_width_200{suffix}"] = round(float(np.mean([
            half for seed in range(LARGE_AUDIT_DRAWS)
            for _, half in estimate_checks(bench.simulate(3, audit=200, seed=seed, train_on_audit=train))])), 4)
    row["queue"] = bench.over_seeds("queue", QUEUE_SEEDS)
    row["random"] = bench.over_seeds("random", RANDOM_SEEDS, prior=False)
    row["random_audit"] = bench.over_seeds("random", RANDOM_SEEDS)
    row["oracle"] = bench.over_seeds("oracle", ORACLE_SEEDS)
    row["queue_minus_random"] = round(row["queue"] - row["random"], 4)
    draws = np.mean([bench.mistakes_found(seed=seed) for seed in range(MISTAKE_DRAWS)], axis=0)
    row["mistakes_found"], row["mistakes_queued"], row["queued_labels_wrong"] = (round(float(v), 4) for v in draws)
    row["outlier_auroc"] = bench.outlier_auroc(refined[-1]["outlier"])
    row["outlier_ceiling"] = bench.outlier_ceiling()
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def ablations(name: str, bench: Bench) -> dict:
    """The alternatives the defaults were chosen over: accuracy after 3 unsupervised rounds under each (without an
    audit, so under the no-prior rule; `share_step_*`: the even split's share step without a prior), audit_3 under
    the prior-quota alternatives (`audit_*`, mean of ABLATION_DRAWS draws), and the queue's 3 rounds with typical
    cold-start picks until there are 3 human labels per class, and with its audit to other precisions."""
    base = bench.config
    variants = {"default": base, "share_step_without_prior_0.05": replace(base, share_step_without_prior=0.05),
                "share_step_without_prior_0.2": replace(base, share_step_without_prior=0.2),
                "wise_0.5_step_0.05": replace(base, share_step_without_prior=0.05, wise_alpha=0.5),
                "propagation_0.5": replace(base, propagation=0.5), "propagation_0.9": replace(base, propagation=0.9),
                "neighbours_20": replace(base, neighbours=20), "no_refinement": replace(base, refine=False)}
    result: dict = {"set": name}
    for label, config in variants.items():
        runner = bench if config.neighbours == base.neighbours else Bench(bench.x, bench.y, bench.text, bench.scale,
                                                                          config)
        result[label] = runner.simulate(3, config=config)[-1]["predictions"]
    audit = int(round(AUDIT_SHARE * len(bench.y)))
    for label, config in {"audit_default": base, "audit_share_step_0.1": replace(base, share_step=0.1),
                          "audit_share_step_0.3": replace(base, share_step=0.3),
                          "audit_rebalance_ot": replace(base, rebalance="ot"),
                          "audit_no_refinement": replace(base, refine=False)}.items():
        result[label] = round(float(np.mean([bench.simulate(3, config=config, audit=audit, seed=seed)[-1]["dataset"]
                                             for seed in range(ABLATION_DRAWS)])), 4)
    result["queue_with_cold_start_3"] = bench.simulate(3, fixes="queue", cold_start=3)[-1]["dataset"]
    for half_width in (0.07, 0.15):
        result[f"queue_audit_half_width_{half_width}"] = bench.over_seeds("queue", QUEUE_SEEDS,
                                                                          audit_half_width=half_width)
    return result


def time_round(n: int, dim: int = 512, classes: int = 20, human_share: float = 0.001) -> dict:
    """Wall time of `run_round` (read embeddings, select, cross-fit, train, predict, refine, write) on planted
    embeddings: the first round builds and caches the kNN graph, the second reads it."""
    x, y, text = planted_embeddings(n, dim, classes, seed=11)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        project = synthetic_project(scratch / "p", scratch / "images", make_tiny_model(scratch / "m"), x, text)
        setup = time.perf_counter() - started
        labeled = np.arange(0, n, int(1 / human_share))
        project.store.set_labels((labeled + 1).tolist(), y[labeled].tolist(), source="human", actor="bench")
        result = {"images": n, "dim": dim, "classes": classes, "human_labels": len(labeled),
                  "setup_seconds": round(setup, 1)}
        for attempt in ("first_round", "second_round"):
            started = time.perf_counter()
            metrics = run_round(project, RoundConfig())
            result[f"{attempt}_seconds"] = round(time.perf_counter() - started, 2)
            result[f"{attempt}_graph_seconds"] = metrics.graph_seconds
        result["accuracy"] = round(float((project.store.prediction_matrix(2)[2].argmax(1) == y).mean()), 4)
        project.close()
    return result


def markdown(rows: list[dict]) -> str:
    columns = ["set", "zero_shot", "unsup_3", "unsup_3_refined", "audit_3", "audit_3_trained", "probe", "gap_closed",
               "queue", "random", "random_audit", "oracle", "queue_minus_random", "coverage", "half_width",
               "coverage_trained", "half_width_200", "mistakes_found", "mistakes_queued", "outlier_auroc",
               "outlier_ceiling"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("n/a" if row[c] is None else str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "labelloop-bench-sets",
                        help="where the rendered sets' embeddings (and the demo) are kept between runs")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--sizes", default="", help="image counts to time a round at, such as 1000000")
    parser.add_argument("--ablations", action="store_true", help="also print the alternatives to the defaults")
    args = parser.parse_args()
    rows = []
    for name in [s for s in args.sets.split(",") if s]:
        arrays = demo_arrays(args.cache / "demo") if name == "demo" else embedded_set(name, args.cache)
        bench = Bench(*arrays, RoundConfig())
        rows.append(table_row(name, bench))
        print(json.dumps(rows[-1]), flush=True)
        if args.ablations:
            print(json.dumps(ablations(name, bench)), flush=True)
    if rows:
        mean_gain = round(float(np.mean([row["queue_minus_random"] for row in rows])), 4)
        checks = [(row["coverage"], row["half_width"]) for row in rows]
        print(json.dumps({"queue_minus_random_mean": mean_gain,
                          "queue_minus_random_audit_mean": round(float(np.mean([row["queue"] - row["random_audit"]
                                                                                for row in rows])), 4),
                          "coverage_mean": round(float(np.mean([c for c, _ in checks])), 3), "targets": {
            "audit_3_at_least_zero_shot_plus_0.03_on_every_set": all(row["audit_3"] >= row["zero_shot"] + 0.03
                                                                     for row in rows),
            "unsup_3_at_least_zero_shot_minus_0.01_on_every_set": all(
                min(row["unsup_3"], row["unsup_3_refined"]) >= row["zero_shot"] - 0.01 for row in rows),
            "queue_beats_random_by_0.02_on_average": mean_gain >= 0.02,
            "queue_never_below_random": all(row["queue_minus_random"] >= 0 for row in rows),
            "coverage_at_least_0.9": float(np.mean([c for c, _ in checks])) >= 0.9,
            "half_width_200_at_most_0.05": all(row["half_width_200"] <= 0.05 for row in rows),
            "gap_closed_at_least_0.6_on_every_set": all(row["gap_closed"] >= 0.6 for row in rows),
            "mistakes_found_at_least_0.8": all(row["mistakes_found"] >= 0.8 for row in rows),
            "outlier_auroc_at_least_0.9": all(row["outlier_auroc"] >= 0.9 for row in rows
                                              if row["outlier_auroc"] is not None)}}))
        print(markdown(rows))
    for n in [int(size) for size in args.sizes.split(",") if size]:
        print(json.dumps({"timing": time_round(n)}), flush=True)


if __name__ == "__main__":
    main()
