import re

import numpy as np
import pytest

from engine.demo.render import (BACKGROUNDS, CLIP_TEMPLATES, COLORS, DIGIT_WORDS, SHAPES, make_caption, render_source,
                                render_target, shape_polygon)


def _words(caption: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", caption))


def _mentions_class(sample) -> bool:
    words = _words(sample.caption)
    if sample.kind == "shape":
        return sample.name in words
    return sample.name in words or DIGIT_WORDS[int(sample.name)] in words


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return [render_source(rng, size=32) for _ in range(400)]


def test_source_is_deterministic_per_seed():
    a, b = render_source(np.random.default_rng(7)), render_source(np.random.default_rng(7))
    assert np.array_equal(a.image, b.image) and a.caption == b.caption and a.name == b.name
    others = [render_source(np.random.default_rng(seed)) for seed in (8, 9, 10)]
    assert all(not np.array_equal(a.image, other.image) for other in others)


def test_target_is_deterministic_per_seed():
    a = render_target(np.random.default_rng(3), "star")
    assert np.array_equal(a, render_target(np.random.default_rng(3), "star"))
    assert not np.array_equal(a, render_target(np.random.default_rng(4), "star"))


@pytest.mark.parametrize("size", [64, 40])
def test_source_image_shape_and_dtype(size):
    sample = render_source(np.random.default_rng(1), size=size)
    assert sample.image.shape == (size, size, 3) and sample.image.dtype == np.uint8


@pytest.mark.parametrize("size", [128, 72])
def test_target_image_shape_and_dtype(size):
    image = render_target(np.random.default_rng(1), "heart", size=size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8


def test_source_covers_every_class_colour_and_background(samples):
    assert {s.name for s in samples if s.kind == "shape"} == set(SHAPES)
    assert {s.name for s in samples if s.kind == "digit"} == {str(d) for d in range(10)}
    assert {s.color for s in samples} == set(COLORS)
    assert {s.background for s in samples} == set(BACKGROUNDS)
    assert 0.4 < np.mean([s.kind == "shape" for s in samples]) < 0.6


def test_captions_name_the_class_and_are_short_lowercase(samples):
    for sample in samples:
        assert sample.caption == sample.caption.lower()
        assert len(sample.caption.split()) <= 12
        assert _mentions_class(sample), sample.caption


def test_a_good_share_of_captions_are_zero_shot_prompts(samples):
    prompts = {template.format(word) for template in CLIP_TEMPLATES
               for word in SHAPES + DIGIT_WORDS + tuple(str(d) for d in range(10))}
    share = np.mean([s.caption in prompts for s in samples])
    assert 0.2 < share < 0.45


def test_outline_captions_only_for_outlined_shapes():
    rng = np.random.default_rng(2)
    filled = [make_caption(rng, "shape", "star", "red", "plain", outlined=False) for _ in range(200)]
    outlined = [make_caption(rng, "shape", "star", "red", "plain", outlined=True) for _ in range(200)]
    assert not any("outline" in c or "hollow" in c for c in filled)
    assert any("outline" in c for c in outlined)
    assert "an 8" in {make_caption(rng, "digit", "8", "red", "plain") for _ in range(300)}


def test_source_draws_an_object(samples):
    for sample in samples:
        pixels = sample.image.reshape(-1, 3).astype(float)
        assert pixels.std(axis=0).max() > 8, sample.caption
        if sample.background == "plain":  # the object is the only thing far from the background colour
            assert (np.abs(pixels - np.median(pixels, axis=0)).max(axis=1) > 40).mean() > 0.01, sample.caption


@pytest.mark.parametrize("shape", SHAPES)
def test_target_draws_the_shape(shape):
    clean = render_target(np.random.default_rng(5), shape, clutter=0, noise=0, blur=0)
    gray = clean.astype(float).mean(axis=2)
    assert (gray < np.median(gray) - 20).mean() > 0.005  # ink pixels clearly darker than the paper
    noisy = render_target(np.random.default_rng(5), shape)
    assert noisy.reshape(-1, 3).astype(float).std(axis=0).max() > 4


def test_shape_polygon_fits_its_radius():
    for shape in SHAPES:
        contours = shape_polygon(shape, (50, 40), 20, 33)
        assert all(c.dtype == np.int32 and c.ndim == 2 and c.shape[1] == 2 for c in contours)
        distances = np.concatenate([np.linalg.norm(c - (50, 40), axis=1) for c in contours])
        assert distances.max() <= 21 and distances.max() >= 19
    assert len(shape_polygon("ring", (0, 0), 10, 0)) == 2
    fixed = shape_polygon("square", (10, 10), 5, 0, shift=4)[0]
    assert np.abs(fixed - shape_polygon("square", (160, 160), 80, 0)[0]).max() <= 1
