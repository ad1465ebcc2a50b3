"""`labelloop demo`: generated images, their ground truth, and a project over them with the embedded model."""

from __future__ import annotations

from pathlib import Path

from engine.demo.dataset import write_demo_dataset
from engine.demo.render import SHAPES
from engine.dataset.ingest import IngestReport, Progress, ingest
from engine.learning.models import DEMO_SPEC, load_model
from engine.project.folder import DB_FILE, create_project, open_project


def prepare_demo(folder: Path, *, progress: Progress | None = None) -> tuple[Path, IngestReport]:
    """Write `folder/images/`, `folder/ground_truth.csv` and the ingested project `folder/project/`. Running it
    again reuses all three and ingests nothing new."""
    folder = Path(folder).expanduser().resolve()
    images, _ = write_demo_dataset(folder)
    root = folder / "project"
    if (root / DB_FILE).exists():
        project = open_project(root)
    else:
        project = create_project(root, images=images, classes=",".join(SHAPES), model=DEMO_SPEC)
    with project:
        report = ingest(project, load_model(project.model_spec), progress=progress)
    return root, report
