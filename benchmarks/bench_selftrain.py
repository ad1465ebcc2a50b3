"""Self-training against ground truth on the demo dataset, and the speed of one `head` round at scale.
Prints one JSON object.

    python -m benchmarks.bench_selftrain [--dir DEMO_DIR] [--sizes 100000,1000000]

Accuracy is given two ways: `predictions` (the teacher's label for every image) and `dataset` (what export
writes: the person's label where there is one, else the teacher's).

Fixes by a simulated person are compared three ways: the review queue's picks; random picks (the mean over
several seeds, since one random draw moves the figure by about 0.01); and an error oracle that is shown only
images the teacher currently gets wrong, picked at random among them (`oracle_fixes_3_rounds`) or spread over
the embedding space by k-center greedy (`oracle_spread_fixes_3_rounds`). Every oracle pick is a mistake, the most
a queue's picks can be, so the oracles' gains over random are the yardstick for a queue with this learner on this
data: the first is what finding mistakes alone gives, the second what finding them and spreading them gives.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.demo.dataset import read_ground_truth
from engine.demo.render import SHAPES
from engine.demo.setup import prepare_demo
from engine.selftrain.head import zero_shot_head
from engine.project import open_project
from engine.queue import k_center_greedy, rank_review_queue
from engine.rounds import RoundConfig, adapt, run_round
from engine.scoring import cosine_probs
from tests.synthetic import planted_embeddings, synthetic_project
from tests.tiny_model import make_tiny_model

BASELINE = RoundConfig(selection="threshold", threshold=0.9, ema=0.0)


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


def simulate(x: np.ndarray, y: np.ndarray, text: np.ndarray, scale: float, config: RoundConfig, rounds: int, *,
             fixes: str | None = None, share: float = 0.02, seed: int = 0) -> list[dict]:
    """`rounds` rounds; before each, a simulated person gives the true label to `share` of the images, chosen
    by the review queue (fixes="queue"), at random (fixes="random"), or among the images the teacher has wrong,
    at random (fixes="oracle") or by k-center greedy (fixes="oracle_spread"). `picked_wrong` is the share of the
    picks the teacher had wrong."""
    zero_shot = zero_shot_head(text, scale)
    zero_probs = cosine_probs(x, text, scale)
    teacher, probs = zero_shot, zero_probs
    human = np.zeros(len(y), bool)
    rng = np.random.default_rng(seed)
    history = []
    for number in range(1, rounds + 1):
        picked_wrong = None
        if fixes:
            k = int(round(share * len(y)))
            wrong = probs.argmax(axis=1) != y
            mistakes = np.flatnonzero(~human & wrong)
            if fixes == "queue":
                picks, _ = rank_review_queue(probs, zero_probs, np.where(human, y, -1), human, x, k=k)
            elif fixes == "oracle":
                picks = rng.choice(mistakes, min(k, len(mistakes)), replace=False)
            elif fixes == "oracle_spread":
                picks = mistakes[k_center_greedy(x[mistakes], k, covered=x[human])]
            else:
                picks = rng.choice(np.flatnonzero(~human), k, replace=False)
            picked_wrong = round(float(wrong[picks].mean()), 3)
            human[picks] = True
        human_index = np.flatnonzero(human)
        output = adapt(x, zero_shot, teacher, probs, human_index, y[human_index], human, number, config)
        teacher, probs = output.teacher, output.probs
        predicted = probs.argmax(axis=1)
        history.append({"round": number, "predictions": round(float((predicted == y).mean()), 4),
                        "dataset": round(float((np.where(human, y, predicted) == y).mean()), 4),
                        "human_labels": int(human.sum()), "picked_wrong": picked_wrong})
    return history


def fixes_over_seeds(x, y, text, scale, fixes: str, seeds: int, rounds: int = 3) -> dict:
    """The `dataset` accuracy after `rounds` rounds of `fixes`, as mean, min and max over `seeds` seeds."""
    accuracies = [simulate(x, y, text, scale, RoundConfig(), rounds, fixes=fixes, seed=seed)[-1]["dataset"]
                  for seed in range(seeds)]
    return {"dataset_mean": round(float(np.mean(accuracies)), 4), "dataset_min": min(accuracies),
            "dataset_max": max(accuracies), "seeds": seeds}


def time_head_round(n: int, dim: int = 512, classes: int = 20,
                    human_share: float = 0.001) -> tuple[dict, np.ndarray, np.ndarray]:
    """Wall time of one `run_round` (read embeddings, select, cross-fit, train, predict, write) on planted
    embeddings, and scikit-learn's LogisticRegression on the same embeddings and labels."""
    x, y, text = planted_embeddings(n, dim, classes, seed=11)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        project = synthetic_project(scratch / "p", scratch / "images", make_tiny_model(scratch / "m"), x, text)
        setup = time.perf_counter() - started
        labeled = np.arange(0, n, int(1 / human_share))
        project.store.set_labels((labeled + 1).tolist(), y[labeled].tolist(), source="human", actor="bench")
        started = time.perf_counter()
        metrics = run_round(project, RoundConfig())
        seconds = time.perf_counter() - started
        project.close()
    result = {"images": n, "dim": dim, "classes": classes, "human_labels": len(labeled),
              "round_seconds": round(seconds, 2), "setup_seconds": round(setup, 1),
              "pseudo_labels": metrics["pseudo_labels"]}
    return result, x, y


