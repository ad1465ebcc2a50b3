"""Small synthetic image folders for tests and benchmarks: good images in every supported format, and the bad
files ingest must survive."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

FORMATS = (".jpg", ".png", ".webp", ".bmp", ".tiff")


def random_image(rng: np.random.Generator, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A coloured background with a random filled shape, (H, W, 3) uint8 BGR."""
    height, width = size
    image = np.full((height, width, 3), rng.integers(0, 256, 3), np.uint8)
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    center = (int(rng.integers(width // 4, 3 * width // 4)), int(rng.integers(height // 4, 3 * height // 4)))
    radius = int(rng.integers(8, min(height, width) // 3))
    if rng.random() < 0.5:
        cv2.circle(image, center, radius, color, -1)
    else:
        cv2.rectangle(image, (center[0] - radius, center[1] - radius), (center[0] + radius, center[1] + radius),
                      color, -1)
    return image


def write_images(folder: Path, count: int, *, seed: int = 0, start: int = 0, size=(96, 128)) -> list[str]:
    """Write `count` distinct images in rotating formats under `folder` (some in sub-folders); returns relpaths."""
    rng = np.random.default_rng(seed)
    relpaths = []
    for index in range(start, start + count):
        relpath = f"{'sub/' if index % 3 == 0 else ''}img_{index:05d}{FORMATS[index % len(FORMATS)]}"
        path = folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), random_image(rng, size)):
            raise RuntimeError(f"could not write {path}")
        relpaths.append(relpath)
    return relpaths


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_bad_files(folder: Path) -> dict[str, str]:
    """The five kinds of unusable file of issue 2; returns relpath -> what it is."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    ok, encoded = cv2.imencode(".jpg", random_image(np.random.default_rng(99), (256, 256)))
    (folder / "truncated.jpg").write_bytes(encoded.tobytes()[: len(encoded) // 2])
    (folder / "notes.jpg").write_text("this is a text file, not a picture\n")
    header = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                                      + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _png_chunk(b"IEND", b""))
    os.symlink(folder / "does-not-exist.png", folder / "dangling.png")
    return {"empty.jpg": "zero bytes", "truncated.jpg": "truncated JPEG", "notes.jpg": "text file",
            "bomb.png": "50,000 x 50,000 header", "dangling.png": "dangling symlink"}
