"""Labels from folder names: the common case of a half-sorted images folder (`cat/…`, `dog/…`, `unsorted/…`).

An image's nearest enclosing folder that names a class becomes its human label: `cat/x.jpg` and `cat/2023/x.jpg`
are cats, `unsorted/x.jpg` and images directly in the images folder get no label. Names match ignoring case, and
`_`, `-` and spaces count alike (`Golden_Retriever` names the class "golden retriever"). It is recorded in the
label history with the actor "folders", and never touches an image a person (or an import) ever labeled, so it
can run after every ingest and only labels images new since.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import LabelloopError
from engine.project.folder import Project
from engine.sources import Source

FOLDERS_ACTOR = "folders"
SETTING = "labels_from_folders"  # the project's meta key: apply after every ingest


def folder_key(name: str) -> str:
    """How a folder or class name is compared: case-folded, with `_`, `-` and runs of spaces as one space."""
    return " ".join(name.casefold().replace("_", " ").replace("-", " ").split())


def classes_from_folders(relpaths: list[str], class_names: list[str]) -> list[str | None]:
    """For each path relative to the images folder ('/'-separated), the class its nearest enclosing folder names,
    or None. Two classes that compare equal under `folder_key` are ambiguous and match no folder."""
    keys: dict[str, str | None] = {}
    for name in class_names:
        key = folder_key(name)
        keys[key] = None if key in keys else name
    found = []
    for relpath in relpaths:
        folders = relpath.split("/")[:-1]
        found.append(next((keys[folder_key(folder)] for folder in reversed(folders)
                           if keys.get(folder_key(folder))), None))
    return found


@dataclass
class FolderLabels:
    labeled: int  # images given the class their folder names
    no_class: int  # images (never labeled by a person) in no folder naming a class
    kept: int  # images in a class folder that a person labeled already: left as they are

    @property
    def message(self) -> str:
        kept = f"; {self.kept:,} kept as a person labeled them" if self.kept else ""
        return (f"{self.labeled:,} labels from folder names; {self.no_class:,} images in folders naming no "
                f"class{kept}")

    def as_dict(self) -> dict:
        return {"labeled": self.labeled, "no_class": self.no_class, "kept": self.kept, "message": self.message}


def labels_from_folders(project: Project) -> FolderLabels:
    """Give every usable image no person ever labeled the class its folder names, as a human label by
    FOLDERS_ACTOR, in one transaction."""
    store = project.store
    classes = store.classes()
    history = store.human_label_history(FOLDERS_ACTOR)
    found = classes_from_folders([relpath for _, relpath, _, _ in history], [c["name"] for c in classes])
    class_id = {c["name"]: c["id"] for c in classes}
    chosen = [(image_id, class_id[name]) for (image_id, _, ever, _), name in zip(history, found)
              if name is not None and not ever]
    if chosen:
        store.set_labels([image_id for image_id, _ in chosen], [cid for _, cid in chosen], source=Source.HUMAN,
                         actor=FOLDERS_ACTOR)
    never = sum(not ever for _, _, ever, _ in history)
    kept = sum(name is not None and by_person for (_, _, _, by_person), name in zip(history, found))
    return FolderLabels(labeled=len(chosen), no_class=never - len(chosen), kept=kept)


def folder_labels_enabled(project: Project) -> bool:
    return bool(project.store.get_meta(SETTING, False))


def refuse_in_multi_label(multi_label: bool) -> None:
    """A folder names one class: labels from folders are refused in a multi-label project, in one line."""
    if multi_label:
        raise LabelloopError("labels from folders give each image one class (its folder's); a multi-label project "
                             "takes its tags from `labelloop label PROJECT --csv FILE`")


def set_folder_labels(project: Project, enabled: bool) -> None:
    if enabled:
        refuse_in_multi_label(project.multi_label)
    project.store.set_meta(**{SETTING: bool(enabled)})


def after_ingest(project: Project) -> dict | None:
    """Labels from folders for what an ingest added (FolderLabels.as_dict), when the project asks for them
    (init --labels-from-folders or the Ingest tab's option); None when it does not."""
    return labels_from_folders(project).as_dict() if folder_labels_enabled(project) else None
