"""How good is the embedded demo model? Prints one JSON object:

- zero-shot top-1 on held-out source-domain renderings (8 shapes, 10 digits), via the project's own zero-shot code
  and the default prompt ensemble;
- zero-shot top-1 on the demo dataset (what `labelloop demo` ingests), against its ground truth;
- a 5-fold linear probe on the demo dataset's cached embeddings (how far adaptation could go);
- image-encoding throughput on this machine's CPU, and the demo setup time.

    python -m benchmarks.bench_demo_model [--model demo] [--per-class 125]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.demo.dataset import read_ground_truth
from engine.demo.render import SHAPES, render_source
from engine.demo.setup import prepare_demo
from engine.learning.models import load_model, parse_model_spec
from engine.learning.class_prompts import default_templates, prompts_for
from engine.project.folder import open_project
from engine.learning.probabilities import cosine_probs
from engine.learning.zeroshot import build_zero_shot_classifier

DIGITS = tuple(str(d) for d in range(10))


def held_out_source(per_class: int, seed: int = 424242) -> dict[str, list]:
    """Renderings from a seed the training never used, `per_class` of each shape and digit."""
    rng = np.random.default_rng(seed)
    wanted = {name: per_class for name in SHAPES + DIGITS}
    items: dict[str, list] = {"shapes": [], "digits": []}
    while any(wanted.values()):
        sample = render_source(rng, 64)
        if wanted[sample.name]:
            wanted[sample.name] -= 1
            items["shapes" if sample.kind == "shape" else "digits"].append((sample.image, sample.name))
    return items


def encode(model, images_bgr: list[np.ndarray]) -> np.ndarray:
    """Through the model's own open_clip preprocessing, as ingest does."""
    batch = torch.stack([model.preprocess(Image.fromarray(np.ascontiguousarray(image[..., ::-1])))
                         for image in images_bgr])
    return np.concatenate([model.encode_images(batch[i:i + 256]) for i in range(0, len(batch), 256)])


def zero_shot_accuracy(model, embeddings: np.ndarray, truth: list[str], names: tuple[str, ...]) -> float:
    templates = default_templates()
    weights = build_zero_shot_classifier(model, [prompts_for(name, templates, None) for name in names])
    predicted = cosine_probs(embeddings, weights, model.logit_scale).argmax(1)
    return float(np.mean([names[p] == t for p, t in zip(predicted, truth)]))


def _fit_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def _probe_score(x_train, y_train, x_test, y_test, n_classes, l2) -> float:
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6  # standardised features, as scikit-learn users do
    weight, bias = _fit_probe((x_train - mean) / std, y_train, n_classes, l2)
    return float((((x_test - mean) / std @ weight + bias).argmax(1) == y_test).float().mean())


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0,
                          l2_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2)) -> float:
    """Mean held-out accuracy of multinomial logistic regression over `folds` folds; the L2 strength of each
    fold is chosen by a 3-fold search inside its training part, so the test part never picks it."""
    x_all = torch.from_numpy(features.astype(np.float32))
    y_all = torch.from_numpy(labels.astype(np.int64))
    n_classes = int(labels.max()) + 1
    order = np.random.default_rng(seed).permutation(len(labels))
    scores = []
    for fold in range(folds):
        test = order[fold::folds]
        train = np.setdiff1d(order, test)

        def inner(l2: float) -> float:
            return np.mean([_probe_score(x_all[np.setdiff1d(train, part)], y_all[np.setdiff1d(train, part)],
                                         x_all[part], y_all[part], n_classes, l2) for part in
                            (train[k::3] for k in range(3))])

        best = max(l2_grid, key=inner)
        scores.append(_probe_score(x_all[train], y_all[train], x_all[test], y_all[test], n_classes, best))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--per-class", type=int, default=125, help="held-out source images per shape and digit")
    args = parser.parse_args()
    model = load_model(parse_model_spec(args.model))
    result: dict = {"benchmark": "demo_model", "model": args.model, "model_id": model.model_id,
                    "device": str(model.device)}

    source = held_out_source(args.per_class)
    for kind, names in (("shapes", SHAPES), ("digits", DIGITS)):
        images, truth = zip(*source[kind])
        result[f"source_{kind}_zero_shot_top1"] = round(
            zero_shot_accuracy(model, encode(model, list(images)), list(truth), names), 4)

    images = [image for image, _ in source["shapes"] + source["digits"]][:1024]
    batch = torch.stack([model.preprocess(Image.fromarray(np.ascontiguousarray(i[..., ::-1]))) for i in images])
    model.encode_images(batch[:64])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(batch), 256):
        model.encode_images(batch[start:start + 256])
    result["encode_images_per_s"] = round(len(batch) / (time.perf_counter() - started), 1)

    with tempfile.TemporaryDirectory() as scratch:
        if args.model != "demo":
            raise SystemExit("the demo-dataset part needs --model demo (labelloop demo always uses it)")
        started = time.perf_counter()
        root, _ = prepare_demo(Path(scratch))
        result["demo_setup_seconds"] = round(time.perf_counter() - started, 1)
        truth = read_ground_truth(Path(scratch) / "ground_truth.csv")
        with open_project(root) as project:
            rows = project.store.current_labels().to_pylist()
            ids, vectors = project.store.embeddings(model.model_id)
            relpaths = project.store.relpaths()
        result["demo_images"] = len(rows)
        result["demo_zero_shot_top1"] = round(float(np.mean([truth[r["path"]] == r["label"] for r in rows])), 4)
        labels = np.array([SHAPES.index(truth[relpaths[i]]) for i in ids])
        result["demo_linear_probe_5fold_top1"] = round(linear_probe_accuracy(vectors, labels), 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
