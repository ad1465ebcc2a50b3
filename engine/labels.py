"""Importing human labels from a file: validate every row first, then write all of them in one transaction."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import LabelloopError
from storage import Store

_SHOWN_PROBLEMS = 3


@dataclass
class LabelImport:
    rows: int
    changed: int


def normalise_relpath(text: str) -> str:
    path = text.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def _read_rows(path: Path) -> list[tuple[int, str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = {name.strip().lower(): name for name in reader.fieldnames or []}
            if "path" not in columns or "label" not in columns:
                raise LabelloopError(f"{path} needs a header with columns path,label; found {reader.fieldnames}")
            return [(number, row[columns["path"]] or "", row[columns["label"]] or "")
                    for number, row in enumerate(reader, start=2)]
    except FileNotFoundError:
        raise LabelloopError(f"labels file {path} does not exist") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise LabelloopError(f"cannot read {path} as UTF-8 CSV: {error}") from None


def import_label_csv(store: Store, path: str | Path, *, actor: str) -> LabelImport:
    """Columns path,label (path relative to the images root; label "" = none of these). Nothing is written
    unless every row names a known, readable image and a known class."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise LabelloopError(f"{path} has a header but no rows; nothing to import")
    classes = {c["name"]: c["id"] for c in store.classes()}
    by_casefold = {name.casefold(): name for name in classes}
    known = store.image_ids([normalise_relpath(relpath) for _, relpath, _ in rows])
    problems: list[str] = []
    wanted: dict[int, tuple[int, int | None]] = {}  # image id -> (line, class id)
    for line, raw_path, raw_label in rows:
        relpath, label = normalise_relpath(raw_path), raw_label.strip()
        if label and label not in classes and label.casefold() not in by_casefold:
            problems.append(f"line {line}: unknown class {label!r} (classes: {', '.join(classes)})")
            continue
        if relpath not in known:
            problems.append(f"line {line}: {relpath!r} is not an image of this project")
            continue
        image_id, status = known[relpath]
        if status != "ok":
            problems.append(f"line {line}: {relpath!r} is not a usable image (status {status})")
            continue
        class_id = classes[by_casefold.get(label.casefold(), label)] if label else None
        if image_id in wanted and wanted[image_id][1] != class_id:
            problems.append(f"line {line}: {relpath!r} already has a different label on line {wanted[image_id][0]}")
            continue
        wanted[image_id] = (line, class_id)
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        more = f"; and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
        raise LabelloopError(f"{path}: {len(problems)} bad row(s), nothing was written: {shown}{more}")
    changed = store.set_labels(list(wanted), [class_id for _, class_id in wanted.values()], source="human",
                               actor=actor)
    return LabelImport(rows=len(rows), changed=changed)


def label_arrays(store: Store, image_ids: np.ndarray, class_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The current labels aligned to `image_ids` (N,): (label column in `class_ids`, -1 = none, "none of these" or
    an unknown class; human (N,) bool, the label came from a person)."""
    row_of = {image_id: row for row, image_id in enumerate(image_ids.tolist())}
    column_of = {class_id: column for column, class_id in enumerate(class_ids)}
    labels = np.full(len(image_ids), -1)
    human = np.zeros(len(image_ids), bool)
    snapshot = store.label_snapshot()
    for image_id, class_id, is_human in zip(snapshot["image_id"], snapshot["class_id"], snapshot["human"]):
        row = row_of.get(int(image_id))
        if row is not None:
            labels[row] = column_of.get(int(class_id), -1)
            human[row] = is_human
    return labels, human
