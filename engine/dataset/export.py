"""Exporting the labeled dataset: one file (csv, parquet, jsonl, label-studio) or a folder: of class sub-folders
(imagefolder, hf) or FiftyOne's classification dataset (fiftyone).

Everything is written to a temporary file or folder beside the target and renamed into place at the end, so a
failed export never leaves a half-written dataset where a good one was expected. Only images inside the images
folder are copied or linked, and each finished export is recorded in the project.
"""

from __future__ import annotations

import csv
import errno
import glob
import json
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.project.audit import quality_report
from engine.files.content_hash import file_sha256
from engine.files.csv_cells import quote_formula
from engine.project.discovery import Discovery
from engine.errors import LabelloopError, as_refusal
from engine.dataset.fiftyone_labels import DATA_FOLDER, LABELS_FILE, class_logits, label_key, labels_document
from engine.files.input_files import file_kind
from engine.labels.label_studio import default_root_url, tasks as label_studio_tasks
from engine.project.folder import DB_FILE, Project
from engine.sources import Source
from engine.learning.tags import TAG_PRESENT, TAG_SEPARATOR
from engine.dataset.split import SPLIT_NAMES, parse_split, stratified_split

EXPORT_FORMATS = ("csv", "parquet", "jsonl", "imagefolder", "hf", "fiftyone", "label-studio")
FOLDER_FORMATS = ("imagefolder", "hf", "fiftyone")
# a folder per class, every class's even when empty; "none of these" needs a folder of its own (NONE_CLASS), so these
# leave it out unless asked
CLASS_FOLDER_FORMATS = ("imagefolder", "hf")
FILE_FORMATS = tuple(fmt for fmt in EXPORT_FORMATS if fmt not in FOLDER_FORMATS)  # what the page offers to download
# What a multi-label project exports: its tags as a list (csv: ;-joined; hf: a Sequence(ClassLabel), the images in
# one folder TAGGED_FOLDER; label-studio: a choice="multiple" answer)
TAG_FORMATS = ("csv", "parquet", "jsonl", "hf", "label-studio")
TAGGED_FOLDER = "images"
SOURCES = ("all", Source.HUMAN)
LINK_MODES = ("copy", "symlink", "hardlink")
# csv, parquet and jsonl rows; the first five are the CSV contract of docs/ARCHITECTURE.md
MANIFEST_COLUMNS = ("path", "label", "source", "confidence", "round", "sha256", "size_bytes", "width", "height")
MANIFEST_FILE = "manifest.csv"  # in every folder export; it also marks a folder that --force may replace
CLASSES_FILE = "classes.json"  # in every folder export: the class names in project order
QUALITY_FILE = "quality.json"  # beside the manifest (a one-file export: OUT.quality.json beside it)
CARD_FILE = "README.md"  # the hf export's dataset card
NONE_CLASS = "none_of_these"  # folder (and hf class) of "none of these" images when imagefolder or hf includes them
_PROJECT_OWNED = (DB_FILE, DB_FILE + ".wal", "thumbs", "models")


@dataclass(frozen=True)
class ExportReport:
    path: Path  # the file or folder written
    format: str
    rows: int  # images exported
    human: int  # of them, labels a person gave (label-studio: annotations; the rest are predictions)
    labels: dict[str, int]  # rows per label, "none_of_these" for "none of these"
    skipped_unpredicted: int  # images with no prediction yet (ingest has not finished)
    skipped_below_confidence: int  # machine labels under --min-confidence
    skipped_none: int  # "none of these" labels left out
    skipped_unavailable: int  # human-labelled images that are missing or unreadable now
    splits: dict[str, int]  # rows per split folder; empty without a split
    export_id: int  # its row in the project's record of exports
    skipped_duplicates: int = 0  # near-duplicates left out by drop_duplicates (one image per group is kept)
    skipped_changed: int = 0  # images changed since labelled: their labels wait for a person


def changed_note(count: int) -> str:
    """What an export says of the images it left out as changed since labelled."""
    return f"{count} images changed since labelled were left out: relabel or confirm them"


def _count(mask) -> int:
    return pc.sum(mask).as_py() or 0  # the sum of no rows is null


