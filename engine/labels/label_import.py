"""Importing human labels from a CSV or a Label Studio JSON export: validate every row first, then write all of
them in one transaction."""

from __future__ import annotations

import csv
import posixpath
from dataclasses import dataclass
from pathlib import Path

from engine.files.csv_cells import unquote_formula
from engine.errors import LabelloopError
from engine.files.input_files import bounded_lines, open_input
from engine.labels.team import check_labeler, record_person_labels
from engine.labels.label_studio import LabelRow, TaskLabels, default_root_url, read_tasks, suggest_root_url
from engine.project.folder import Project
from engine.sources import Source
from engine.learning.tags import TAG_SEPARATOR, read_tag_cell
from storage import Store

IMPORT_FORMATS = ("csv", "label-studio")
_SHOWN_PROBLEMS = 10  # distinct problems named in the error; the count covers all of them


@dataclass
class LabelImport:
    rows: int  # labels read
    changed: int  # labels that changed
    skipped: int = 0  # Label Studio tasks that no one annotated (they carry no label)
    replaced: int = 0  # of `changed`, human labels last set by someone else
    cancelled: int = 0  # Label Studio tasks whose every annotation was cancelled (skipped)
    kept: int = 0  # labels changed in labelloop after the Label Studio annotation, left as they are


def to_relpath(text: str, images_root: Path) -> str:
    """A path as a labels file writes it (relative to the images folder, or absolute under it, with / or \\)
    -> the project's relpath; a path elsewhere comes back as written and is reported as unknown."""
    path = text.strip().replace("\\", "/")
    if not path:
        return path
    path = posixpath.normpath(path)
    root = images_root.as_posix().rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path


def _read_csv(path: Path) -> tuple[list[LabelRow], dict[str, list[str]]]:
    """(rows, problems). A row without a path or label field is a problem, never "none of these": that is only
    an empty label field that is there. Cells quoted against spreadsheet formulas (`export`) are read unquoted."""
    rows, problems = [], {}
    try:
        with open_input(path, "labels file", newline="") as handle:
            reader = csv.DictReader(bounded_lines(handle, path, "labels file"))
            columns = {name.strip().lower(): name for name in reader.fieldnames or []}
            if "path" not in columns or "label" not in columns:
                raise LabelloopError(f"{path} needs a header with columns path,label; found {reader.fieldnames}")
            for row in reader:
                where = f"line {reader.line_num}"
                raw_path, label = row[columns["path"]], row[columns["label"]]
                if raw_path is None or label is None:
                    problems.setdefault("row has fewer fields than the header", []).append(where)
                else:
                    rows.append((where, unquote_formula(raw_path), unquote_formula(label)))
    except (UnicodeDecodeError, csv.Error) as error:
        raise LabelloopError(f"cannot read {path} as UTF-8 CSV: {error}") from None
    except OSError as error:
        raise LabelloopError(f"cannot read labels file {path}: {error.strerror or error}") from None
    return rows, problems


def _places(where: list[str]) -> str:
    return ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")


