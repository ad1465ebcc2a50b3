"""A project on disk: a directory holding `labelloop.duckdb` (all state), `thumbs/` and `models/`.

Images stay where the person keeps them; the project records the images root and paths relative to it.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from engine.errors import LabelloopError, as_refusal
from engine.learning.models import ModelSpec, parse_model_spec
from engine.learning.class_prompts import default_templates, parse_class_list, read_prompts_file
from engine.project.server_record import ServerRecord, read_server_record
from storage import MULTI_LABEL, SINGLE_LABEL, ProjectLocked, ProjectUnreadable, Store

DB_FILE = "labelloop.duckdb"

def holds_project(folder: str | Path) -> bool:
    """Whether `folder` is a labelloop project's root (it holds the project database). Such a folder inside an
    images folder is another project: never ingested as images, never served."""
    return (Path(folder) / DB_FILE).is_file()


def image_files(images_root: Path, *, exclude: Path | None = None,
                on_project: Callable[[], None] = lambda: None) -> Iterator[os.DirEntry]:
    """Every file with an image extension under `images_root`, in no particular order, found as the walk goes (the
    first one comes at once however large the folder). A folder holding another labelloop project is skipped and
    `on_project` called; `exclude` (this project's folder) is skipped silently. Directory symlinks are not followed,
    so nothing outside the root is read; a file that cannot be stat'ed (a dangling symlink) is listed all the same
    and reported by its reader."""
    from engine.files.images import SUPPORTED_EXTENSIONS  # cv2 with it: commands that list no images skip it

    stack = [images_root]
    while stack:
        folder = stack.pop()
        try:
            items = list(os.scandir(folder))
        except OSError:
            continue
        for item in items:
            if item.is_dir(follow_symlinks=False):
                if exclude is not None and Path(item.path).resolve() == exclude:
                    continue
                if holds_project(item.path):
                    on_project()
                else:
                    stack.append(Path(item.path))
            elif os.path.splitext(item.name)[1].lower() in SUPPORTED_EXTENSIONS:
                yield item


@dataclass
class Project:
    root: Path
    store: Store

    @property
    def images_root(self) -> Path:
        return Path(self.store.get_meta("images_root"))

    @property
    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def model_spec(self) -> ModelSpec:
        """The project's model. One kept inside the project (a finetune round's) is stored relative to the
        project folder, so the project still opens after it is moved or copied."""
        stored = self.store.get_meta("model")
        relative = Path(stored)
        if not relative.is_absolute() and relative.parts[:1] == (self.models_dir.name,):
            return parse_model_spec(str(self.root / relative))
        return parse_model_spec(stored)

    def stored_model(self, spec: ModelSpec) -> str:
        """How `spec` is written to the project's meta: relative when its files are inside the project."""
        if spec.path is not None and spec.path.is_relative_to(self.models_dir):
            return spec.path.relative_to(self.root).as_posix()
        return spec.canonical

    @property
    def multi_label(self) -> bool:
        return self.store.is_multi_label()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_project(root: str | Path, *, images: str | Path, classes: str, model: str,
                   prompts: str | Path | None = None, require_images: bool = False,
                   multi_label: bool = False) -> Project:
    """Validate everything first, then create the directory and database; a refused init leaves nothing behind.
    `require_images`: refuse an images folder holding no image file yet (the start page, which ingests at once;
    `labelloop init` takes an empty folder to fill later). `multi_label`: each image gets a set of tags (never
    changed later)."""
    root = Path(root).expanduser().resolve()
    images_root = Path(images).expanduser()
    if not images_root.is_dir():
        raise LabelloopError(f"images folder {images_root} does not exist or is not a folder; give the folder that "
                             "holds your images")
    images_root = images_root.resolve()
    if (root / DB_FILE).exists():
        raise LabelloopError(f"{root} is already a labelloop project; open it (`labelloop serve {root}`, or Open on "
                             "the start page), or give a new folder")
    if root.exists() and not root.is_dir():
        raise LabelloopError(f"project path {root} is a file; give a new or empty folder")
    if root == images_root or images_root.is_relative_to(root):
        raise LabelloopError(f"project folder {root} must not contain the images folder; put the project beside it")
    if root.is_relative_to(images_root):  # its exports would land in the images folder, which export refuses
        raise LabelloopError(f"project folder {root} must not be inside the images folder {images_root}; "
                             "put the project beside it")
    if require_images:
        if next(image_files(images_root), None) is None:
            raise LabelloopError(f"images folder {images_root} holds no image files (.jpg, .png, .webp, ...); "
                                 "give the folder that holds your images")
    names = parse_class_list(classes)
    templates, overrides = (read_prompts_file(prompts, names) if prompts else (default_templates(), {}))
    spec = parse_model_spec(model)

    root.mkdir(parents=True, exist_ok=True)
    for folder in ("thumbs", "models"):
        (root / folder).mkdir(exist_ok=True)
    store = Store.open(root / DB_FILE)
    store.set_meta(images_root=str(images_root), model=spec.canonical, templates=templates,
                   created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   label_kind=MULTI_LABEL if multi_label else SINGLE_LABEL)
    store.add_classes(names, [overrides.get(name) for name in names])
    return Project(root, store)


