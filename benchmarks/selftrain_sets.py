"""The image sets `bench_selftrain` measures on, as (embeddings, truth, text weights, logit scale) under the embedded
demo model. Besides the demo, two shifts unlike it, drawn with engine/demo/render.py's pieces:

- `inked_digits`: the ten digits as hand-inked strokes on paper (scanned-notebook style: grain, blur, ruled lines),
  with a long-tailed class distribution (the commonest digit 8 times the rarest).
- `shapes_and_digits`: 12 classes (the 8 shapes and the digits one to four), filled or outlined in colour on busy
  striped/checkered/noisy backgrounds, small and blurred; 10 % of the images are of no class (the digits five to
  nine, or a bare background with scribbles). Their truth is -1.
- `neon_shapes`: the 8 shapes as glowing neon tubes (a bright core in a coloured halo) on dark walls (brick courses,
  plaster blotches), sometimes doubled by a faint reflection and crossed by other tubes; long-tailed (the commonest
  shape about 15 times the rarest).
- `cloth_stamps`: 10 classes (six shapes and the digits five, six, seven and nine) printed as worn rubber stamps
  (speckled, unevenly inked, tilted) on woven cloth; long-tailed (the commonest about 12 times the rarest) and 10 %
  of no class (a stamp of the digits zero to four, or a bare ink smudge).

Each set is rendered and embedded once and cached as an .npz in the cache folder (a few minutes on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.demo import render
from engine.demo.render import BACKGROUNDS, COLORS, DIGIT_WORDS, SHAPES
from engine.files.images import model_picture
from engine.learning.models import DEMO_SPEC, load_model, parse_model_spec
from engine.learning.class_prompts import default_templates, prompts_for
from engine.learning.zeroshot import build_zero_shot_classifier

SIZE = 128
SETS = ("demo", "inked_digits", "shapes_and_digits", "neon_shapes", "cloth_stamps")
STAMP_SHAPES = ("star", "heart", "cross", "hexagon", "ring", "triangle")
STAMP_DIGITS = ("5", "6", "7", "9")


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
        cv2.polylines(image, [render.fixed_point(render.clutter_stroke(rng, size))], False, ink,
                      int(rng.integers(1, 3)), cv2.LINE_AA, render.SHIFT)
    if frame:
        inset = rng.uniform(0.03, 0.08) * size
        border = np.array([[inset, inset], [size - inset, inset], [size - inset, size - inset], [inset, size - inset]])
        stroke = render.hand_drawn_stroke(rng, border, 2.0, max(1.5, size / 48))
        cv2.polylines(image, [render.fixed_point(stroke)], False, ink, 2, cv2.LINE_AA, render.SHIFT)


def inked_digit(rng: np.random.Generator, digit: int, size: int = SIZE) -> np.ndarray:
    """One digit as a hand-inked stroke on paper: the renderer's digit mask thinned to a pen line, in a muted ink."""
    mask = render.digit_mask(rng, str(digit), size)
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
    bgr = render.jittered_color(rng, color)
    image = render.random_background(rng, BACKGROUNDS[1 + int(rng.integers(len(BACKGROUNDS) - 1))], size, bgr)
    if name is None:
        for _ in range(int(rng.integers(3, 8))):
            cv2.polylines(image, [render.fixed_point(render.clutter_stroke(rng, size))], False,
                          render.jittered_color(rng, COLORS[int(rng.integers(len(COLORS)))]).tolist(),
                          int(rng.integers(1, 4)), cv2.LINE_AA, render.SHIFT)
    else:
        mask = render.digit_mask(rng, name, size) if name.isdigit() else render.shape_mask(rng, name, size)[0]
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


