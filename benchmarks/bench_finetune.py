"""`finetune` rounds against `head` rounds on the demo dataset, no human labels, in one run. Prints one JSON line
per round as it finishes, then one JSON object with everything.

    python -m benchmarks.bench_finetune [--dir DEMO_DIR] [--rounds 3] [--steps N] [--batch-size B]

Both arms start from the same freshly ingested demo project (copied), so they share the zero-shot start. Accuracy
is the round's prediction for every image against `ground_truth.csv`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from engine.demo.dataset import read_ground_truth
from engine.demo.setup import prepare_demo
from engine.learning.models import pick_device
from engine.project.folder import open_project
from engine.learning.selftrain.config import FinetuneConfig, RoundConfig
from engine.session.round_runner import run_round


def accuracy(project, round_id: int, truth: dict[str, str]) -> float:
    """Share of images whose prediction in `round_id` is their true class."""
    image_ids, class_ids, probs = project.store.prediction_matrix(round_id)
    names = {c["id"]: c["name"] for c in project.store.classes()}
    relpaths = project.store.relpaths()
    predicted = [names[class_ids[column]] for column in probs.argmax(axis=1)]
    return round(float(np.mean([truth[relpaths[i]] == name for i, name in zip(image_ids.tolist(), predicted)])), 4)


def run_arm(source: Path, scratch: Path, config: RoundConfig, rounds: int, truth: dict[str, str]) -> list[dict]:
    root = scratch / config.mode
    shutil.copytree(source, root)
    history = []
    with open_project(root) as project:
        for _ in range(rounds):
            started = time.perf_counter()
            metrics = run_round(project, config)
            entry = {"mode": config.mode, "round": metrics.round,
                     "accuracy": accuracy(project, project.store.last_finished_round(), truth),
                     "seconds": round(time.perf_counter() - started, 1),
                     "pseudo_labels": metrics.pseudo_labels}
            if metrics.finetune:
                entry["finetune"] = {key: metrics.finetune[key] for key in
                                     ("steps", "batch_size", "trainable_parameters", "train_seconds", "final_loss")}
            print(json.dumps(entry), flush=True)
            history.append(entry)
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="a demo folder to reuse (default: a temporary one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=FinetuneConfig.steps, help="finetune steps per round")
    parser.add_argument("--batch-size", type=int, default=FinetuneConfig.batch_size)
    args = parser.parse_args()
    finetune = RoundConfig(mode="finetune", finetune=FinetuneConfig(steps=args.steps, batch_size=args.batch_size))
    device = pick_device()
    result: dict = {"benchmark": "finetune", "device": str(device),
                    "device_name": torch.cuda.get_device_name() if device.type == "cuda" else None,
                    "torch_threads": torch.get_num_threads(), "config": asdict(finetune)}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = args.dir or scratch / "demo"
        root, _ = prepare_demo(folder)
        truth = read_ground_truth(Path(folder) / "ground_truth.csv")
        with open_project(root) as project:
            result["zero_shot"] = accuracy(project, 0, truth)
            result["images"] = len(project.store.relpaths())
        result["head"] = run_arm(root, scratch, RoundConfig(), args.rounds, truth)
        result["finetune"] = run_arm(root, scratch, finetune, args.rounds, truth)
    head, tuned = result["head"][-1]["accuracy"], result["finetune"][-1]["accuracy"]
    result["finetune_minus_head"] = round(tuned - head, 4)
    result["targets"] = {"finetune_beats_head_by_0.03": tuned >= head + 0.03}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
