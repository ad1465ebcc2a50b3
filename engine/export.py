"""Exporting the current labels. The file is written beside its target and renamed into place at the end, so a
failed export never leaves a half-written file where a good one was expected."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from engine.errors import LabelloopError
from engine.project import Project

EXPORT_FORMATS = ("csv",)
SOURCES = ("all", "human")
CSV_COLUMNS = ("path", "label", "source", "confidence", "round")


@dataclass
class ExportReport:
    path: Path
    rows: int
    skipped_unpredicted: int
    skipped_below_confidence: int


def select_rows(table: pa.Table, *, source: str, min_confidence: float | None) -> tuple[list[dict], int, int]:
    """Apply the export filters to `Store.current_labels()` rows. Human labels pass any confidence threshold."""
    rows, unpredicted, below = [], 0, 0
    for row in table.to_pylist():
        if row["source"] is None:
            unpredicted += 1
        elif source == "human" and row["source"] != "human":
            continue
        elif min_confidence is not None and row["source"] != "human" and row["confidence"] < min_confidence:
            below += 1
        else:
            rows.append(row)
    return rows, unpredicted, below


def export(project: Project, *, fmt: str, out: str | Path, source: str = "all",
           min_confidence: float | None = None, force: bool = False) -> ExportReport:
    if fmt not in EXPORT_FORMATS:
        raise LabelloopError(f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}")
    if source not in SOURCES:
        raise LabelloopError(f"unknown --source {source!r}; valid: {', '.join(SOURCES)}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:  # NaN fails this too
        raise LabelloopError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
    out = Path(out).expanduser().resolve()
    if out.is_relative_to(project.images_root):
        raise LabelloopError(f"export target {out} is inside the images folder; write it somewhere else")
    if out.exists() and not force:
        raise LabelloopError(f"{out} already exists; pass --force to replace it")
    if not out.parent.is_dir():
        raise LabelloopError(f"folder {out.parent} does not exist; create it first")

    rows, unpredicted, below = select_rows(project.store.current_labels(), source=source,
                                           min_confidence=min_confidence)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for row in rows:
                confidence = "" if row["confidence"] is None else f"{row['confidence']:.6f}"
                writer.writerow([row["path"], row["label"], row["source"], confidence,
                                 "" if row["round"] is None else row["round"]])
        os.replace(temporary, out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise LabelloopError(f"cannot write {out}: {error.strerror or error}") from None
    return ExportReport(path=out, rows=len(rows), skipped_unpredicted=unpredicted, skipped_below_confidence=below)