def sklearn_seconds(x: np.ndarray, y: np.ndarray) -> float | None:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    started = time.perf_counter()
    LogisticRegression(max_iter=200).fit(x, y)
    return round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="a demo folder to reuse (default: a temporary one)")
    parser.add_argument("--sizes", default="100000,1000000", help="image counts for the timing part ('' skips)")
    args = parser.parse_args()
    result: dict = {"benchmark": "selftrain", "config": RoundConfig().__dict__}

    with tempfile.TemporaryDirectory() as scratch:
        x, y, text, scale = demo_arrays(args.dir or Path(scratch))
    result["demo_images"] = len(y)
    result["zero_shot"] = round(float((cosine_probs(x, text, scale).argmax(1) == y).mean()), 4)
    unsupervised = simulate(x, y, text, scale, RoundConfig(), 5)
    result["unsupervised"] = {f"after_{r}": unsupervised[r - 1]["predictions"] for r in (1, 3, 5)}
    queue_history = simulate(x, y, text, scale, RoundConfig(), 3, fixes="queue")
    result["queue_fixes_3_rounds"] = {**queue_history[-1],
                                      "picked_wrong_per_round": [r["picked_wrong"] for r in queue_history]}
    result["random_fixes_3_rounds"] = fixes_over_seeds(x, y, text, scale, "random", seeds=5)
    result["oracle_fixes_3_rounds"] = fixes_over_seeds(x, y, text, scale, "oracle", seeds=5)
    result["oracle_spread_fixes_3_rounds"] = simulate(x, y, text, scale, RoundConfig(), 3, fixes="oracle_spread")[-1]
    result["baseline_threshold_3_rounds"] = simulate(x, y, text, scale, BASELINE, 3)[-1]["predictions"]
    result["ema_0.5_teacher_3_rounds"] = simulate(x, y, text, scale, replace(RoundConfig(), ema=0.5), 3)[-1][
        "predictions"]
    result["cache_teacher_3_rounds"] = simulate(x, y, text, scale, replace(RoundConfig(), teacher="cache"), 3)[-1][
        "predictions"]
    queue, random_mean = result["queue_fixes_3_rounds"]["dataset"], result["random_fixes_3_rounds"]["dataset_mean"]
    result["queue_gain_over_random"] = round(queue - random_mean, 4)
    result["oracle_gain_over_random"] = round(result["oracle_fixes_3_rounds"]["dataset_mean"] - random_mean, 4)
    result["oracle_spread_gain_over_random"] = round(result["oracle_spread_fixes_3_rounds"]["dataset"] - random_mean,
                                                     4)
    result["targets"] = {
        "unsupervised_3_at_least_zero_shot_plus_0.10": result["unsupervised"]["after_3"] >= result["zero_shot"] + 0.10,
        "queue_3_dataset_at_least_0.93": queue >= 0.93,
        "queue_beats_random_by_0.03": queue >= random_mean + 0.03,
    }

    result["timing"] = []
    for n in [int(size) for size in args.sizes.split(",") if size]:
        timing, xs, ys = time_head_round(n)
        if n == 100_000:
            timing["sklearn_logistic_regression_seconds"] = sklearn_seconds(xs, ys)
        result["timing"].append(timing)
        print(json.dumps(timing), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
