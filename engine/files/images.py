"""Reading image files safely and making thumbnails.

Decoding is OpenCV's. Pillow reads headers: the pixel count (checked before decoding, against decompression
bombs) and the EXIF orientation, which OpenCV ignores when it keeps alpha and 16-bit data; it decodes only what
OpenCV cannot (AVIF). Only regular files are read: a FIFO, socket or device named like an image is refused
without being opened for reading, so it cannot hang the reader.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.files.input_files import file_kind

SUPPORTED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif",
                                  ".heic", ".heif"})
# Larger than any camera or scanner frame a labeling project holds (a 16k x 16k tile is 268 Mpx); a small file
# that claims more is a decompression bomb.
MAX_PIXELS = 16384 * 16384
# One limit, ours: Pillow's own (89 Mpx, an error at twice that) would refuse pictures under ours with a message
# naming our limit. Pillow now errors only above 2 * MAX_PIXELS, where our message is true as well.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
THUMBNAIL_SIDE = 256
_EXIF_ORIENTATION = 0x0112
_BACKGROUND = 255.0  # transparent pixels are shown on white, as image viewers do


class ImageReadError(Exception):
    """A file that is not a usable image; the message is the reason stored beside it."""


@dataclass
class ReadImage:
    pixels: np.ndarray  # (H, W, 3) uint8 BGR, EXIF orientation applied
    sha256: str
    size: int


def read_image(path: str | Path) -> ReadImage:
    """Read, hash and decode one file; raises ImageReadError with a reason a person understands."""
    data = read_regular_file(path)
    return ReadImage(pixels=decode_image(data), sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def read_regular_file(path: str | Path) -> bytes:
    """The bytes of a regular, non-empty file; anything else raises ImageReadError with the reason."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(descriptor, "rb") as handle:
            kind = os.fstat(descriptor).st_mode
            if not stat.S_ISREG(kind):
                raise ImageReadError(f"not a regular file ({file_kind(kind)}); not read")
            data = handle.read()
    except FileNotFoundError:
        raise ImageReadError("cannot open: file not found (a dangling symlink?)") from None
    except PermissionError:
        raise ImageReadError("cannot open: permission denied") from None
    except IsADirectoryError:
        raise ImageReadError("cannot open: is a directory") from None
    except OSError as error:
        raise ImageReadError(f"cannot open: {error.strerror or error}") from None
    if not data:
        raise ImageReadError("empty file (0 bytes)")
    return data


# The image formats a browser may draw, by the bytes they start with: a file's name says nothing about what a browser
# would make of it.
_SIGNATURES = {"image/jpeg": rb"\xff\xd8\xff", "image/png": rb"\x89PNG\r\n\x1a\n", "image/gif": rb"GIF8[79]a",
               "image/webp": rb"RIFF....WEBP", "image/bmp": rb"BM", "image/tiff": rb"II\*\x00|MM\x00\*",
               "image/avif": rb"....ftypavi[fs]"}


def image_type(data: bytes) -> str | None:
    """The MIME type of an image from its first bytes (None: not an image a browser draws)."""
    return next((mime for mime, start in _SIGNATURES.items() if re.match(start, data, re.DOTALL)), None)


def decode_image(data: bytes) -> np.ndarray:
    """Bytes of an image file -> (H, W, 3) uint8 BGR with orientation applied, alpha over white, 16-bit scaled."""
    width, height, orientation, kind = probe_header(data)
    if width * height > MAX_PIXELS:
        raise ImageReadError(f"image is {width}x{height} = {width * height:,} pixels, over the {MAX_PIXELS:,}-pixel "
                             "limit (possible decompression bomb)")
    if kind in _PILLOW_DECODES:
        pixels = _pillow_decode(data)
    else:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise ImageReadError("cannot decode: file is truncated or corrupt")
    return _apply_orientation(_to_bgr8(pixels), orientation)


_PILLOW_DECODES = frozenset({"AVIF"})  # formats OpenCV's wheels do not read


def _pillow_decode(data: bytes) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))[..., ::-1]
    except (OSError, SyntaxError, ValueError):
        return None