def import_labels(project: Project, path: str | Path, *, fmt: str, actor: str, ls_root_url: str | None = None,
                  force: bool = False, person: str | None = None) -> LabelImport:
    """Set the human labels a file gives. `fmt` "csv": columns path,label (label "" = none of these);
    "label-studio": Label Studio's JSON export, `data.image` mapped back to the image by `ls_root_url` (default
    `engine.labels.label_studio.default_root_url`; see `task_path`); a human label changed in labelloop after the
    annotation's `updated_at` is kept unless `force`. Paths are relative to the images folder or absolute under it;
    a path that is exactly a project image's name is taken as is (a name may hold a backslash or edge spaces).
    Nothing is written unless every row names a known, usable image and a known class; the error names every kind
    of problem. With `person` (a person of the project), the labels are that person's own, kept beside the others'
    (engine.labels.team), and each image's label becomes their consensus."""
    if fmt not in IMPORT_FORMATS:
        raise LabelloopError(f"unknown labels format {fmt!r}; valid formats: {', '.join(IMPORT_FORMATS)}")
    if person is not None:
        check_labeler(project, person)
    multi_label = project.multi_label
    path, store = Path(path), project.store
    ls_root_url = default_root_url(project.images_root) if ls_root_url is None else ls_root_url
    tasks = TaskLabels(*_read_csv(path)) if fmt == "csv" else \
        read_tasks(path, root_url=ls_root_url, multi_label=multi_label)
    rows, problems = tasks.rows, tasks.problems
    if not rows and not problems:
        raise LabelloopError(f"{path} holds no labels; nothing to import")
    classes = {c["name"]: c["id"] for c in store.classes()}
    by_casefold = {name.casefold(): name for name in classes}
    images_root = project.images_root
    exact = store.image_ids([raw_path for _, raw_path, _ in rows])
    blank = [where for where, _, label in rows if label and not label.strip()]
    if blank:  # spaces or no-break spaces are a slip, never "none of these" (only an empty field is); refused below
        problems.setdefault("a label of only spaces (leave the field empty for none of these)", []).extend(blank)
    rows = [(where, raw_path if raw_path in exact else to_relpath(raw_path, images_root), label.strip())
            for where, raw_path, label in rows]
    known = store.image_ids([relpath for _, relpath, _ in rows])
    read_label = _tags_reader(classes, by_casefold) if multi_label else _class_reader(classes, by_casefold)
    wanted: dict[int, tuple[str, int | None | frozenset[int]]] = {}  # image id -> (where, class id or tag ids)
    annotated_at: dict[int, float] = {}  # image id -> its newest Label Studio annotation's time
    not_found = []  # where
    for where, relpath, label in rows:
        class_id, problem = read_label(label)
        if problem:
            problems.setdefault(problem, []).append(where)
        elif relpath not in known:
            problems.setdefault(f"{relpath!r} is not an image of this project", []).append(where)
            not_found.append(where)
        elif known[relpath][1] != "ok":
            problems.setdefault(f"{relpath!r} is not a usable image (status {known[relpath][1]})", []).append(where)
        else:
            image_id = known[relpath][0]
            if image_id in wanted and wanted[image_id][1] != class_id:
                problems.setdefault(f"{relpath!r} has two different labels (first at {wanted[image_id][0]})",
                                    []).append(where)
            else:
                wanted[image_id] = (where, class_id)
                if where in tasks.annotated_at:
                    annotated_at[image_id] = max(annotated_at.get(image_id, 0.0), tasks.annotated_at[where])
    if problems:
        count = sum(len(where) for where in problems.values())
        shown = "; ".join(f"{what} ({_places(where)})" for what, where in list(problems.items())[:_SHOWN_PROBLEMS])
        more = f"; and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
        unknown = any(w.startswith(("unknown class", "unknown tag", "several classes")) for w in problems)
        hint = f"; the {'tags' if multi_label else 'classes'} are {', '.join(classes)}" if unknown else ""
        hint += _root_url_hint(project, [tasks.urls[where] for where in not_found if where in tasks.urls])
        raise LabelloopError(f"{path}: {count} bad row(s), nothing was written: {shown}{more}{hint}")
    if person is not None:
        changed = record_person_labels(project, person, list(wanted), [class_id for _, class_id in wanted.values()])
        return LabelImport(rows=len(rows), changed=changed, skipped=tasks.unannotated, cancelled=tasks.cancelled)
    kept = 0 if force else _keep_newer_labels(store, wanted, annotated_at)
    class_ids = [class_id for _, class_id in wanted.values()]
    tag_sets = None
    if multi_label:  # a row names the tags present; every other tag was looked at and is absent
        tag_sets, class_ids = [(tags, list(classes.values())) for tags in class_ids], [None] * len(class_ids)
    replaced = store.count_human_labels_replaced(list(wanted), class_ids, actor=actor, tag_sets=tag_sets)
    changed = store.set_labels(list(wanted), class_ids, source=Source.HUMAN, actor=actor, tag_sets=tag_sets)
    return LabelImport(rows=len(rows), changed=changed, skipped=tasks.unannotated, cancelled=tasks.cancelled,
                       kept=kept, replaced=replaced)


def _class_reader(classes: dict[str, int], by_casefold: dict[str, str]):
    """A single-label project's label cell -> (class id, None = none of these; a problem or None)."""
    def read(label: str) -> tuple[int | None, str | None]:
        if not label:
            return None, None
        if label.casefold() in by_casefold:
            return classes[by_casefold[label.casefold()]], None
        parts = [part.strip().casefold() for part in label.split(TAG_SEPARATOR)]
        if len(parts) > 1 and all(part in by_casefold for part in parts):
            return None, (f"several classes {label!r} in a single-label project (one class per image; a project "
                          "made with init --multi-label takes tags)")
        return None, f"unknown class {label!r}"

    return read


def _tags_reader(classes: dict[str, int], by_casefold: dict[str, str]):
    """A multi-label project's label cell (tags joined by ';', empty = no tag applies) -> (tag ids, a problem)."""
    def read(label: str) -> tuple[frozenset[int], str | None]:
        names, problem = read_tag_cell(label, by_casefold)
        return frozenset(classes[name] for name in names), problem

    return read


def _root_url_hint(project: Project, urls: list[str]) -> str:
    """Which --ls-root-url maps Label Studio's refused `data.image` values to images of this project, if one does."""
    def names_image(paths: list[str]) -> int:
        relpaths = [to_relpath(path, project.images_root) for path in paths]
        known = project.store.image_ids(relpaths)
        return sum(relpath in known for relpath in relpaths)

    found = suggest_root_url(urls, names_image)
    if found is None:
        return ""
    prefix, mapped = found
    return (f"; with --ls-root-url '{prefix}' {mapped} of the {len(urls)} unknown paths name images of this project"
            " (pass the same --ls-root-url as the export)")


def _keep_newer_labels(store: Store, wanted: dict[int, tuple[str, int | None | frozenset[int]]],
                       annotated_at: dict[int, float]) -> int:
    """Drop from `wanted` every label a person changed in labelloop after the annotation that would replace it was
    last updated in Label Studio (an old export must not undo newer work); `annotated_at` is keyed by image, so
    no other task's time can stand in for an image's own. Returns how many were dropped."""
    current = store.human_label_times(list(annotated_at))
    stale = [image_id for image_id, (label, changed_at) in current.items()
             if label != wanted[image_id][1] and changed_at > annotated_at[image_id]]
    for image_id in stale:
        del wanted[image_id]
    return len(stale)

