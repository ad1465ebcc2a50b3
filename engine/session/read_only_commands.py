"""The commands a person may run while `labelloop serve` holds the project (status, queue, search --like, export),
each a function of an open project returning plain JSON values. The CLI runs them on the project it opens; when a
server holds it, the server runs the same function on a snapshot of its own connection (app.local_api), so the
answer is the one the CLI would have got. None of them changes the project's labels, rounds or images: an export
writes its files and the record of itself.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

from engine.project.folder import Project, project_status


def status(project: Project) -> dict:
    return project_status(project)


def queue(project: Project, *, k: int) -> dict:
    """The review queue's `k` picks (engine.project.review_queue) and whether the audit must grow before its estimates
    hold."""
    from engine.project.audit import audit_class_shares
    from engine.learning.review_ranking import audit_needed
    from engine.project.review_queue import review_queue

    if project.multi_label:
        from engine.session.tag_rounds import tag_review_queue

        return {"queue": tag_review_queue(project.store, k), "audit_needed": False}
    return {"queue": review_queue(project.store, k), "audit_needed": audit_needed(audit_class_shares(project.store))}


def search_like(project: Project, *, path: str, k: int) -> list[dict]:
    """The image at `path` (relative to the images folder, or absolute inside it) and its nearest neighbours."""
    from engine.project.discovery import Discovery

    discovery = Discovery(project)
    discovery.vectors()  # nothing embedded yet: say so before judging the path
    return [asdict(match) for match in discovery.search_like(discovery.image_id(path), k)]


def export_dataset(project: Project, *, progress: Callable[[int, int], None] | None = None, **options) -> dict:
    """engine.dataset.export.export's report, with the project's class names and kind (a Label Studio export prints
    its config)."""
    from engine.dataset.export import export

    report = export(project, progress=progress, **options)
    return {**asdict(report), "path": str(report.path), "classes": [c["name"] for c in project.store.classes()],
            "multi_label": project.multi_label}


def agreement(project: Project) -> dict:
    """engine.labels.team.agreement_report: agreement between the people who labelled the same images."""
    from engine.labels.team import agreement_report

    return agreement_report(project)


READ_ONLY_COMMANDS: dict[str, Callable[..., object]] = {
    "status": status, "queue": queue, "search-like": search_like, "export": export_dataset, "agreement": agreement}
