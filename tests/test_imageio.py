import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.files.images import ImageReadError, decode_image, fit_within, read_image, shrink_shorter_side
from tests.imagegen import write_bad_files


def _png_with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    rgb = np.random.default_rng(orientation).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    data = _png_with_orientation(rgb, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(decode_image(data)[..., ::-1], expected)


def _png_chunks(data: bytes) -> list[bytes]:
    """The chunks of a PNG file, each with its length, type and CRC."""
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        chunks.append(data[position:position + 12 + length])
        position += 12 + length
    return chunks


def test_a_png_header_is_read_without_decoding_its_pixels_unless_exif_may_follow_them(monkeypatch):
    from PIL import PngImagePlugin

    rgb = np.random.default_rng(0).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    plain, rotated = cv2.imencode(".png", rgb)[1].tobytes(), _png_with_orientation(rgb, 6)
    chunks = _png_chunks(rotated)
    kinds = [chunk[4:8] for chunk in chunks]
    exif = chunks.pop(kinds.index(b"eXIf"))
    late = rotated[:8] + b"".join(chunks[:-1]) + exif + chunks[-1]  # eXIf after the pixels, before IEND
    assert decode_image(late).shape == (8, 5, 3)  # still found, still applied
    assert np.array_equal(decode_image(late), decode_image(rotated))

    loads, load = [], PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda image: loads.append(1) or load(image))
    assert np.array_equal(decode_image(plain), rgb) and not loads  # OpenCV decodes the pixels, once


def test_alpha_is_composited_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 2] = 255  # red in BGR order
    rgba[:2, :, 3] = 255  # top half opaque, bottom half transparent
    ok, data = cv2.imencode(".png", rgba)
    pixels = decode_image(data.tobytes())
    assert pixels.shape == (4, 4, 3)
    assert pixels[0, 0].tolist() == [0, 0, 255] and pixels[3, 3].tolist() == [255, 255, 255]


def test_sixteen_bit_grey_becomes_eight_bit_bgr():
    grey = np.full((3, 3), 40000, np.uint16)
    ok, data = cv2.imencode(".png", grey)
    pixels = decode_image(data.tobytes())
    assert pixels.dtype == np.uint8 and pixels.shape == (3, 3, 3) and pixels[0, 0, 0] == 40000 >> 8


def test_gif_reads_the_first_frame():
    frames = [Image.new("RGB", (6, 6), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    pixels = decode_image(buffer.getvalue())
    assert pixels[0, 0].tolist() == [0, 0, 255]  # BGR red


def test_each_bad_file_gets_its_reason(tmp_path):
    write_bad_files(tmp_path)
    reasons = {}
    for name in ("empty.jpg", "truncated.jpg", "notes.jpg", "bomb.png", "dangling.png"):
        with pytest.raises(ImageReadError) as error:
            read_image(tmp_path / name)
        reasons[name] = str(error.value)
    assert "0 bytes" in reasons["empty.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["notes.jpg"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert "not found" in reasons["dangling.png"]


def test_resizing_helpers_never_enlarge():
    image = np.zeros((100, 300, 3), np.uint8)
    assert fit_within(image, 150).shape[:2] == (50, 150)
    assert shrink_shorter_side(image, 50).shape[:2] == (50, 150)
    assert fit_within(image, 1000) is image and shrink_shorter_side(image, 200) is image