def probe_header(data: bytes) -> tuple[int, int, int, str]:
    """(width, height, EXIF orientation, Pillow's format name) from the header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about large images; we apply our own limit
            with Image.open(io.BytesIO(data)) as image:
                width, height, kind = *image.size, image.format or ""
                # Pillow's PNG reader decodes every pixel to look for an eXIf chunk after them (7 ms for a 640x480
                # picture, as long as the decode itself); a file without one has its EXIF, if any, in what the
                # header read already parsed.
                try:
                    exif = Image.Image.getexif(image) if kind == "PNG" and b"eXIf" not in data else image.getexif()
                    orientation = int(exif.get(_EXIF_ORIENTATION, 1))
                except Exception:  # a broken EXIF block must not cost the picture
                    orientation = 1
    except UnidentifiedImageError:
        if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftypheim", b"ftyphevc"):
            raise ImageReadError("HEIC/HEIF cannot be decoded here; convert it to JPEG or PNG (or install "
                                 "pillow-heif), then ingest again") from None
        raise ImageReadError("not an image (contents are not JPEG, PNG, WebP, BMP, TIFF, GIF or AVIF)") from None
    except Image.DecompressionBombError as error:
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        amount = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
        raise ImageReadError(f"image header claims {amount}, over the {MAX_PIXELS:,}-pixel limit "
                             "(possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"cannot read image header: {error}") from None
    return width, height, orientation, kind


def _to_bgr8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        finite = np.nan_to_num(pixels.astype(np.float32))
        high = float(finite.max()) or 1.0
        pixels = np.clip(finite * (255.0 / high if high > 1.0 else 255.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    channels = pixels.shape[2]
    if channels == 1:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if channels == 2:  # grey + alpha
        grey, alpha = pixels[..., :1].astype(np.float32), pixels[..., 1:2].astype(np.float32) / 255.0
        return np.repeat(_over_background(grey, alpha), 3, axis=2)
    if channels == 4:
        color, alpha = pixels[..., :3].astype(np.float32), pixels[..., 3:4].astype(np.float32) / 255.0
        return _over_background(color, alpha)
    return np.ascontiguousarray(pixels[..., :3])


def _over_background(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.clip(color * alpha + _BACKGROUND * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Undo the camera rotation recorded in EXIF tag 274 (values 1-8, as Pillow's ImageOps.exif_transpose)."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return np.ascontiguousarray(transform(pixels)) if transform else pixels


def fit_within(pixels: np.ndarray, side: int) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is at most `side`."""
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0:
        return pixels
    return downscale(pixels, (max(1, round(width * scale)), max(1, round(height * scale))))


def shrink_shorter_side(pixels: np.ndarray, side: int) -> np.ndarray:
    """Shrink (never enlarge) so the shorter side is `side`: CLIP's resize step."""
    height, width = pixels.shape[:2]
    scale = side / min(height, width)
    if scale >= 1.0:
        return pixels
    return downscale(pixels, (max(side, round(width * scale)), max(side, round(height * scale))))


def model_picture(pixels: np.ndarray, side: int) -> Image.Image:
    """(H, W, 3) uint8 BGR -> the RGB picture an open_clip preprocessing takes, already shrunk so its shorter side
    is `side` (the model's input size): our alias-free resize, not the preprocessing's bicubic one, does the work."""
    return Image.fromarray(np.ascontiguousarray(shrink_shorter_side(pixels, side)[..., ::-1]))


def downscale(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to `size` (width, height) by halving with a Gaussian pyramid, then one bilinear step of at most 2x.
    As alias-free as area averaging, and several times faster than OpenCV's INTER_AREA at non-integer scales
    (measured 10 ms against 42 ms for a 12 Mpx photo)."""
    while pixels.shape[1] >= 2 * size[0] and pixels.shape[0] >= 2 * size[1]:
        pixels = cv2.pyrDown(pixels)
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)


def thumbnail_path(thumbs_dir: Path, sha256: str) -> Path:
    """Thumbnails are keyed by content: duplicates share one and an edited file gets a new one."""
    return thumbs_dir / sha256[:2] / f"{sha256}.jpg"


def thumbnail_jpeg(pixels: np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """The thumbnail file's bytes: a Ray worker sends them to the machine that holds the project."""
    ok, encoded = cv2.imencode(".jpg", fit_within(pixels, side), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ImageReadError("cannot encode thumbnail")
    return encoded.tobytes()


def save_thumbnail(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)  # two workers writing the same duplicate never leave a half-written file


def quiet_worker(_: int) -> None:
    """worker_init_fn of decode workers: one thread each, so they never fight the model for the cores."""
    import torch  # here: model-free commands read images without importing torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def default_workers() -> int:
    """Decode in parallel with the model, leaving a core for it: 1 worker on 2 cores, up to 8 on big machines."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))
