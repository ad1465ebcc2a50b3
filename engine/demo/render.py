"""Deterministic procedural images with captions, drawn with OpenCV.

`render_source` is the training domain of the demo CLIP (shapes and digits, clean renders on varied backgrounds),
`render_target` the shifted demo domain (hand-drawn, cluttered, low-contrast shapes). Every function draws all its
randomness from the `numpy.random.Generator` it is given, so a seed fixes the output exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "heart", "cross", "hexagon", "ring")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black", "pink", "cyan")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BACKGROUNDS = ("plain", "gradient", "noise", "stripes", "checker")

BGR = {"red": (35, 35, 215), "green": (50, 170, 40), "blue": (215, 80, 30), "yellow": (20, 220, 235),
       "purple": (150, 40, 125), "orange": (10, 135, 250), "white": (245, 245, 245), "black": (15, 15, 15),
       "pink": (190, 120, 250), "cyan": (230, 215, 20)}
# Legacy putText fonts; OpenCV 5 draws them all with its built-in sans/italic face (see `_draw_glyph`).
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
         cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
BACKGROUND_WORDS = {"plain": "plain", "gradient": "gradient", "noise": "noisy", "stripes": "striped",
                    "checker": "checkered"}
# Ink colours of the target domain (BGR): pencil grey, dark blue, brown, dark green, muted red, plum, black.
INKS = ((70, 70, 70), (110, 50, 30), (40, 60, 100), (50, 90, 40), (50, 50, 140), (100, 50, 80), (25, 25, 25))

CLIP_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "a close-up photo of a {}.", "a cropped photo of a {}.",
                  "a bright photo of a {}.", "a dark photo of a {}.", "a blurry photo of a {}.",
                  "a low resolution photo of a {}.", "a drawing of a {}.", "a rendering of a {}.", "itap of a {}.",
                  "a good photo of the {}.")
SHAPE_TEMPLATES = ("a {c} {n}", "a {n}", "a {n} shape", "a {c} {n} shape", "a drawing of a {c} {n}.",
                   "a {c} {n} on a {b} background", "a {n} on a {b} background", "a {n} in {c}",
                   "a photo of a {c} {n}.", "a picture of a {c} {n}.", "{c} {n}", "a simple {c} {n}",
                   "a {c} {n} icon", "a {n} drawn in {c}")
OUTLINE_TEMPLATES = ("an outline of a {n}", "an outline of a {c} {n}", "a {c} outlined {n}", "a hollow {n}")
FILLED_TEMPLATES = ("a filled {c} {n}", "a solid {n}", "a solid {c} {n} shape")
DIGIT_TEMPLATES = ("the digit {d}", "the number {w}", "the number {d}", "a photo of the number {w}", "a {d}",
                   "a photo of a {d}.", "a {c} {d}", "the digit {w} in {c}", "a {c} number {n}",
                   "the digit {n} on a {b} background", "a {c} digit {n}", "number {n}",
                   "a picture of the digit {n}.", "the number {n} written in {c}")
CLIP_SHARE = 0.3  # share of captions that are exactly a zero-shot prompt with the bare class word
SHIFT = 4  # fixed-point bits for sub-pixel drawing
_ARTICLE = re.compile(r"\ba (?=(?!one\b)[aeiou8])")


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # (size, size, 3) uint8 BGR
    kind: str  # "shape" or "digit"
    name: str  # the shape name, or the digit as a string "0".."9"
    color: str
    background: str
    caption: str
    outlined: bool = False  # a shape drawn as an outline rather than filled


def _regular(count: int, start: float = -np.pi / 2, radii=(1.0,)) -> np.ndarray:
    """`count` points on the unit circle (alternating between `radii`), starting at `start` radians."""
    theta = start + np.arange(count) * 2 * np.pi / count
    r = np.resize(np.asarray(radii, float), count)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def _heart() -> np.ndarray:
    """The classic heart curve (y down), centred on its bounding box."""
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    points = np.stack([16 * np.sin(t) ** 3,
                       -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))], axis=1)
    return points - (points.max(0) + points.min(0)) / 2


def _unit_shapes() -> dict[str, list[np.ndarray]]:
    """Every shape as outline(s) around the origin, scaled so its farthest point lies at distance 1."""
    w = 0.3  # half-width of a cross bar
    cross = np.array([(w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w),
                      (-w, -w), (-w, -1)], float)
    circle = _regular(64)
    shapes = {"circle": [circle], "square": [_regular(4, -np.pi / 4)], "triangle": [_regular(3)],
              "star": [_regular(10, radii=(1.0, 0.4))], "heart": [_heart()], "cross": [cross],
              "hexagon": [_regular(6)], "ring": [circle, 0.6 * circle]}
    return {name: [c / max(np.linalg.norm(p, axis=1).max() for p in contours) for c in contours]
            for name, contours in shapes.items()}


_UNIT = _unit_shapes()


def shape_outline(shape: str, center, radius: float, angle: float) -> list[np.ndarray]:
    """Float outline(s) of `shape` scaled to `radius`, rotated by `angle` degrees and moved to `center`."""
    a = np.deg2rad(angle)
    rotation = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) * radius
    return [unit @ rotation + center for unit in _UNIT[shape]]


def fixed_point(points: np.ndarray, shift: int = SHIFT) -> np.ndarray:
    return np.round(points * (1 << shift)).astype(np.int32)


def shape_polygon(shape: str, center, radius: float, angle: float, shift: int = 0) -> list[np.ndarray]:
    """The outline(s) of `shape` as int32 (N, 2) point arrays, in fixed point with `shift` fractional bits (pass the
    same `shift` to cv2.fillPoly/polylines). The ring is two contours (outer, inner) so fillPoly draws an annulus."""
    return [fixed_point(points, shift) for points in shape_outline(shape, center, radius, angle)]


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def make_caption(rng: np.random.Generator, kind: str, name: str, color: str, background: str,
                 outlined: bool = False) -> str:
    """A short lowercase caption; about `CLIP_SHARE` of them are exactly a zero-shot prompt filled with the bare class
    word, so the text encoder learns the sentences zero-shot classification will read."""
    if kind == "shape":
        word = name
        pool = SHAPE_TEMPLATES + (OUTLINE_TEMPLATES if outlined else FILLED_TEMPLATES)
    else:
        word = name if rng.random() < 0.5 else DIGIT_WORDS[int(name)]
        pool = DIGIT_TEMPLATES
    if rng.random() < CLIP_SHARE:
        return _pick(rng, CLIP_TEMPLATES).format(word)
    text = _pick(rng, pool).format(c=color, n=word, b=BACKGROUND_WORDS[background], d=name,
                                   w=DIGIT_WORDS[int(name)] if kind == "digit" else name)
    return _ARTICLE.sub("an ", text)


def jittered_color(rng: np.random.Generator, color: str) -> np.ndarray:
    return np.clip(np.array(BGR[color], np.float32) + rng.integers(-20, 21, 3), 0, 255)


_LUMA = np.array([0.114, 0.587, 0.299], np.float32)  # BGR weights of perceived brightness


def _contrasting(rng: np.random.Generator, avoid: np.ndarray, base=None) -> np.ndarray:
    """A random colour (or one near `base`) that stands out from `avoid`: far in BGR and in brightness, so a
    yellow object never lands on a beige background. Falls back to the brightness-flipped complement."""
    for _ in range(30):
        color = (rng.integers(0, 256, 3) if base is None else base + rng.normal(0, 60, 3)).astype(np.float32)
        color = np.clip(color, 0, 255)
        if np.linalg.norm(color - avoid) >= 110 and abs(float(_LUMA @ (color - avoid))) >= 40:
            return color
    return np.full(3, 255.0 if float(_LUMA @ avoid) < 128 else 0.0, np.float32)


@lru_cache(maxsize=8)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx, yy


def random_background(rng: np.random.Generator, kind: str, size: int, avoid: np.ndarray) -> np.ndarray:
    """A float32 (size, size, 3) background of the given kind whose colours all stay clear of `avoid`."""
    c1 = _contrasting(rng, avoid)
    if kind == "plain":
        return np.broadcast_to(c1, (size, size, 3)).copy()
    if kind == "noise":
        k = int(rng.integers(2, 9))
        blobs = cv2.resize(rng.standard_normal((k, k, 3), np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        grain = rng.standard_normal((size, size, 3), np.float32)
        return c1 + blobs * rng.uniform(10, 30) + grain * rng.uniform(3, 12)
    c2 = _contrasting(rng, avoid, base=c1)
    xx, yy = pixel_grid(size)
    a = rng.uniform(0, np.pi)
    u = xx * np.cos(a) + yy * np.sin(a)
    if kind == "gradient":
        t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        return c1 + (c2 - c1) * t[..., None]
    if kind == "stripes":
        period = rng.uniform(0.08, 0.3) * size
        select = np.floor(u / (period / 2) + rng.uniform(0, 2)) % 2
    else:  # checker
        cell = rng.uniform(0.06, 0.2) * size
        v = yy * np.cos(a) - xx * np.sin(a)
        select = (np.floor(u / cell) + np.floor(v / cell)) % 2
    return np.where(select[..., None] > 0, c2, c1)


def shape_mask(rng: np.random.Generator, shape: str, size: int) -> tuple[np.ndarray, bool]:
    """An anti-aliased uint8 mask of one shape (filled, or outlined with a random stroke), and whether outlined."""
    radius = rng.uniform(0.35, 0.9) * size / 2
    center = rng.uniform(radius, size - radius, 2)
    points = shape_polygon(shape, center, radius, rng.uniform(0, 360), SHIFT)
    mask = np.zeros((size, size), np.uint8)
    outlined = bool(rng.random() < 0.35)
    if outlined:
        # a thick circle outline would look like a ring, so circles get thin strokes only
        thickness = int(rng.integers(1, max(1, int((0.07 if shape == "circle" else 0.15) * radius)) + 1))
        cv2.polylines(mask, points, True, 255, thickness, cv2.LINE_AA, SHIFT)
    else:
        cv2.fillPoly(mask, points, 255, cv2.LINE_AA, SHIFT)
    return mask, outlined


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 25)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _stroke_fonts() -> dict[str, list[list[np.ndarray]]]:
    """Two polyline digit fonts in a 0.6 x 1 box (y down): a seven-segment display and plain hand-style strokes."""
    ends = {"a": ((0, 0), (.6, 0)), "b": ((.6, 0), (.6, .5)), "c": ((.6, .5), (.6, 1)), "d": ((0, 1), (.6, 1)),
            "e": ((0, .5), (0, 1)), "f": ((0, 0), (0, .5)), "g": ((0, .5), (.6, .5))}
    segments = [[np.array(ends[k][0]) + np.outer([0.12, 0.88], np.subtract(ends[k][1], ends[k][0])) for k in lit]
                for lit in ("abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg")]
    six = np.array([(.5, .03), (.3, 0), (.12, .15), (.03, .45), (.05, .8), (.2, 1), (.4, 1), (.57, .85), (.57, .62),
                    (.4, .47), (.2, .47), (.05, .6)])
    strokes = [[_ellipse(.3, .5, .3, .5)], [[(.12, .22), (.35, 0), (.35, 1)]],
               [[(.04, .22), (.15, .05), (.3, 0), (.47, .06), (.55, .22), (.5, .4), (.03, 1), (.6, 1)]],
               [[(.05, .1), (.3, 0), (.5, .08), (.55, .25), (.45, .42), (.25, .48), (.45, .54), (.57, .72),
                 (.52, .9), (.3, 1), (.03, .9)]],
               [[(.45, 1), (.45, 0), (0, .7), (.6, .7)]],
               [[(.55, 0), (.1, 0), (.05, .45), (.3, .38), (.5, .45), (.58, .65), (.52, .88), (.3, 1), (.03, .92)]],
               [six], [[(0, 0), (.6, 0), (.2, 1)]], [_ellipse(.3, .25, .22, .25), _ellipse(.3, .73, .28, .27)],
               [(.6, 1) - six]]
    return {"segments": segments, "strokes": [[np.asarray(line, float) for line in glyph] for glyph in strokes]}


_STROKE_FONTS = _stroke_fonts()


@lru_cache(maxsize=None)
def _text_size(digit: str, font: int) -> tuple[int, int]:
    """(width, height) of `digit` at scale 1 (cached: getTextSize is slow next to everything else here)."""
    return cv2.getTextSize(digit, font, 1.0, 1)[0]


@lru_cache(maxsize=1)
def _uni_face() -> cv2.FontFace:
    return cv2.FontFace("uni")


def _draw_glyph(rng: np.random.Generator, canvas: np.ndarray, digit: str, height: float) -> None:
    """Draw `digit` about `height` pixels tall around the centre of `canvas` in a random font and weight. OpenCV 5
    renders all Hershey constants with its built-in sans/italic face (weight follows thickness), so the built-in
    "uni" face and two polyline fonts add real variety."""
    c = canvas.shape[0] / 2
    thickness = max(1, int(round(height * rng.uniform(0.04, 0.12))))
    style = rng.random()
    if style < 0.5:
        font = _pick(rng, FONTS) | (cv2.FONT_ITALIC if rng.random() < 0.2 else 0)
        width, unit_height = _text_size(digit, font)
        scale = height / unit_height
        cv2.putText(canvas, digit, (int(c - width * scale / 2), int(c + height / 2)), font, scale, 255, thickness,
                    cv2.LINE_AA)
    elif style < 0.7:
        cv2.putText(canvas, digit, (int(c - 0.3 * height), int(c + height / 2)), 255, _uni_face(),
                    int(height / 0.72), 400, 0)
    else:
        lines = _STROKE_FONTS["segments" if style < 0.85 else "strokes"][int(digit)]
        cv2.polylines(canvas, [fixed_point((line - (0.3, 0.5)) * height + c) for line in lines], False, 255, thickness,
                      cv2.LINE_AA, SHIFT)


def digit_mask(rng: np.random.Generator, digit: str, size: int) -> np.ndarray:
    """An anti-aliased uint8 mask of one digit: drawn in a random font on a spare canvas, then moved into place by one
    affine warp that fixes its height and adds a random stretch, slant and tilt within +-25 degrees."""
    height = rng.uniform(0.35, 0.85) * size
    canvas = np.zeros((2 * size, 2 * size), np.uint8)
    _draw_glyph(rng, canvas, digit, height)
    x, y, w, h = cv2.boundingRect(canvas)
    scale, stretch = height / max(h, 1), rng.uniform(0.8, 1.25)
    a = np.deg2rad(rng.uniform(-25, 25))
    linear = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array(
        [[scale * stretch, scale * rng.uniform(-0.15, 0.15)], [0, scale]])
    reach = min(0.5 * np.hypot(w * scale * stretch, height), size / 2)
    center = rng.uniform(reach, size - reach, 2)
    shift = center - linear @ (x + w / 2, y + h / 2)
    return cv2.warpAffine(canvas, np.hstack([linear, shift[:, None]]), (size, size), flags=cv2.INTER_LINEAR)


def render_source(rng: np.random.Generator, size: int = 64) -> Sample:
    """The training domain: one shape or digit (50/50) in a named colour on a random background, with mild
    blur/noise sometimes, and a caption from `make_caption`."""
    kind = "shape" if rng.random() < 0.5 else "digit"
    color, background = _pick(rng, COLORS), _pick(rng, BACKGROUNDS)
    bgr = jittered_color(rng, color)
    image = random_background(rng, background, size, bgr)
    if kind == "shape":
        name = _pick(rng, SHAPES)
        mask, outlined = shape_mask(rng, name, size)
    else:
        name, outlined = str(int(rng.integers(10))), False
        mask = digit_mask(rng, name, size)
    alpha = mask.astype(np.float32)[..., None] * (1 / 255)
    image = image + (bgr - image) * alpha
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.0))
    if rng.random() < 0.25:
        image = image + rng.standard_normal(image.shape, np.float32) * rng.uniform(3, 10)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return Sample(image, kind, name, color, background, make_caption(rng, kind, name, color, background, outlined),
                  outlined)


def hand_drawn_stroke(rng: np.random.Generator, contour: np.ndarray, amplitude: float, step: float) -> np.ndarray:
    """A closed contour redrawn as one open hand-drawn stroke: resampled every `step` pixels, displaced by smooth
    random waves of about `amplitude` pixels, starting anywhere and ending with a small gap or overshoot."""
    closed = np.vstack([contour, contour[:1]])
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    s = np.arange(0, arc[-1], step)
    points = np.stack([np.interp(s, arc, closed[:, 0]), np.interp(s, arc, closed[:, 1])], axis=1)
    n = len(points)
    points = np.roll(points, -int(rng.integers(n)), axis=0)
    extra = int(round(n * rng.uniform(-0.04, 0.1)))
    points = np.vstack([points, points[:extra + 1]]) if extra >= 0 else points[:n + extra]
    phase = np.arange(len(points))[:, None, None] * (2 * np.pi / n)
    freqs = rng.uniform(1, 8, (3, 2))  # waves per lap; fast ones are weaker so straight sides stay straight-ish
    waves = rng.normal(0, amplitude, (3, 2)) / freqs * np.sin(phase * freqs + rng.uniform(0, 2 * np.pi, (3, 2)))
    return points + waves.sum(axis=1) + rng.normal(0, 0.3, points.shape)


def clutter_stroke(rng: np.random.Generator, size: int) -> np.ndarray:
    """A short open clutter stroke: a gently bending line or a small random-walk scribble."""
    length = rng.uniform(0.05, 0.2) * size
    count = int(rng.integers(3, 12))
    turns = np.cumsum(rng.normal(0, 0.3 if count < 6 else 1.2, count)) + rng.uniform(0, 2 * np.pi)
    steps = np.stack([np.cos(turns), np.sin(turns)], axis=1) * (length / count)
    return rng.uniform(0, size, 2) + np.cumsum(steps, axis=0)


def render_target(rng: np.random.Generator, shape: str, size: int = 128, *, jitter: float = 0.06,
                  clutter: int = 6, noise: float = 6.0, blur: float = 0.8, contrast: float = 0.5,
                  stroke: float = 1.0, frame: float = 0.0, extent: float = 1.0) -> np.ndarray:
    """The shifted demo domain: `shape` sketched as a wobbly outline in a dark/muted ink on light paper, with clutter
    strokes and dots, then noise and blur. Knobs: `jitter` wobble as a fraction of the radius, `clutter` mean number
    of distractor marks, `noise` grain sigma, `blur` blur sigma, `contrast` ink darkness (0 invisible, 1 full ink), `stroke` pen width multiplier, `extent` object size multiplier, `frame` probability of a hand-drawn border around the card
    (a context cue CLIP-style zero-shot misreads, that a classifier trained on the domain learns to ignore).
    Returns (size, size, 3) uint8 BGR."""
    paper = np.clip(rng.uniform(200, 245) + rng.normal(0, 6, 3) + (-8, 0, 4), 0, 255).astype(np.float32)
    k = int(rng.integers(2, 6))
    blobs = cv2.resize(rng.standard_normal((k, k, 1), np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    image = paper + blobs[..., None] * rng.uniform(2, 8)
    if rng.random() < 0.25:  # faint ruled notebook lines
        gap = rng.uniform(0.12, 0.25) * size
        for y in np.arange(rng.uniform(0, gap), size, gap):
            cv2.line(image, (0, int(y)), (size, int(y)), (paper * 0.93 + (20, 0, 0)).tolist(), 1, cv2.LINE_AA)

    def ink() -> list[float]:
        strength = np.clip(contrast * rng.uniform(0.75, 1.25), 0.05, 1.0)
        return (paper - (paper - np.array(_pick(rng, INKS))) * strength).tolist()

    scale = size / 128
    thickness = max(1, int(round(rng.integers(1, 4) * scale * stroke)))
    radius = rng.uniform(0.2, 0.4) * size * extent
    center = rng.uniform(1.05 * radius, size - 1.05 * radius, 2)
    color = ink()
    for contour in shape_outline(shape, center, radius, rng.uniform(0, 360)):
        for _ in range(1 + int(rng.random() < 0.3)):  # sometimes traced twice, like a sketch
            stroke = hand_drawn_stroke(rng, contour, jitter * radius, max(1.5, size / 48))
            cv2.polylines(image, [fixed_point(stroke)], False, color, thickness, cv2.LINE_AA, SHIFT)
    if rng.random() < frame:
        inset = rng.uniform(0.03, 0.08) * size
        border = np.array([[inset, inset], [size - inset, inset], [size - inset, size - inset], [inset, size - inset]])
        stroke_line = hand_drawn_stroke(rng, border, jitter * radius, max(1.5, size / 48))
        cv2.polylines(image, [fixed_point(stroke_line)], False, color, thickness, cv2.LINE_AA, SHIFT)
    for _ in range(int(rng.poisson(clutter)) if clutter > 0 else 0):
        if rng.random() < 0.35:
            cv2.circle(image, fixed_point(rng.uniform(0, size, 2)).tolist(), int(rng.uniform(0.7, 2.5) * scale * 16),
                       ink(), -1, cv2.LINE_AA, SHIFT)
        else:
            cv2.polylines(image, [fixed_point(clutter_stroke(rng, size))], False, ink(),
                          int(rng.integers(1, thickness + 1)), cv2.LINE_AA, SHIFT)
    if noise > 0:
        grain = rng.standard_normal((size, size, 1), np.float32)  # monochrome, like a scan
        image = image + grain * (noise * rng.uniform(0.5, 1.5))
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur * rng.uniform(0.5, 1.5))
    return np.clip(image, 0, 255).astype(np.uint8)