def projects_in(home: str | Path) -> list[Path]:
    """The labelloop projects in `home`: itself and its sub-folders one level down that hold one, the one used last
    first (by its database's modification time). Cheap: one listing of `home`, no database opened (another process
    may hold one)."""
    home = Path(home).expanduser().resolve()
    try:
        folders = [home, *sorted(entry for entry in home.iterdir() if entry.is_dir())]
    except OSError:
        return []
    found = []
    for folder in folders:
        try:
            found.append(((folder / DB_FILE).stat().st_mtime, folder))
        except OSError:  # no project there (or one this user cannot read, which would not open either)
            continue
    return [folder for _, folder in sorted(found, key=lambda item: -item[0])]


class ProjectInUse(LabelloopError):
    """Another process holds the project. `server`: the record of the `labelloop serve` that holds it (the
    read-only commands ask it instead), None when something else does."""

    def __init__(self, root: Path, locked: ProjectLocked):
        record = read_server_record(root)
        # The lock names its holder: a record of another process (a reused pid) is not that holder's.
        self.server: ServerRecord | None = record if record and locked.pid in (None, record.pid) else None
        super().__init__(f"the page at {self.server.url} (process {self.server.pid}) holds {root}; use it, or stop it "
                         "(Ctrl-C where `labelloop serve` runs) first" if self.server else str(locked))


def open_project(root: str | Path) -> Project:
    root = Path(root).expanduser().resolve()
    if not holds_project(root):
        raise LabelloopError(f"{root} is not a labelloop project (no {DB_FILE}); create it with "
                             "`labelloop init PROJECT --images DIR --classes \"a,b\"`")
    try:
        store = Store.open(root / DB_FILE)
    except ProjectLocked as locked:
        raise ProjectInUse(root, locked) from None
    except ProjectUnreadable as refused:  # a read-only or full disk is said as such, not as a damaged file
        raise as_refusal(refused.__cause__ or refused) or LabelloopError(str(refused)) from None
    store.mark_interrupted()  # whatever a killed process left running did not finish; its results were never written
    return Project(root, store)


def project_status(project: Project) -> dict:
    """Everything `labelloop status` reports: counts of images by status, labels by source, the last round, the
    rounds held back as measured worse, and what the random audit says of the dataset's quality."""
    from engine.project.audit import quality_report

    store = project.store
    model_id = store.get_meta("model_id")
    counts = store.counts()
    return {
        "project": str(project.root),
        "images_root": str(project.images_root),
        "model": {"spec": store.get_meta("model"), "model_id": model_id,
                  "embedded": store.embedding_count(model_id) if model_id else 0},
        "classes": [c["name"] for c in store.classes()],
        "multi_label": store.is_multi_label(),
        **counts,
        "errors": store.image_errors(),
        "schema_version": store.schema_version(),
        "shown_round": store.shown_round(),
        "held_rounds": sorted(store.held_rounds()),
        "quality": quality_report(store, project_hint=str(project.root)),
    }