def neon_shape(rng: np.random.Generator, shape: str, size: int = SIZE) -> np.ndarray:
    """`shape` bent from a neon tube: a thin near-white core in a wide blurred halo of one hue, on a dark wall, with
    a dim second tube and sometimes a faint mirror reflection below."""
    wall = np.clip(rng.uniform(10, 45) + rng.normal(0, 6, 3), 0, 255).astype(np.float32)
    image = np.broadcast_to(wall, (size, size, 3)).copy()
    if rng.random() < 0.5:  # brick courses
        course = rng.uniform(0.08, 0.16) * size
        for row, y in enumerate(np.arange(0, size, course)):
            cv2.line(image, (0, int(y)), (size, int(y)), (wall * 0.55).tolist(), 1)
            for x in np.arange((row % 2) * course, size, 2 * course):
                cv2.line(image, (int(x), int(y)), (int(x), int(y + course)), (wall * 0.55).tolist(), 1)
    else:  # plaster blotches
        k = int(rng.integers(3, 8))
        image += cv2.resize(rng.standard_normal((k, k, 1)).astype(np.float32), (size, size))[..., None] * 8
    hue = np.clip(rng.uniform(0, 255, 3) * (rng.random(3) < 0.6) + rng.uniform(60, 120), 0, 255).astype(np.float32)
    radius = rng.uniform(0.3, 0.75) * size / 2
    center = rng.uniform(radius, size - radius, 2)
    outline = render.shape_outline(shape, center, radius, rng.uniform(0, 360))
    tube = np.zeros((size, size), np.float32)
    for contour in outline:
        cv2.polylines(tube, [render.fixed_point(render.hand_drawn_stroke(rng, contour, 0.6, 2.0))], True, 1.0,
                      int(rng.integers(1, 3)), cv2.LINE_AA, render.SHIFT)
    for _ in range(int(rng.poisson(2.0))):  # other tubes in the frame: bars and arcs of a sign nearby
        cv2.polylines(tube, [render.fixed_point(render.clutter_stroke(rng, size))], False, rng.uniform(0.4, 1.0), 2,
                      cv2.LINE_AA, render.SHIFT)
    halo = cv2.GaussianBlur(tube, (0, 0), rng.uniform(2.5, 5.0))
    glow = hue * (halo / max(float(halo.max()), 1e-6) * rng.uniform(0.9, 1.6))[..., None]
    core = np.float32(235) * tube[..., None]
    image = image + glow + core
    if rng.random() < 0.6:  # a faint reflection on a wet floor or a window below
        image = image + 0.25 * cv2.GaussianBlur(np.flipud(glow + core), (0, 0), 2.0)
    image += rng.standard_normal(image.shape).astype(np.float32) * rng.uniform(3, 9)
    return np.clip(image, 0, 255).astype(np.uint8)


def _cloth(rng: np.random.Generator, size: int) -> np.ndarray:
    """Woven cloth: a dyed base with warp and weft threads (two crossed sine gratings) and a soft fold shading."""
    base = np.clip(rng.uniform(90, 230) + rng.normal(0, 30, 3), 0, 255).astype(np.float32)
    xx, yy = render.pixel_grid(size)
    pitch = rng.uniform(2.5, 5.0)
    a = rng.uniform(-0.3, 0.3)
    u, v = xx * np.cos(a) + yy * np.sin(a), yy * np.cos(a) - xx * np.sin(a)
    weave = np.sin(2 * np.pi * u / pitch) * np.sign(np.sin(np.pi * v / pitch)) + np.sin(2 * np.pi * v / pitch)
    fold = cv2.resize(rng.standard_normal((3, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    light = 1 + 0.12 * fold + 0.06 * weave * rng.uniform(0.5, 1.5)
    return base * light[..., None]


def cloth_stamp(rng: np.random.Generator, name: str | None, size: int = SIZE) -> np.ndarray:
    """A shape or digit (`name`; None: a bare ink smudge) printed as a worn rubber stamp on woven cloth: one ink,
    speckled where the rubber missed, denser on one side, often in a stamped border, the ink soaked into the weave."""
    image = _cloth(rng, size)
    if name is None:
        mask = np.zeros((size, size), np.uint8)
        cv2.circle(mask, tuple(int(v) for v in rng.uniform(0.3, 0.7, 2) * size), int(rng.uniform(0.1, 0.3) * size),
                   255, -1, cv2.LINE_AA)
        mask = cv2.GaussianBlur(mask, (0, 0), 6)
    else:
        mask = render.digit_mask(rng, name, size) if name.isdigit() else render.shape_mask(rng, name, size)[0]
        if rng.random() < 0.5:  # the stamp's rectangular border
            inset = int(rng.uniform(0.04, 0.12) * size)
            cv2.rectangle(mask, (inset, inset), (size - inset, size - inset), 255, int(rng.integers(2, 5)))
    speckle = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 1.2)
    xx, _ = render.pixel_grid(size)
    pressure = rng.uniform(0.5, 1.0) + rng.uniform(-0.4, 0.4) * (xx / size - 0.5)
    coverage = (mask.astype(np.float32) / 255) * (speckle > rng.uniform(0.35, 0.55)) * pressure
    ink = np.clip(rng.uniform(0, 200, 3) * (rng.random(3) < 0.5), 0, 255).astype(np.float32)
    image = image + (ink - image) * np.clip(coverage, 0, 0.95)[..., None]
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.1))
    image += rng.standard_normal(image.shape).astype(np.float32) * rng.uniform(3, 8)
    return np.clip(image, 0, 255).astype(np.uint8)


