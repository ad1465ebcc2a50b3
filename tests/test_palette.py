"""One palette: the Label tab's legend shows exactly the colours the tiles are drawn in, browser and file alike."""

import re

import cv2
import numpy as np

from app.gallery_html import HUMAN_COLOUR
from app.label_layout import LEGEND
from engine.views import palette
from engine.views.overlays import confidence_colour, gallery_tile


def _swatches() -> list[tuple[str, str]]:
    return re.findall(r"<i style='background:([^']+)'></i>([^<]+?)\s*(?=<i |</span>)", LEGEND)


def test_the_legend_names_each_stop_of_the_scale_in_the_colour_a_tile_has_there():
    *stops, yours = _swatches()
    assert len(stops) == len(palette.CONFIDENCE_STOPS)
    for (colour, text), (at, _) in zip(stops, palette.CONFIDENCE_STOPS):
        assert float(re.search(r"(\d+) %", text).group(1)) / 100 == at
        assert colour == palette.css(palette.confidence_rgb(at))
        assert colour == palette.css(confidence_colour(at)[::-1])  # the drawn tile files' colour (BGR)
    assert stops[0][0] == palette.css(palette.confidence_rgb(0.1))  # the first swatch covers everything under it
    assert yours == (HUMAN_COLOUR, "yours")


def test_a_drawn_tile_of_a_persons_label_has_the_legends_blue(tmp_path):
    pixels = cv2.imread(str(gallery_tile(tmp_path, None, text="cat (you)", confidence=None, human=True)))
    assert np.abs(pixels[100, 2].astype(int)[::-1] - np.array(palette.HUMAN)).max() < 10  # JPEG
