"""Grad-CAM on both kinds of open_clip image tower: the tiny ViT of the tests and the demo's ResNet."""

import numpy as np
import pytest

from engine.learning.models import DEMO_SPEC, load_model, parse_model_spec
from engine.views.overlays import blend_heatmap, grad_cam
from tests.imagegen import random_image


@pytest.mark.parametrize("which", ["tiny-vit", "demo-resnet"])
def test_grad_cam_is_an_image_sized_map_in_unit_range(which, tiny_model):
    model = load_model(parse_model_spec(str(tiny_model) if which == "tiny-vit" else DEMO_SPEC))
    pixels = random_image(np.random.default_rng(0), (90, 120))
    weight = model.encode_texts(["a circle"])[0]
    cam = grad_cam(model, pixels, weight)
    assert cam.shape == (90, 120) and cam.dtype == np.float32
    assert 0.0 <= cam.min() and cam.max() <= 1.0 and cam.max() > 0.0
    assert all(p.grad is None for p in model.model.parameters())  # leaves the model as it found it
    blended = blend_heatmap(pixels, cam)
    assert blended.shape == pixels.shape and not np.array_equal(blended, pixels)
