"""The demo dataset: hand-drawn, cluttered shapes from a domain the demo model never saw in training, so its
zero-shot labels are mediocre and adaptation has room to show. Generated deterministically at demo time.

Ground truth is written beside the images (`ground_truth.csv`) for benchmarks and tests only; labelloop never
reads it as labels.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np

from engine.demo.render import SHAPES, render_target
from engine.errors import LabelloopError

RECIPE = {
    "version": 2,
    "images": 1500,
    "size": 128,
    "seed": 2026,
    "classes": list(SHAPES),
    # strengths of the domain shift, passed to render_target; chosen with benchmarks/bench_demo_model.py so that
    # zero-shot is mediocre while a linear probe on the same embeddings stays high (see assets/demo_model/README.md)
    "style": {"jitter": 0.04, "clutter": 0, "noise": 6.0, "blur": 0.8, "contrast": 0.5, "stroke": 2.5, "frame": 1.0},
}
MANIFEST = "demo.json"
GROUND_TRUTH = "ground_truth.csv"


def write_demo_dataset(folder: Path, recipe: dict = RECIPE) -> tuple[Path, Path]:
    """Write `folder/images/*.jpg` and `folder/ground_truth.csv` (path,label); reuse them when an earlier run
    wrote the same recipe. Returns (images folder, ground truth file)."""
    folder = Path(folder)
    images, truth, manifest = folder / "images", folder / GROUND_TRUTH, folder / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()) == recipe and truth.is_file():
        return images, truth
    if images.exists() and any(images.iterdir()):
        if not manifest.is_file():
            raise LabelloopError(f"{images} already holds files that are not a labelloop demo; choose another --dir")
        manifest.unlink()  # an older recipe: replace its images
        for old in images.glob("sketch_*.jpg"):
            old.unlink()
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(recipe["seed"])
    classes = recipe["classes"]
    labels = [classes[i % len(classes)] for i in range(recipe["images"])]
    rng.shuffle(labels)  # file names say nothing about the class
    rows = []
    for index, label in enumerate(labels):
        name = f"sketch_{index:04d}.jpg"
        image = render_target(rng, label, recipe["size"], **recipe["style"])
        cv2.imwrite(str(images / name), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        rows.append((name, label))
    partial = truth.with_suffix(".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "label"))
        writer.writerows(rows)
    os.replace(partial, truth)
    manifest.write_text(json.dumps(recipe, indent=2))  # written last: its presence means the set is complete
    return images, truth


def read_ground_truth(path: Path) -> dict[str, str]:
    with open(path, newline="") as handle:
        return {row["path"]: row["label"] for row in csv.DictReader(handle)}
