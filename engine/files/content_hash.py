"""A file's content hash, the sha256 that ingest records for every image (engine.files.images.read_image) and that a
label belongs to: `ingest --verify` and folder exports check files against it."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20  # read a large image a piece at a time, never whole into memory


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of the bytes of the file at `path` (a symlink is followed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
