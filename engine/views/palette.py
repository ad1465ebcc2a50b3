"""The page's one palette, as RGB: the confidence scale, a person's label, an unreadable file and an audit image.
The tiles the browser draws, the tile files engine.views.overlays draws, the map and the Label tab's legend all read
it."""

from __future__ import annotations

import numpy as np

# Confidence runs between these stops: red up to even odds (everything under reads as "look at me"), amber at 75 %,
# green at 100 %. The legend shows the stops themselves, so it says what a tile's colour means.
CONFIDENCE_STOPS = ((0.5, (220, 40, 40)), (0.75, (240, 170, 0)), (1.0, (40, 170, 60)))
HUMAN = (37, 99, 235)  # a person's label: one colour, apart from the confidence scale
ERROR = (60, 60, 60)
AUDIT = (107, 114, 128)  # neutral: an audit image shows no confidence, high or low


def confidence_rgb(confidence: np.ndarray | float) -> np.ndarray:
    """Confidence in [0, 1] -> RGB uint8 colour(s) on the scale of CONFIDENCE_STOPS. (N, 3) or (3,)."""
    c = np.asarray(confidence, np.float64)
    at, colours = zip(*CONFIDENCE_STOPS)
    colours = np.asarray(colours, np.float64)
    channels = [np.interp(c, at, colours[:, channel]) for channel in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def css(rgb) -> str:
    """An RGB colour as CSS."""
    red, green, blue = (int(value) for value in rgb)
    return f"rgb({red}, {green}, {blue})"
