"""One project opened for the page, split by the kind of state each part holds: `view` (what the page reads:
gallery, details, header, plots), `labeling` (human labels and per-person undo), `classes` (class edits, each
rerunning zero-shot), `discovery` (text search, similar images, duplicates), plus rounds, ingest and export started
as background jobs.

The page (app/) only lays out components and calls these; tests and benchmarks call them directly.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path

from engine.labels.class_editor import ClassEditor
from engine.project.discovery import Discovery
from engine.errors import LabelloopError
from engine.views.gallery import GalleryView
from engine.jobs.runner import JobContext, JobRunner
from engine.labels.labeling_session import LabelingSession
from engine.views.map import MapView
from engine.learning.models import LoadedModel, load_model
from engine.project.folder import Project
from engine.learning.selftrain.config import RoundConfig
from engine.session.round_runner import GRAPH_JOB, build_neighbour_graph, run_round
from engine.dataset.uploads import save_uploads


class Workspace:
    """Build it once at start-up; `close()` stops the job runner."""

    def __init__(self, project: Project, *, ingest_workers: int | None = None):
        self.project = project
        self.runner = JobRunner(project.store)
        self.ingest_workers = ingest_workers
        self._model: LoadedModel | None = None
        self._model_lock = threading.Lock()
        self.view = GalleryView(project, self.model)
        self.labeling = LabelingSession(project.store, self.view)
        self.classes = ClassEditor(project.store, self.view, self.runner, self.model)
        self.map = MapView(project, self.runner)
        self.discovery = Discovery(project, self.model)  # text search, more like this, duplicates

    def close(self) -> None:
        self.runner.close()

    def model(self) -> LoadedModel:
        """Loaded on first use (heatmaps, ingest, class changes); labeling and head rounds never need it. A
        finetune round switches the project to its adapted model, so the loaded one is checked against it."""
        with self._model_lock:
            spec = self.project.model_spec
            if self._model is None or self._model.spec.canonical != spec.canonical:
                self._model = load_model(spec)
            return self._model

    # ---- rounds ------------------------------------------------------------------------------------------------

    def start_rounds(self, count: int, config: RoundConfig) -> int:
        """Queue `count` rounds as one background job; returns its id."""
        if count < 1:
            raise LabelloopError(f"the number of rounds must be at least 1, got {count}")
        config.validate()

        def work(context: JobContext) -> dict:
            results = []
            for number in range(count):
                def progress(fraction: float, message: str, number=number) -> None:
                    context.progress((number + fraction) / count, f"round {number + 1}/{count}: {message}")

                results.append(run_round(self.project, config, progress=progress))
            context.progress(1.0, "ranking the review queue")
            self.view.review_queue()  # here, not in the first gallery request (seconds at 100k)
            return {"rounds": results}

        return self.runner.submit("round", {"rounds": count, **asdict(config)}, work)

    def cancel(self, job_id: int) -> bool:
        return self.runner.cancel(job_id)

    # ---- ingest ------------------------------------------------------------------------------------------------

    def start_ingest(self, folder: str | None = None) -> int:
        """Scan the images root again (after files were added to `folder`, which must lie inside it)."""
        root = self.project.images_root
        if folder:
            target = (root / folder).resolve() if not Path(folder).is_absolute() else Path(folder).resolve()
            if not target.is_relative_to(root.resolve()):
                raise LabelloopError(f"{folder} is outside the images folder {root}; move the images inside it")
            if not target.is_dir():
                raise LabelloopError(f"folder {target} does not exist")
        return self._submit_ingest({"folder": folder})

    def add_uploads(self, paths: list[str | Path]) -> int:
        """Copy uploaded image files into the images folder (engine.dataset.uploads), then ingest."""
        folder, count = save_uploads(self.project.images_root, paths)
        return self._submit_ingest({"uploads": count, "folder": str(folder)})

    def _submit_ingest(self, config: dict) -> int:
        from engine.dataset.ingest import ingest

        def work(context: JobContext) -> dict:
            context.progress(0.0, "loading the model")
            model = self.model()
            report = ingest(self.project, model, workers=self.ingest_workers,
                            progress=lambda done, total: context.progress(done / max(total, 1),
                                                                          f"{done}/{total} images"))
            self.start_neighbour_graph()
            return report.as_dict()

        return self.runner.submit("ingest", config, work)

    def start_neighbour_graph(self) -> int | None:
        """Queue the kNN graph the next round reads as a background job (after an ingest), unless one is queued or
        running; returns its id (None when one is)."""
        if any(kind == GRAPH_JOB for _, kind in self.runner.running()):
            return None
        return self.runner.submit(GRAPH_JOB, {}, lambda context: build_neighbour_graph(self.project,
                                                                                       context.progress))

    # ---- export ------------------------------------------------------------------------------------------------

    def export(self, **options):
        from engine.dataset.export import export

        return export(self.project, **options)
