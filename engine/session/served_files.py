"""What the page may show from disk: images (by their bytes, whatever their names) from the images folder and the
project's thumbnails, never a file inside another labelloop project nested there (its database, its thumbnails)."""

from __future__ import annotations

from pathlib import Path

from engine.errors import LabelloopError
from engine.files.images import ImageReadError, image_type, read_regular_file
from engine.project.folder import holds_project


def servable_image(path: str | Path, roots: list[Path]) -> tuple[bytes, str]:
    """(bytes, MIME type from the bytes) of the image at absolute `path`, when it lies in one of `roots` and outside
    any folder below that root holding a labelloop project; LabelloopError saying why not otherwise. Symlinks are
    resolved first, so none leads out of a root."""
    resolved = Path(path).resolve()
    if not any(_served_from(resolved, Path(root).resolve()) for root in roots):
        raise LabelloopError(f"{path} is not in the images folder or the thumbnails of this project (or lies in "
                             "another labelloop project there); not served")
    try:
        data = read_regular_file(resolved)
    except ImageReadError as error:
        raise LabelloopError(f"{path}: {error}") from None
    mime = image_type(data)
    if mime is None:
        raise LabelloopError(f"{path} is not an image (JPEG, PNG, GIF, WebP, BMP, TIFF or AVIF); not served")
    return data, mime


def _served_from(path: Path, root: Path) -> bool:
    """Whether `path` lies in `root` and in no folder below `root` that holds a labelloop project."""
    return path.is_relative_to(root) and not any(holds_project(folder) for folder in path.parents
                                                 if folder != root and folder.is_relative_to(root))