def select_rows(table: pa.Table, *, source: str, min_confidence: float | None,
                include_none: bool) -> tuple[pa.Table, dict[str, int]]:
    """Apply the export filters to `Store.current_labels()`: returns the rows to write (MANIFEST_COLUMNS; label
    null = none of these; confidence rounded to 6 places) and how many were left out, by reason. Human labels pass
    any confidence threshold; an image with no prediction yet has no label to export, and one changed since
    labelled none until a person relabels or confirms it."""
    predicted = pc.is_valid(table["source"])
    human = pc.fill_null(pc.equal(table["source"], Source.HUMAN), False)
    keep = pc.and_(predicted, human) if source == Source.HUMAN else predicted
    keep = pc.and_not(keep, table["changed"])
    threshold = -1.0 if min_confidence is None else min_confidence
    below = pc.and_(pc.and_not(keep, human), pc.fill_null(pc.less(table["confidence"], threshold), False))
    keep = pc.and_not(keep, below)
    tags = pa.types.is_list(table["label"].type)  # a multi-label project's: an empty list is a label, no tag applies
    none = pc.and_(pc.and_(keep, human), pc.fill_null(pc.equal(table["label"], ""), False)) if not tags \
        else pa.array(np.zeros(len(table), bool))
    if not include_none:
        keep = pc.and_not(keep, none)
    rows = table.filter(keep)
    if not tags:
        rows = rows.set_column(rows.schema.get_field_index("label"), "label",
                               pc.if_else(pc.equal(rows["label"], ""), pa.scalar(None, pa.string()), rows["label"]))
    rows = rows.set_column(rows.schema.get_field_index("confidence"), "confidence",
                           pc.round(pc.cast(rows["confidence"], pa.float64()), 6))
    left_out = {"unpredicted": len(table) - _count(predicted), "below_confidence": _count(below),
                "changed": _count(table["changed"]),
                "none_of_these": 0 if include_none else _count(none)}
    return rows.select(list(MANIFEST_COLUMNS)), left_out


def keep_one_per_group(rows: pa.Table, groups: Sequence[Sequence[str]]) -> tuple[pa.Table, int]:
    """`rows` (columns path, source, confidence) with one row per group of duplicate paths: of a group's rows, a
    person's label first, then the most confident machine label, then the first path. Returns the rows and how
    many were left out."""
    paths = rows["path"].to_pylist()
    position = {path: i for i, path in enumerate(paths)}
    human = pc.fill_null(pc.equal(rows["source"], Source.HUMAN), False).to_pylist()
    confidence = pc.fill_null(rows["confidence"], -1.0).to_pylist()
    drop = np.zeros(len(rows), bool)
    for group in groups:
        present = sorted((position[path] for path in group if path in position),
                         key=lambda i: (not human[i], -confidence[i], paths[i]))
        drop[present[1:]] = True
    return rows.filter(pa.array(~drop)), int(drop.sum())


