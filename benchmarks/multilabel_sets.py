"""A multi-label image set for `bench_multilabel` under the embedded demo model: each picture is a 2 x 2 grid of
cells on one sheet of paper, each cell empty or holding one of the demo's 8 shapes sketched as in the demo
(`engine.demo.render.render_target`), so a picture carries 0 to 3 tags (distinct shapes). Tags are imbalanced: the
commonest shape is drawn about 6 times as often as the rarest.

Rendered and embedded once, cached as an .npz in the cache folder (about a minute on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.demo.dataset import RECIPE
from engine.demo.render import SHAPES, render_target

SIZE = 128
MAX_TAGS = 3


def composite(rng: np.random.Generator, shapes: list[str], size: int = SIZE) -> np.ndarray:
    """`shapes` (distinct, at most 4) in random cells of a 2 x 2 grid; empty cells are bare paper. (size, size, 3)
    uint8 BGR."""
    cell = size // 2
    style = {**RECIPE["style"], "frame": 0.0}
    image = np.empty((size, size, 3), np.uint8)
    cells = rng.permutation(4)
    for position in range(4):
        row, column = divmod(int(cells[position]), 2)
        if position < len(shapes):
            tile = render_target(rng, shapes[position], cell, **style)
        else:  # the paper of a sketch whose ink is invisible
            tile = render_target(rng, SHAPES[0], cell, **{**style, "contrast": 0.0})
        image[row * cell:(row + 1) * cell, column * cell:(column + 1) * cell] = tile
    return image


def render_tagged(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(pictures, truth (N, 8) bool): 0-3 distinct shapes each, shapes drawn with weights falling 6-fold."""
    rng = np.random.default_rng(seed)
    weights = np.geomspace(1.0, 1 / 6, len(SHAPES))
    weights /= weights.sum()
    pictures, truth = [], np.zeros((n, len(SHAPES)), bool)
    for index in range(n):
        count = int(rng.integers(0, MAX_TAGS + 1))
        chosen = rng.choice(len(SHAPES), size=count, replace=False, p=weights)
        truth[index, chosen] = True
        pictures.append(composite(rng, [SHAPES[c] for c in chosen]))
    return pictures, truth


def embedded_tagged_set(cache: Path, n: int = 1500, *,
                        seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, list[str]]:
    """(embeddings (N, D), truth (N, C) bool, text weights (C, D), logit scale, tag names) of the rendered set."""
    from benchmarks.selftrain_sets import embed_pictures

    path = Path(cache) / f"tagged_shapes_{n}_seed{seed}.npz"
    if not path.is_file():
        pictures, truth = render_tagged(n, seed)
        x, text, scale = embed_pictures(pictures, list(SHAPES))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x, y=truth, text=text, scale=scale)
    with np.load(path) as saved:
        return saved["x"], saved["y"], saved["text"], float(saved["scale"]), list(SHAPES)
