"""Images uploaded through the page: copied into the images folder, where the next ingest finds them."""

from __future__ import annotations

import time
from pathlib import Path
import shutil

from engine.errors import LabelloopError
from engine.files.images import SUPPORTED_EXTENSIONS


def save_uploads(images_root: Path, paths: list[str | Path]) -> tuple[Path, int]:
    """Copy the image files among `paths` into `uploads/<time>/` under `images_root`, keeping two uploads with
    the same name apart. Returns (that folder, files copied)."""
    images = [Path(p) for p in paths if Path(p).suffix.lower() in SUPPORTED_EXTENSIONS]
    if not images:
        raise LabelloopError(f"no image files among the uploads; supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}")
    target = images_root / "uploads" / time.strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for path in images:
        destination, number = target / path.name, 1
        while destination.exists():
            destination, number = target / f"{path.stem}-{number}{path.suffix}", number + 1
        shutil.copy2(path, destination)
    return target, len(images)