def _check_options(fmt: str, source: str, min_confidence: float | None, link: str, split, seed: int) -> None:
    if fmt not in EXPORT_FORMATS:
        raise LabelloopError(f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}")
    if source not in SOURCES:
        raise LabelloopError(f"unknown --source {source!r}; valid: {', '.join(SOURCES)}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:  # NaN fails this too
        raise LabelloopError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
    if link not in LINK_MODES:
        raise LabelloopError(f"unknown --link {link!r}; valid: {', '.join(LINK_MODES)}")
    if seed < 0:  # numpy's generators take no negative seed
        raise LabelloopError(f"--seed must be 0 or more, got {seed}")
    if fmt in FILE_FORMATS and (split is not None or link != "copy"):
        raise LabelloopError(f"--split and --link apply to the folder formats ({', '.join(FOLDER_FORMATS)}), "
                             f"not to {fmt}")


def _check_target(project: Project, out: Path, fmt: str, force: bool) -> Path:
    """The resolved target, or a refusal: never in or around the images folder or the project's own files; an
    existing file or non-empty folder only with --force, and a folder only if it is an earlier folder export."""
    out = out.expanduser().resolve()
    images_root, root = project.images_root, project.root
    if out.is_relative_to(images_root):
        raise LabelloopError(f"export target {out} is inside the images folder {images_root}; write it elsewhere")
    if images_root.is_relative_to(out) or root.is_relative_to(out):
        raise LabelloopError(f"export target {out} contains the images folder or the project; write it elsewhere")
    if out.is_relative_to(root) and out.relative_to(root).parts[0] in _PROJECT_OWNED:
        raise LabelloopError(f"export target {out} is one of the project's own files; write it elsewhere")
    if not out.parent.is_dir():
        raise LabelloopError(f"folder {out.parent} does not exist; create it first")
    if fmt in FILE_FORMATS:
        if out.is_dir():
            raise LabelloopError(f"{out} is a folder; --format {fmt} writes one file, give its path")
        for path in (out, quality_path(out, fmt)):
            _refuse_special_file(path)
        if out.exists() and not force:
            raise LabelloopError(f"{out} already exists; pass --force to replace it")
    elif out.exists():
        if not out.is_dir():
            _refuse_special_file(out)
            raise LabelloopError(f"{out} is a file; --format {fmt} writes a folder, give a new or empty one")
        if any(out.iterdir()):
            if not force:
                raise LabelloopError(f"folder {out} is not empty; pass --force to replace it")
            if not (out / MANIFEST_FILE).is_file():
                raise LabelloopError(f"folder {out} is not an earlier export (it has no {MANIFEST_FILE}); "
                                     "refusing to replace it even with --force, give a new or empty folder")
    return out


def _refuse_special_file(path: Path) -> None:
    """Refuse a path that is there and is neither a regular file nor a folder: an export never replaces a device, FIFO
    or socket, not even with --force (as root, `--out /dev/null --force` would replace the system's /dev/null)."""
    try:
        mode = path.stat().st_mode  # through a symlink: what it points to is what would be replaced
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise LabelloopError(f"{path} is {file_kind(mode)}; an export replaces only a regular file or an earlier "
                             "export folder, even with --force: give another --out")


def _scratch_path(out: Path, suffix: str) -> Path:
    """A hidden name beside `out` for work on its way there, naming this process: `_remove_leftovers` tells the
    leftovers of a killed export from the work of one still running by it."""
    return out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _remove_leftovers(out: Path) -> None:
    """Delete the hidden `.partial` files and folders that exports to `out` killed before they finished left beside
    it (those of processes still running are theirs to finish)."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(\d+)-[0-9a-f]{{8}}\.partial")
    for path in out.parent.glob(glob.escape(f".{out.name}.") + "*.partial"):
        found = pattern.fullmatch(path.name)
        if found and not _running(int(found.group(1))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process is there
    except ProcessLookupError:
        return False
    except PermissionError:  # there, and another user's
        pass
    return True


def _place(temporary: Path, out: Path, force: bool) -> None:
    """Move a finished export into place; a folder it replaces is moved aside first and deleted last. Without
    `force` the check that nothing is there and the placing are one step, so of two exports racing to one path
    the second is refused."""
    if not force:
        try:
            if temporary.is_dir():
                os.rename(temporary, out)  # succeeds only onto nothing or an empty folder
            else:
                os.link(temporary, out)  # fails if out exists, unlike a rename
                temporary.unlink()
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise LabelloopError(f"{out} was created while exporting; pass --force to replace it") from None
            if temporary.is_dir() or error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            os.replace(temporary, out)  # a filesystem without hard links: the earlier check must do
        return
    if not out.is_dir():
        os.replace(temporary, out)
        return
    aside = _scratch_path(out, ".replaced")
    os.rename(out, aside)
    try:
        os.rename(temporary, out)
    except OSError:
        os.rename(aside, out)
        raise
    shutil.rmtree(aside)


def write_csv(table: pa.Table, path: Path) -> None:
    """Quoted only where needed, null as empty, as the csv module writes: pyarrow's writer quotes every string,
    which breaks scripts that split lines on commas. Text a spreadsheet would run as a formula gets a leading
    single quote (engine.files.csv_cells; `label --csv` takes it off again). A list (a multi-label project's tags) is
    written joined by `;`, as `label --csv` reads it."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.column_names)
        text = (pa.types.is_string, pa.types.is_large_string)
        columns = [pc.binary_join(column, TAG_SEPARATOR) if pa.types.is_list(column.type) else column
                   for column in table.columns]
        columns = [quote_formula(column) if any(test(column.type) for test in text) else column
                   for column in columns]
        writer.writerows(zip(*(column.to_pylist() for column in columns)))


def write_file(temporary: Path, fmt: str, rows: pa.Table, ls_root_url: str,
               people: dict[str, list[dict]] | None = None) -> None:
    """A one-file export (csv, parquet, jsonl or label-studio) of `rows` to `temporary`, which `export` then renames
    into place. `people`: label-studio's one annotation per person of an image (path -> [{"person", "label",
    "labelled_at"}])."""
    if fmt == "csv":
        write_csv(rows, temporary)
    elif fmt == "parquet":
        pq.write_table(rows, temporary)
    else:
        with open(temporary, "w", encoding="utf-8") as handle:
            if fmt == "jsonl":
                handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.to_pylist())
            else:
                # dumps, not dump: json.dump encodes in pure Python, several times slower at 100k tasks
                tasks = label_studio_tasks(rows.to_pylist(), root_url=ls_root_url, people=people or {})
                handle.write(json.dumps(tasks, ensure_ascii=False))


_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789¹²³")}
_NOT_IN_FOLDER_NAMES = '<>:"/\\|?*'  # Windows refuses each of them; macOS's Finder shows ':' as '/'


def _folder_name_problem(name: str) -> str | None:
    """Why `name` cannot be a folder on Linux, Windows and macOS alike, or None if it can."""
    if name.startswith("."):
        return "it starts with a dot, which hides a folder"
    if name.endswith((".", " ")):
        return "Windows drops a trailing dot or space"
    if name.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        return "Windows reserves it for a device"
    for character in name:
        if character in _NOT_IN_FOLDER_NAMES or ord(character) < 32:
            return f"it holds {character!r}, which a folder name on Windows or macOS cannot"
    return None


def _check_folder_names(classes: list[str], include_none: bool) -> None:
    """Refuse an export whose class folders would not be the same on every system, before anything is written."""
    for name in classes:
        problem = _folder_name_problem(name)
        if problem:
            raise LabelloopError(f"class {name!r} cannot be a folder name ({problem}); rename the class on the "
                                 "page's Classes tab, or export as csv, parquet, jsonl or fiftyone")
    if include_none and NONE_CLASS.casefold() in {name.casefold() for name in classes}:
        raise LabelloopError(f"a class is named {NONE_CLASS!r}, the folder of \"none of these\" images; "
                             "export with --no-include-none")


def _image_sources(project: Project, relpaths: list[str]) -> list[str]:
    """The real path of every image to copy or link, after checking that it still is the file that was ingested
    and that it lies inside the images folder (a symlink pointing elsewhere is refused, never followed)."""
    root = project.images_root
    index = project.store.image_index()
    sources, problems = [], {}
    for relpath in relpaths:
        real = Path(os.path.realpath(root / relpath))
        if not real.is_relative_to(root):
            problems.setdefault("points outside the images folder", []).append(relpath)
            continue
        try:
            stat = real.stat()
        except OSError:
            problems.setdefault("is gone", []).append(relpath)
            continue
        if (stat.st_size, stat.st_mtime_ns) != tuple(index[relpath][2:4]):
            problems.setdefault("changed since it was ingested", []).append(relpath)
        sources.append(str(real))
    if problems:
        shown = "; ".join(f"{len(paths)} {'image' if len(paths) == 1 else 'images'} {what} (first: {paths[0]!r})"
                          for what, paths in problems.items())
        raise LabelloopError(f"nothing was exported: {shown}; run `labelloop ingest {project.root}` and export again")
    return sources


def write_folder(temporary: Path, fmt: str, rows: pa.Table, *, project: Project, classes: list[str],
                  include_none: bool, link: str, fractions: tuple[float, ...] | None, seed: int,
                  progress: Callable[[int, int], None] | None) -> dict[str, int]:
    """Every image placed, MANIFEST_FILE and CLASSES_FILE; imagefolder and hf: [split/]label/file, a folder for every
    class in every split folder (so torchvision numbers the classes alike in any export of the project), and (hf) a
    metadata.parquet per split folder; fiftyone: [split/]data/file and [split/]labels.json; a multi-label project's
    rows, whose label is a list of tags: [split/]TAGGED_FOLDER/file, split stratified by tag set. Each file placed is
    hashed: one that is not the content ingest recorded (replaced with the same size and time) stops the export, so
    the manifest's sha256 is what was placed. Returns rows per split."""
    tagged = pa.types.is_list(rows["label"].type)
    if tagged:
        labels = [TAG_SEPARATOR.join(tags) for tags in rows["label"].to_pylist()]  # strata of the split
    else:
        labels = [NONE_CLASS if label is None else label for label in rows["label"].to_pylist()]
    relpaths = rows["path"].to_pylist()
    sources = _image_sources(project, relpaths)
    split_folders = [""] if fractions is None else list(SPLIT_NAMES[:len(fractions)])
    if fractions is None:
        splits = [""] * len(labels)
    else:
        splits = [SPLIT_NAMES[i] for i in stratified_split(np.array(labels, object), fractions, seed=seed).tolist()]
    # one flat folder per class: files from different sub-folders must not meet, so the sub-folders go in the name
    files = [relpath.replace("/", "__") for relpath in relpaths]
    folders = [TAGGED_FOLDER if tagged else DATA_FOLDER if fmt == "fiftyone" else label for label in labels]
    targets = ["/".join(filter(None, parts)) for parts in zip(splits, folders, files)]
    if len(set(targets)) < len(targets):
        raise LabelloopError("two images would get the same file name in the export (a file name containing '__' "
                             "clashes with a sub-folder path); rename one, ingest, and export again")
    names = classes + ([NONE_CLASS] if include_none and fmt in CLASS_FOLDER_FORMATS else [])
    if fmt == "fiftyone":
        _check_label_keys(relpaths, files)
    for split in split_folders:
        for folder in [DATA_FOLDER] if fmt == "fiftyone" else [TAGGED_FOLDER] if tagged else names:
            (temporary / split / folder).mkdir(parents=True, exist_ok=True)
    place = {"copy": shutil.copyfile, "symlink": os.symlink, "hardlink": os.link}[link]
    for done, (source, target, relpath, sha256) in enumerate(zip(sources, targets, relpaths,
                                                                  rows["sha256"].to_pylist()), start=1):
        try:
            place(source, temporary / target)
        except OSError as error:
            if as_refusal(error) is not None or error.errno == errno.EXDEV:
                raise  # the disk's or the link's fault, not this image's: said for the whole export below
            raise LabelloopError(f"cannot export image {relpath!r}: {error.strerror or error} (in the export its "
                                 "folders join its name); rename or move it, ingest, and export again") from None
        if file_sha256(temporary / target) != sha256:
            raise LabelloopError(f"nothing was exported: {relpath!r} is not the content that was ingested (replaced "
                                 f"since); run `labelloop ingest {project.root} --verify` and export again")
        if progress and (done % 256 == 0 or done == len(targets)):
            progress(done, len(targets))
    columns = {"file": targets, **{name: rows[name] for name in MANIFEST_COLUMNS}}
    if fractions is not None:
        columns["split"] = splits
    write_csv(pa.table(columns), temporary / MANIFEST_FILE)
    (temporary / CLASSES_FILE).write_text(json.dumps(names, ensure_ascii=False), encoding="utf-8")
    if fmt == "hf":
        _write_hf_metadata(temporary, rows, splits, folders, files, names)
    if fmt == "fiftyone":
        logits = class_logits(project.store.shown_class_probabilities(), [c["id"] for c in project.store.classes()])
        _write_fiftyone_labels(temporary, rows, split_folders, splits, files, classes, logits)
    return {name: splits.count(name) for name in SPLIT_NAMES if name in splits}


def _check_label_keys(relpaths: list[str], files: list[str]) -> None:
    """FiftyOne keys the images of data/ by file name without the extension: refuse two that would share one."""
    seen = {}
    for relpath, file in zip(relpaths, files):
        other = seen.setdefault(label_key(file), relpath)
        if other != relpath:
            raise LabelloopError(f"images {other!r} and {relpath!r} differ only in their extension, which FiftyOne "
                                 "cannot tell apart; rename one, ingest, and export again")


def _write_fiftyone_labels(temporary: Path, rows: pa.Table, split_folders: list[str], splits: list[str],
                           files: list[str], classes: list[str], logits: dict[str, list[float]]) -> None:
    """labels.json in each split folder (engine.dataset.fiftyone_labels), of the images in its data/."""
    records = rows.select(["path", "label", "source", "confidence", "round"]).to_pylist()
    for split in split_folders:
        take = [i for i, name in enumerate(splits) if name == split]
        document = labels_document([records[i] for i in take], [label_key(files[i]) for i in take], classes, logits)
        # dumps, not dump: json.dump encodes in pure Python, several times slower
        (temporary / split / LABELS_FILE).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def _write_hf_metadata(temporary: Path, rows: pa.Table, splits: list[str], folders: list[str], files: list[str],
                       names: list[str]) -> None:
    """metadata.parquet in each split folder: `file_name` relative to it and `label` as an index into `names`,
    which the schema declares as a ClassLabel (a multi-label project's: a list of indexes, a Sequence of
    ClassLabel). Hugging Face's imagefolder stops reading labels from folder names once a metadata file is present,
    and only a parquet schema can carry the ClassLabel (a JSON Lines file would load `label` as plain strings), so
    `load_dataset("imagefolder", data_dir=...)` gets the class names in project order, classes without images
    included."""
    index = {name: i for i, name in enumerate(names)}
    class_label = {"_type": "ClassLabel", "names": names}
    if pa.types.is_list(rows["label"].type):
        values = pa.array([[index[tag] for tag in tags] for tags in rows["label"].to_pylist()], pa.list_(pa.int64()))
        features = {"label": {"_type": "Sequence", "feature": class_label}}
    else:
        values = pa.array([index[NONE_CLASS if label is None else label] for label in rows["label"].to_pylist()],
                          pa.int64())
        features = {"label": class_label}
    split_of = np.array(splits, object)
    for split in sorted(set(splits)):
        take = np.flatnonzero(split_of == split)
        table = pa.table({
            "file_name": [f"{folders[i]}/{files[i]}" for i in take],
            "label": values.take(pa.array(take)),
            **{name: rows[name].take(take) for name in MANIFEST_COLUMNS if name != "label"},
        }).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
        pq.write_table(table, temporary / split / "metadata.parquet")


def _tag_names(table: pa.Table, names: dict[int, str]) -> pa.Table:
    """`current_labels(tags_from=...)` with each list of tag ids as the tags' names, in class order."""
    ids = table["label"].combine_chunks()
    flat = ids.flatten().to_numpy(zero_copy_only=False)
    order = np.array(sorted(names))
    tag_names = pa.array([names[class_id] for class_id in order]).take(pa.array(np.searchsorted(order, flat)))
    labels = pa.ListArray.from_arrays(ids.offsets, tag_names, mask=ids.is_null())
    return table.set_column(table.schema.get_field_index("label"), "label", labels)


def quality_summary(project: Project, rows: pa.Table, filters: dict) -> dict:
    """What an export says of its own quality: the audit's estimate for its machine labels (engine.project.audit), with
    the counts by source, the model and the rounds. Without an audit the accuracy is null and `message` says how
    to get one."""
    store = project.store
    quality = quality_report(store, project_hint=str(project.root))
    sources = pc.value_counts(pc.fill_null(rows["source"], "unpredicted")).to_pylist()
    machine = sum(item["counts"] for item in sources if item["values"] in (Source.TEACHER, Source.ZEROSHOT))
    shown = store.shown_round()
    summary = {"accuracy_of_machine_labels": {key: quality[key] for key in ("accuracy", "low", "high", "audited",
                                                                            "method", "round")},
               "message": quality["message"], "machine_labels": machine,
               "counts_by_source": {item["values"]: item["counts"] for item in sources},
               "classes": [c["name"] for c in store.classes()], "model": store.get_meta("model"),
               "shown_round": shown, "rounds_finished": sum(r["status"] == "done" for r in store.rounds()),
               "per_class": quality["per_class"], "class_shares": quality["class_shares"],
               "confusion": quality["confusion"], "filters": filters}
    if filters.get("min_confidence") is not None and machine:
        summary["note"] = ("the estimate covers every machine label; this export keeps only those at confidence >= "
                           f"{filters['min_confidence']}, which are likely more often right")
    if not machine:
        summary["note"] = "this export holds no machine labels: every label in it is a person's"
    return summary


def _dataset_card(summary: dict) -> str:
    """The hf export's README.md: what Hugging Face shows on a dataset's page."""
    accuracy = summary["accuracy_of_machine_labels"]
    estimate = (f"about {accuracy['accuracy']:.1%} of the machine labels are right (95 % interval "
                f"{accuracy['low']:.1%}-{accuracy['high']:.1%}; {accuracy['audited']} randomly drawn images labelled "
                "blind by a person, judged out of sample)" if accuracy["accuracy"] is not None else
                f"the accuracy of the machine labels is unknown ({summary['message']})")
    counts = ", ".join(f"{count} {source}" for source, count in sorted(summary["counts_by_source"].items()))
    lines = ["---", "task_categories:", "- image-classification", "---", "", "# Labelled with labelloop", "",
             f"- Classes (in order): {', '.join(summary['classes'])}",
             f"- Labels by source: {counts} (human: a person's; teacher: a self-training round's prediction; "
             "zeroshot: CLIP zero-shot)",
             f"- Model: {summary['model']}; predictions of "
             f"{'round ' + str(summary['shown_round']) if summary['shown_round'] else 'zero-shot'} "
             f"({summary['rounds_finished']} rounds finished)",
             f"- Quality: {estimate}"]
    if summary.get("note"):
        lines.append(f"- Note: {summary['note']}")
    if summary["class_shares"]:
        lines += ["", "| class | estimated share (95 % interval) |", "|---|---|"]
        lines += [f"| {name} | {share['estimate']:.1%} ({share['low']:.1%}-{share['high']:.1%}) |"
                  for name, share in summary["class_shares"].items() if share["estimate"] is not None]
    return "\n".join(lines) + "\n"


PER_PERSON_FORMATS = ("csv", "jsonl", "parquet")


def _person_annotations(project: Project) -> dict[str, list[dict]]:
    """path -> every person's own label of that image: [{"person", "label" (None = none of these), "labelled_at"}]."""
    people: dict[str, list[dict]] = {}
    for row in project.store.person_label_rows().to_pylist():
        people.setdefault(row["path"], []).append({"person": row["person"], "label": row["label"] or None,
                                                   "labelled_at": row["labelled_at"]})
    return people


def _export_per_person(project: Project, fmt: str, out: Path, force: bool) -> ExportReport:
    """Every person's own labels: one row per (usable image, person) with path,person,label,labelled_at (UTC),
    label '' = none of these."""
    if fmt not in PER_PERSON_FORMATS:
        raise LabelloopError(f"--per-person writes one row per image and person, as {', '.join(PER_PERSON_FORMATS)}; "
                             f"not {fmt} (a label-studio export carries each person's annotation already)")
    out = _check_target(project, out, fmt, force)
    rows = project.store.person_label_rows()
    _remove_leftovers(out)
    temporary = _scratch_path(out, ".partial")
    try:
        write_file(temporary, fmt, rows, "")
        _place(temporary, out, force)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise as_refusal(error, out) or LabelloopError(f"cannot write {out}: {error.strerror or error}") from None
        raise
    counts = pc.value_counts(rows["person"]).to_pylist() if rows.num_rows else []
    labels = {item["values"]: item["counts"] for item in sorted(counts, key=lambda item: item["values"])}
    export_id = project.store.record_export(fmt=fmt, path=str(out), filters={"per_person": True},
                                            counts={"rows": rows.num_rows, "people": labels})
    return ExportReport(path=out, format=fmt, rows=rows.num_rows, human=rows.num_rows, labels=labels,
                        skipped_unpredicted=0, skipped_below_confidence=0, skipped_none=0, skipped_unavailable=0,
                        splits={}, export_id=export_id)


def quality_path(out: Path, fmt: str) -> Path:
    """Where an export's quality summary goes: inside a folder export, beside a one-file one."""
    return out / QUALITY_FILE if fmt in FOLDER_FORMATS else out.with_name(f"{out.name}.{QUALITY_FILE}")


def export(project: Project, *, fmt: str, out: str | Path, source: str = "all", min_confidence: float | None = None,
           include_none: bool | None = None, link: str = "copy", split: str | Sequence[float] | None = None,
           seed: int = 0, ls_root_url: str | None = None, force: bool = False,
           progress: Callable[[int, int], None] | None = None,
           drop_duplicates: float | None = None, per_person: bool = False) -> ExportReport:
    """Write the project's current labels to `out` as `fmt` (one of EXPORT_FORMATS) and record the export.

    source: "all" or "human" (only labels a person gave). min_confidence: leave out machine labels below it.
    include_none: keep "none of these" labels; None = the format's default: yes where a label can be empty or null
    (the one-file formats and fiftyone), no for the formats of class folders (where they need a class of their own,
    `none_of_these`).
    link ("copy", "symlink", "hardlink"), split ("0.8,0.1,0.1": train,val[,test], stratified by label) and seed:
    folder formats only. ls_root_url: the prefix of `data.image` in label-studio tasks (default
    `engine.labels.label_studio.default_root_url`). progress(done, total):
    images placed so far (folder formats). drop_duplicates: a cosine threshold; of each group of near-duplicates
    at it (engine.project.discovery), only one image is exported (`keep_one_per_group` says which). per_person:
    every person's own labels instead, one row per (image, person) (`_export_per_person`); a label-studio export
    carries them as one annotation per person."""
    if per_person:
        return _export_per_person(project, fmt, Path(out), force)
    _check_options(fmt, source, min_confidence, link, split, seed)
    multi_label = project.multi_label
    if multi_label and fmt not in TAG_FORMATS:
        raise LabelloopError(f"{fmt} holds one class per image and this project is multi-label (a set of tags per "
                             f"image); export it as {', '.join(TAG_FORMATS)}")
    fractions = parse_split(split) if split is not None else None
    out = _check_target(project, Path(out), fmt, force)
    include_none = fmt not in CLASS_FOLDER_FORMATS if include_none is None else bool(include_none)
    classes = [c["name"] for c in project.store.classes()]
    if fmt in CLASS_FOLDER_FORMATS and not multi_label:
        _check_folder_names(classes, include_none)
    table = project.store.current_labels(tags_from=TAG_PRESENT if multi_label else None)
    if multi_label:
        table = _tag_names(table, {c["id"]: c["name"] for c in project.store.classes()})
    rows, left_out = select_rows(table, source=source, min_confidence=min_confidence, include_none=include_none)
    left_out["unavailable"] = project.store.human_labels_on_unusable_images()
    if drop_duplicates is not None:
        groups = Discovery(project).duplicates(drop_duplicates)
        rows, left_out["duplicates"] = keep_one_per_group(rows, [[m.path for m in g.matches] for g in groups])
    filters = {"source": source, "min_confidence": min_confidence, "include_none": include_none, "link": link,
               "split": list(fractions) if fractions else None, "seed": seed if fractions else None}
    if drop_duplicates is not None:
        filters["drop_duplicates"] = drop_duplicates
    quality = json.dumps(quality_summary(project, rows, filters), indent=2, ensure_ascii=False)
    _remove_leftovers(out)
    temporary = _scratch_path(out, ".partial")
    try:
        if fmt in FILE_FORMATS:
            people = _person_annotations(project) if fmt == "label-studio" else None
            write_file(temporary, fmt, rows,
                        default_root_url(project.images_root) if ls_root_url is None else ls_root_url, people)
            splits = {}
        else:
            temporary.mkdir()
            splits = write_folder(temporary, fmt, rows, project=project, classes=classes,
                                   include_none=include_none, link=link, fractions=fractions, seed=seed,
                                   progress=progress)
            (temporary / QUALITY_FILE).write_text(quality, encoding="utf-8")
            if fmt == "hf":
                (temporary / CARD_FILE).write_text(_dataset_card(json.loads(quality)), encoding="utf-8")
        _place(temporary, out, force)
        if fmt in FILE_FORMATS:
            quality_path(out, fmt).write_text(quality, encoding="utf-8")
    except BaseException as error:
        if temporary.is_dir():
            shutil.rmtree(temporary)
        else:
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            cross_device = error.errno == errno.EXDEV
            hint = "; hard links cannot cross filesystems, use --link copy or symlink" if cross_device else ""
            raise as_refusal(error, out) or LabelloopError(f"cannot write {out}: {error.strerror or error}{hint}") \
                from None
        raise
    counted = pc.list_flatten(rows["label"]) if multi_label else pc.fill_null(rows["label"], NONE_CLASS)
    counts = pc.value_counts(counted).to_pylist() if len(counted) else []
    labels = {item["values"]: item["counts"] for item in sorted(counts, key=lambda item: item["values"])}
    record = {"rows": len(rows), "labels": labels, "left_out": left_out, "splits": splits}
    export_id = project.store.record_export(fmt=fmt, path=str(out), filters=filters, counts=record)
    return ExportReport(path=out, format=fmt, rows=len(rows), human=_count(pc.equal(rows["source"], Source.HUMAN)),
                        labels=labels, skipped_unpredicted=left_out["unpredicted"],
                        skipped_below_confidence=left_out["below_confidence"],
                        skipped_none=left_out["none_of_these"], skipped_unavailable=left_out["unavailable"],
                        splits=splits, export_id=export_id, skipped_duplicates=left_out.get("duplicates", 0),
                        skipped_changed=left_out["changed"])