def _long_tail(rng: np.random.Generator, n_classes: int, n: int, power: float) -> np.ndarray:
    """`n` class columns drawn with weights 1 / (1 + rank) ** power, the ranks shuffled (which classes are
    common is arbitrary): the commonest class about n_classes ** power times the rarest."""
    weights = 1.0 / (1.0 + np.arange(n_classes)) ** power
    return rng.permutation(n_classes)[rng.choice(n_classes, n, p=weights / weights.sum())]


def _recipe(name: str, rng: np.random.Generator, n: int) -> tuple[list[str], list[tuple[str | None, int]]]:
    """(class names, per image (what to draw, truth column or -1))."""
    if name == "inked_digits":
        weights = 1.0 / (1.0 + np.arange(10)) ** 0.9  # long tail: the commonest digit about 8x the rarest
        order = rng.permutation(10)  # which digits are common is arbitrary
        digits = order[rng.choice(10, n, p=weights / weights.sum())]
        return list(DIGIT_WORDS), [(str(d), int(d)) for d in digits]
    if name == "neon_shapes":
        return list(SHAPES), [(SHAPES[c], int(c)) for c in _long_tail(rng, len(SHAPES), n, 1.3)]
    if name == "cloth_stamps":
        names = list(STAMP_SHAPES) + list(STAMP_DIGITS)
        classes = list(STAMP_SHAPES) + [DIGIT_WORDS[int(d)] for d in STAMP_DIGITS]
        columns = _long_tail(rng, len(names), n, 1.1)
        none = rng.random(n) < 0.1  # of no class: a stamp of a digit not among the classes, or a bare smudge
        return classes, [((str(int(rng.integers(0, 5))) if rng.random() < 0.7 else None, -1) if off
                          else (names[c], int(c))) for c, off in zip(columns, none)]
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
    draw = {"inked_digits": inked_digit, "neon_shapes": neon_shape, "cloth_stamps": cloth_stamp}.get(name, busy_object)
    images = [draw(rng, int(what) if name == "inked_digits" else what) for what, _ in items]
    return images, np.array([truth for _, truth in items]), classes


def embedded_set(name: str, cache: Path, n: int = 1500, *,
                 seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(embeddings (N, D), truth (N,) with -1 = no class, text weights (C, D), logit scale) of a rendered set;
    another `seed` renders the same recipe anew (to check a choice on pictures it was not made on)."""
    path = Path(cache) / (f"{name}_{n}.npz" if seed == 7 else f"{name}_{n}_seed{seed}.npz")
    if path.is_file():
        with np.load(path) as saved:
            return saved["x"], saved["y"], saved["text"], float(saved["scale"])
    images, truth, classes = render_set(name, n, seed)
    x, text, scale = embed_pictures(images, classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=truth, text=text, scale=scale)
    return x, truth, text, scale


def embed_pictures(images: list[np.ndarray], classes: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """(embeddings (N, D), zero-shot text weights (C, D) of `classes` with the default prompts, logit scale) under
    the embedded demo model."""
    import torch

    model = load_model(parse_model_spec(DEMO_SPEC), torch.device("cpu"))
    batches = []
    for start in range(0, len(images), 64):
        batch = torch.stack([model.preprocess(model_picture(image, model.image_size))
                             for image in images[start:start + 64]])
        batches.append(model.encode_images(batch))
    text = build_zero_shot_classifier(model, [prompts_for(c, default_templates(), None) for c in classes])
    return np.concatenate(batches), text, model.logit_scale
