"""The image sets `bench_selftrain` measures on, as (embeddings, truth, text weights, logit scale) under the embedded
demo model. Besides the demo, two shifts unlike it, drawn with engine/demo/render.py's pieces:

- `inked_digits`: the ten digits as hand-inked strokes on paper (scanned-notebook style: grain, blur, ruled lines),
  with a long-tailed class distribution (the commonest digit 8 times the rarest).
- `shapes_and_digits`: 12 classes (the 8 shapes and the digits one to four), filled or outlined in colour on busy
  striped/checkered/noisy backgrounds, small and blurred; 10 % of the images are of no class (the digits five to
  nine, or a bare background with scribbles). Their truth is -1.

Each set is rendered and embedded once and cached as an .npz in the cache folder (a few minutes on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.demo import render
from engine.demo.render import BACKGROUNDS, COLORS, DIGIT_WORDS, SHAPES
from engine.imageio import model_picture
from engine.models import DEMO_SPEC, load_model, parse_model_spec
from engine.ontology import default_templates, prompts_for
from engine.zeroshot import build_zero_shot_classifier

SIZE = 128
SETS = ("demo", "inked_digits", "shapes_and_digits")


def _paper(rng: np.random.Generator, size: int) -> np.ndarray:
    paper = np.clip(rng.uniform(200, 245) + rng.normal(0, 6, 3), 0, 255).astype(np.float32)
    image = np.broadcast_to(paper, (size, size, 3)).copy()
    if rng.random() < 0.4:  # ruled notebook lines
        gap = rng.uniform(0.12, 0.25) * size
        for y in np.arange(rng.uniform(0, gap), size, gap):
            cv2.line(image, (0, int(y)), (size, int(y)), (paper * 0.9 + (25, 0, 0)).tolist(), 1, cv2.LINE_AA)
    return image


def _scribble(rng: np.random.Generator, image: np.ndarray, size: int, *, frame: bool) -> None:
    """Clutter strokes and, if `frame`, a hand-drawn border around the card (a cue zero-shot misreads)."""
    ink = render.INKS[int(rng.integers(len(render.INKS)))]
    for _ in range(int(rng.poisson(4))):
        cv2.polylines(image, [render._fixed(render._stroke(rng, size))], False, ink, int(rng.integers(1, 3)),
                      cv2.LINE_AA, render.SHIFT)
    if frame:
        inset = rng.uniform(0.03, 0.08) * size
        border = np.array([[inset, inset], [size - inset, inset], [size - inset, size - inset], [inset, size - inset]])
        cv2.polylines(image, [render._fixed(render._wobble(rng, border, 2.0, max(1.5, size / 48)))], False, ink, 2,
                      cv2.LINE_AA, render.SHIFT)


def inked_digit(rng: np.random.Generator, digit: int, size: int = SIZE) -> np.ndarray:
    """One digit as a hand-inked stroke on paper: the renderer's digit mask thinned to a pen line, in a muted ink."""
    mask = render._digit_mask(rng, str(digit), size)
    if rng.random() < 0.9:  # outline of the glyph instead of the filled glyph: a pen that traced it
        mask = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8))
    image = _paper(rng, size)
    ink = np.array(render.INKS[int(rng.integers(len(render.INKS)))], np.float32)
    alpha = (mask.astype(np.float32) / 255 * rng.uniform(0.4, 0.8))[..., None]
    image = image + (ink - image) * alpha
    _scribble(rng, image, size, frame=False)
    image += rng.standard_normal((size, size, 1)).astype(np.float32) * rng.uniform(4, 10)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.2))
    return np.clip(image, 0, 255).astype(np.uint8)


def busy_object(rng: np.random.Generator, name: str | None, size: int = SIZE) -> np.ndarray:
    """A shape or digit (`name`: a shape name or a digit "0".."9"; None: no object, only scribbles) in colour on a
    busy background, small and blurred."""
    color = COLORS[int(rng.integers(len(COLORS)))]
    bgr = render._jitter_color(rng, color)
    image = render._background(rng, BACKGROUNDS[1 + int(rng.integers(len(BACKGROUNDS) - 1))], size, bgr)
    if name is None:
        for _ in range(int(rng.integers(3, 8))):
            cv2.polylines(image, [render._fixed(render._stroke(rng, size))], False,
                          render._jitter_color(rng, COLORS[int(rng.integers(len(COLORS)))]).tolist(),
                          int(rng.integers(1, 4)), cv2.LINE_AA, render.SHIFT)
    else:
        mask = render._digit_mask(rng, name, size) if name.isdigit() else render._shape_mask(rng, name, size)[0]
        scale = rng.uniform(0.45, 0.75)  # the object fills less of the picture than in training
        small = cv2.resize(mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = np.zeros_like(mask)
        top, left = rng.integers(0, size - small.shape[0] + 1), rng.integers(0, size - small.shape[1] + 1)
        canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
        alpha = canvas.astype(np.float32)[..., None] / 255
        image = image + (bgr - image) * alpha
    _scribble(rng, image, size, frame=rng.random() < 0.5)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.8, 1.6))
    image += rng.standard_normal(image.shape).astype(np.float32) * rng.uniform(6, 14)
    return np.clip(image, 0, 255).astype(np.uint8)


def _recipe(name: str, rng: np.random.Generator, n: int) -> tuple[list[str], list[tuple[str | None, int]]]:
    """(class names, per image (what to draw, truth column or -1))."""
    if name == "inked_digits":
        weights = 1.0 / (1.0 + np.arange(10)) ** 0.9  # long tail: the commonest digit about 8x the rarest
        order = rng.permutation(10)  # which digits are common is arbitrary
        digits = order[rng.choice(10, n, p=weights / weights.sum())]
        return list(DIGIT_WORDS), [(str(d), int(d)) for d in digits]
    classes = list(SHAPES) + list(DIGIT_WORDS[1:5])
    names = list(SHAPES) + ["1", "2", "3", "4"]
    items: list[tuple[str | None, int]] = []
    for _ in range(n):
        if rng.random() < 0.1:  # of no class: a digit not among the classes, or nothing but scribbles
            items.append((str(int(rng.integers(5, 10))) if rng.random() < 0.5 else None, -1))
        else:
            column = int(rng.integers(len(names)))
            items.append((names[column], column))
    return classes, items


def render_set(name: str, n: int = 1500, seed: int = 7) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    classes, items = _recipe(name, rng, n)
    draw = inked_digit if name == "inked_digits" else busy_object
    images = [draw(rng, int(what) if name == "inked_digits" else what) for what, _ in items]
    return images, np.array([truth for _, truth in items]), classes


def embedded_set(name: str, cache: Path, n: int = 1500) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(embeddings (N, D), truth (N,) with -1 = no class, text weights (C, D), logit scale) of a rendered set."""
    path = Path(cache) / f"{name}_{n}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return saved["x"], saved["y"], saved["text"], float(saved["scale"])
    import torch

    model = load_model(parse_model_spec(DEMO_SPEC), torch.device("cpu"))
    images, truth, classes = render_set(name, n)
    batches = []
    for start in range(0, len(images), 64):
        batch = torch.stack([model.preprocess(model_picture(image, model.image_size))
                             for image in images[start:start + 64]])
        batches.append(model.encode_images(batch))
    text = build_zero_shot_classifier(model, [prompts_for(c, default_templates(), None) for c in classes])
    x = np.concatenate(batches)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=truth, text=text, scale=model.logit_scale)
    return x, truth, text, model.logit_scale
